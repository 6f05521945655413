"""The azd hooks run as azd runs them (bash, azd's environment), with fake `az` and `azd` on PATH.

Each fake is a small stateful program: it keeps the vault's secrets and the number of calls in a
JSON state file, records every argv it got, and answers Forbidden for the first N Key Vault calls
to model a role assignment that has not reached Key Vault yet.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
HOOKS = REPO_ROOT / "infra" / "hooks"
PRINCIPAL = "11111111-1111-1111-1111-111111111111"
TENANT = "22222222-2222-2222-2222-222222222222"
VAULT = "kv-abc123"
VAULT_URL = f"https://{VAULT}.vault.azure.net/"
SECRET = "idempotency-hmac-key"

FAKE = r'''
import json, sys
from pathlib import Path

state_path = Path(__file__).with_name("state.json")
state = json.loads(state_path.read_text())
args = sys.argv[1:]
state["calls"].append([Path(sys.argv[0]).name, *args])

def opt(name):
    return args[args.index(name) + 1] if name in args else None

def done(out="", err="", code=0):
    state_path.write_text(json.dumps(state))
    if out:
        print(out)
    if err:
        print(err, file=sys.stderr)
    sys.exit(code)

if Path(sys.argv[0]).name == "azd":
    if args[:2] == ["auth", "token"]:
        done(json.dumps({"token": state["azd_token"], "expiresOn": "2030-01-01T00:00:00Z"}))
    if args[:2] == ["env", "set"]:
        state["azd_env"][args[2]] = args[3]
        done()
    done(err="fake azd: unexpected " + " ".join(args), code=2)

if args[:2] == ["account", "get-access-token"]:
    if not state["signed_in"]:
        done(err="Please run 'az login' to setup account.", code=1)
    done(state["az_token"])
if args[:4] == ["functionapp", "config", "appsettings", "list"]:
    done(json.dumps([{"name": k, "value": v, "slotSetting": False} for k, v in state["settings"].items()]))
if args[:3] == ["functionapp", "function", "list"]:
    state["function_lists"] += 1
    names = state["functions"] if state["function_lists"] > state["functions_after"] else []
    done("\n".join(f"{opt('--name')}/{n}" for n in names))
if args[:3] == ["functionapp", "keys", "list"]:
    done(state["function_key"])
if args[:2] == ["keyvault", "secret"]:
    state["kv_calls"] += 1
    if opt("--vault-name") != state["vault"]:
        done(err="(VaultNotFound)", code=1)
    if state["kv_calls"] <= state["forbidden_calls"]:
        done(err="(Forbidden) Caller is not authorized to perform action on resource.\nCode: Forbidden", code=1)
    name = opt("--name")
    if args[2] == "show":
        if name not in state["secrets"]:
            done(err=f"(SecretNotFound) A secret with (name/id) {name} was not found in this key vault.", code=1)
        secret = state["secrets"][name]
        done("true" if opt("--query") == "attributes.enabled" else f"https://{state['vault']}/secrets/{name}/v1")
    if args[2] == "set":
        if "--value" in args:
            done(err="test: the secret value must not be on the command line", code=3)
        value = Path(opt("--file")).read_text()
        state["secrets"][name] = {"length": len(value), "file_mode": oct(Path(opt("--file")).stat().st_mode & 0o777)}
        done()
done(err="fake az: unexpected " + " ".join(args), code=2)
'''


def jwt(**claims: Any) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


class Fakes:
    def __init__(self, tmp_path: Path) -> None:
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        for name in ("az", "azd"):
            script = self.bin / name
            script.write_text(f"#!{sys.executable}\n{FAKE}")
            script.chmod(0o755)
        self.state_path = self.bin / "state.json"
        self.write({
            "calls": [], "kv_calls": 0, "forbidden_calls": 0, "vault": VAULT, "secrets": {}, "signed_in": True,
            "az_token": jwt(oid=PRINCIPAL, tid=TENANT, idtyp="user", scp="user_impersonation"),
            "azd_token": jwt(oid=PRINCIPAL, tid=TENANT, idtyp="user", scp="user_impersonation"),
            "azd_env": {},
            "settings": {"KEY_VAULT_URL": VAULT_URL, "IDEMPOTENCY_HMAC_SECRET_NAME": SECRET},
            "functions": [], "functions_after": 0, "function_lists": 0, "function_key": "fake-function-key",
        })
        self.env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "PYTHON": sys.executable,
            "AZURE_PRINCIPAL_ID": PRINCIPAL,
            "AZURE_TENANT_ID": TENANT,
            "AZURE_SUBSCRIPTION_ID": "33333333-3333-3333-3333-333333333333",
            "AZURE_RESOURCE_GROUP": "rg-test",
            "AZURE_FUNCTION_APP_NAME": "func-api-abc123",
            "AZURE_FUNCTION_APP_URL": "http://127.0.0.1:9",
            "AZURE_KEY_VAULT_NAME": VAULT,
            "AZURE_KEY_VAULT_URL": VAULT_URL,
            "HMAC_SECRET_WAIT_SECONDS": "20",
            "HMAC_SECRET_RETRY_SECONDS": "0.05",
            "HOOK_RETRY_SECONDS": "0.05",
        }

    def write(self, state: dict[str, Any]) -> None:
        self.state_path.write_text(json.dumps(state))

    def update(self, **changes: Any) -> None:
        self.write({**self.state, **changes})

    @property
    def state(self) -> dict[str, Any]:
        return dict(json.loads(self.state_path.read_text()))

    def calls(self, *prefix: str) -> list[list[str]]:
        return [c for c in self.state["calls"] if c[1 : 1 + len(prefix)] == list(prefix)]

    def run(self, hook: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(HOOKS / hook)], cwd=REPO_ROOT, env={**self.env, **env},
                              capture_output=True, text=True, timeout=120)


@pytest.fixture
def fakes(tmp_path: Path) -> Fakes:
    return Fakes(tmp_path)


# --- azure.yaml -----------------------------------------------------------------------------


def test_azure_yaml_hooks_fail_loudly_and_run_the_scripts() -> None:
    config = yaml.safe_load((REPO_ROOT / "azure.yaml").read_text())
    hooks = config["hooks"]
    assert set(hooks) == {"preprovision", "postprovision", "postdeploy"}
    for name, hook in hooks.items():
        assert "continueOnError" not in json.dumps(hook), f"{name}: a failed hook must fail azd"
        assert hook == {"shell": "sh", "run": f"infra/hooks/{name}.sh"}, name
        assert (REPO_ROOT / hook["run"]).is_file()
        assert os.access(REPO_ROOT / hook["run"], os.X_OK), f"{hook['run']} is not executable"


# --- postprovision --------------------------------------------------------------------------


def test_creates_the_missing_secret_once_from_a_private_file(fakes: Fakes) -> None:
    result = fakes.run("postprovision.sh")
    assert result.returncode == 0, result.stderr
    secret = fakes.state["secrets"][SECRET]
    assert secret == {"length": 64, "file_mode": "0o600"}
    assert len(fakes.calls("keyvault", "secret", "set")) == 1
    assert "created Key Vault secret 'idempotency-hmac-key'" in result.stdout
    assert "OK, secret 'idempotency-hmac-key' is in kv-abc123 and enabled" in result.stdout


def test_waits_for_a_slow_role_assignment(fakes: Fakes) -> None:
    fakes.update(forbidden_calls=6)
    result = fakes.run("postprovision.sh")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("waiting for Key Vault access") == 6
    assert SECRET in fakes.state["secrets"]
    assert len(fakes.calls("keyvault", "secret", "set")) == 1


def test_fails_when_access_never_arrives_and_writes_nothing(fakes: Fakes) -> None:
    fakes.update(forbidden_calls=10**6)
    result = fakes.run("postprovision.sh", HMAC_SECRET_WAIT_SECONDS="1")
    assert result.returncode != 0
    assert "no access to secret 'idempotency-hmac-key' in kv-abc123 after 1s" in result.stderr
    assert "Key Vault Secrets Officer" in result.stderr
    assert not fakes.calls("keyvault", "secret", "set") and not fakes.state["secrets"]
    assert "OK" not in result.stdout


def test_an_existing_secret_is_left_unchanged(fakes: Fakes) -> None:
    fakes.update(secrets={SECRET: {"length": 64}})
    result = fakes.run("postprovision.sh")
    assert result.returncode == 0, result.stderr
    assert "already exists; left unchanged" in result.stdout
    assert not fakes.calls("keyvault", "secret", "set")


def test_refuses_an_az_signed_in_as_another_principal(fakes: Fakes) -> None:
    fakes.update(az_token=jwt(oid="99999999-9999-9999-9999-999999999999", tid=TENANT))
    result = fakes.run("postprovision.sh")
    assert result.returncode != 0
    assert "signed in as object id 99999999-9999-9999-9999-999999999999" in result.stderr
    assert PRINCIPAL in result.stderr
    assert not fakes.calls("keyvault")


def test_refuses_without_an_az_login_or_a_principal(fakes: Fakes) -> None:
    fakes.update(signed_in=False)
    result = fakes.run("postprovision.sh")
    assert result.returncode != 0 and "az login" in result.stderr
    fakes.update(signed_in=True)
    result = fakes.run("postprovision.sh", AZURE_PRINCIPAL_ID="")
    assert result.returncode != 0 and "AZURE_PRINCIPAL_ID is empty" in result.stderr
    assert not fakes.calls("keyvault")


def test_checks_the_secret_the_app_settings_name(fakes: Fakes) -> None:
    fakes.update(settings={"KEY_VAULT_URL": VAULT_URL, "IDEMPOTENCY_HMAC_SECRET_NAME": "hmac-v2"})
    result = fakes.run("postprovision.sh")
    assert result.returncode == 0, result.stderr
    assert set(fakes.state["secrets"]) == {"hmac-v2"}

    fakes.update(settings={"KEY_VAULT_URL": "https://kv-other.vault.azure.net/", "IDEMPOTENCY_HMAC_SECRET_NAME": "x"})
    result = fakes.run("postprovision.sh")
    assert result.returncode != 0 and "but this environment's vault is" in result.stderr

    fakes.update(settings={"KEY_VAULT_URL": VAULT_URL})
    result = fakes.run("postprovision.sh")
    assert result.returncode != 0 and "no IDEMPOTENCY_HMAC_SECRET_NAME setting" in result.stderr


# --- preprovision ---------------------------------------------------------------------------


@pytest.mark.parametrize(("claims", "expected"), [
    ({"idtyp": "user", "scp": "user_impersonation"}, "User"),
    ({"idtyp": "app"}, "ServicePrincipal"),
    ({}, "ServicePrincipal"),
])
def test_principal_type_comes_from_azds_sign_in(fakes: Fakes, claims: dict[str, str], expected: str) -> None:
    fakes.update(azd_token=jwt(oid=PRINCIPAL, **claims))
    result = fakes.run("preprovision.sh")
    assert result.returncode == 0, result.stderr
    assert fakes.state["azd_env"] == {"AZURE_PRINCIPAL_TYPE": expected}


def test_an_explicit_principal_type_wins(fakes: Fakes) -> None:
    result = fakes.run("preprovision.sh", AZURE_PRINCIPAL_TYPE="ServicePrincipal")
    assert result.returncode == 0, result.stderr
    assert fakes.state["azd_env"] == {} and not fakes.state["calls"]


# --- postdeploy -----------------------------------------------------------------------------

FUNCTIONS = sorted(p.parent.name for p in REPO_ROOT.glob("*/function.json"))


def test_postdeploy_waits_for_every_function_then_passes(fakes: Fakes) -> None:
    fakes.update(functions=FUNCTIONS, functions_after=3)
    result = fakes.run("postdeploy.sh")
    assert result.returncode == 0, result.stderr
    assert len(fakes.calls("functionapp", "function", "list")) == 4
    assert f"lists {' '.join(FUNCTIONS)}" in result.stdout
    assert "SMOKE_MERCHANT_ID is not set" in result.stdout


def test_postdeploy_fails_when_a_function_is_not_loaded(fakes: Fakes) -> None:
    fakes.update(functions=[f for f in FUNCTIONS if f != "ReconcileUnknown"])
    result = fakes.run("postdeploy.sh", FUNCTIONS_WAIT_SECONDS="1")
    assert result.returncode != 0
    assert "does not list ReconcileUnknown" in result.stderr and "FunctionLoadError" in result.stderr


def test_postdeploy_runs_the_smoke_suite_and_fails_with_it(fakes: Fakes) -> None:
    # Nothing listens on the app URL: the no-charge smoke run must fail, and so must the hook.
    fakes.update(functions=FUNCTIONS)
    result = fakes.run("postdeploy.sh", SMOKE_MERCHANT_ID="1001", SMOKE_WAIT_SECONDS="0")
    assert result.returncode != 0
    assert "no-charge checks, key given" in result.stdout
    assert "tools.smoke kept failing" in result.stderr
    assert fakes.calls("functionapp", "keys", "list")
    assert "fake-function-key" not in result.stdout + result.stderr


def test_postdeploy_does_not_retry_a_smoke_run_it_cannot_fix(fakes: Fakes) -> None:
    fakes.update(functions=FUNCTIONS)
    result = fakes.run("postdeploy.sh", SMOKE_MERCHANT_ID="1001", SMOKE_GATEWAY_TYPE="77", SMOKE_WAIT_SECONDS="600")
    assert result.returncode != 0
    assert "refused to run" in result.stderr and "SMOKE_GATEWAY_TYPE" in result.stderr
    assert "retrying" not in result.stderr
