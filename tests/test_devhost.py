"""The devhost serves both functions over real HTTP from their function.json and host.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import requests

from tests.devhost_process import devhost
from tests.support import new_meta, payment_body, refund_body
from tools.devhost import DevHost, load_local_settings
from tools.worker_load import FunctionLoadRefused

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def host_env(tmp_path: Path) -> dict[str, str]:
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"1001": {"gatewayTypeId": 900, "credentials": {}}}))
    return {
        "CREDENTIAL_SOURCE": "file",
        "LOCAL_CREDENTIALS_FILE": str(credentials),
        "ENABLE_SIMULATOR": "true",
        "IDEMPOTENCY_STORE": "sqlite",
        "IDEMPOTENCY_SQLITE_PATH": str(tmp_path / "idempotency.sqlite"),
        "DEVHOST_LOG": str(tmp_path / "devhost.log"),
    }


def test_payment_and_refund_over_http(host_env: dict[str, str]) -> None:
    with devhost(host_env, "--no-timers") as (base, log_path):
        meta = new_meta()
        paid = requests.post(
            f"{base}/paymentGateway/processPayment",
            headers={"BVMeta": json.dumps(meta)}, json=payment_body(), timeout=10,
        )
        assert paid.status_code == 200, paid.text
        assert json.loads(paid.headers["BVMeta"]) == meta
        payment_id = paid.json()["detail"]["paymentTransactionId"]

        refunded = requests.patch(
            f"{base}/paymentGateway/processRefund",
            headers={"BVMeta": json.dumps(new_meta())}, json=refund_body(payment_id), timeout=10,
        )
        assert refunded.status_code == 200, refunded.text
        assert refunded.json()["detail"]["success"] is True

        wrong_method = requests.get(f"{base}/paymentGateway/processPayment", timeout=10)
        assert wrong_method.status_code == 405
        assert requests.post(f"{base}/api/paymentGateway/processPayment", timeout=10).status_code == 404

    log = log_path.read_text()
    audit = [json.loads(line.split(" INFO ", 1)[1]) for line in log.splitlines() if "paymentgateway.audit" in line]
    assert [a["data"]["status"] for a in audit] == [200, 200]
    assert audit[0]["transactionId"] == meta["transactionId"]
    assert "4242424242424242" not in log and '"987"' not in log


def test_function_key_is_enforced_when_given(host_env: dict[str, str]) -> None:
    with devhost(host_env, "--no-timers", "--function-key", "local-test-key") as (base, _):
        url = f"{base}/paymentGateway/processPayment"
        headers = {"BVMeta": json.dumps(new_meta())}
        assert requests.post(url, headers=headers, json=payment_body(), timeout=10).status_code == 401
        keyed_headers = {**headers, "x-functions-key": "local-test-key"}
        keyed = requests.post(url, headers=keyed_headers, json=payment_body(), timeout=10)
        assert keyed.status_code == 200
        # /health is anonymous: probes carry no key.
        probed = requests.get(f"{base}/health", timeout=10)
        assert probed.status_code == 200, probed.text
        assert probed.json() == {
            "status": "ok",
            "checks": {"configuration": "ok", "idempotencyStore": "ok", "credentialStore": "ok"},
        }
        assert requests.get(f"{base}/health?probe=live", timeout=10).json() == {"status": "ok", "checks": {}}
        assert requests.post(f"{base}/health", timeout=10).status_code == 405


def test_routes_come_from_function_json_and_host_json() -> None:
    host = DevHost(ROOT)
    assert host.prefix == ""
    routes = {f.name: (f.route, f.methods, f.auth_level) for f in host.functions}
    assert routes["ProcessPayment"] == ("paymentGateway/processPayment", ("POST",), "function")
    assert routes["ProcessRefund"] == ("paymentGateway/processRefund", ("PATCH",), "function")
    assert routes["Health"] == ("health", ("GET",), "anonymous")


def test_local_settings_load_like_func_start_with_the_environment_winning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "local.settings.json").write_text(
        json.dumps({"IsEncrypted": False, "Values": {"DEVHOST_T1": "from-file", "DEVHOST_T2": "from-file"}})
    )
    monkeypatch.setenv("DEVHOST_T2", "from-env")
    monkeypatch.delenv("DEVHOST_T1", raising=False)
    load_local_settings(tmp_path)
    assert os.environ["DEVHOST_T1"] == "from-file"
    assert os.environ["DEVHOST_T2"] == "from-env"
    monkeypatch.delenv("DEVHOST_T1")


def test_timer_functions_are_discovered_with_their_schedule() -> None:
    host = DevHost(ROOT)
    assert [(t.name, t.every_seconds) for t in host.timers] == [("ReconcileUnknown", 300)]


def test_the_devhost_serves_the_entry_points_the_worker_runtime_registered() -> None:
    host = DevHost(ROOT)
    modules = {f.name: f.main.__module__ for f in [*host.functions, *host.timers]}
    names = ("Health", "ProcessPayment", "ProcessRefund", "ReconcileUnknown")
    assert modules == {name: f"__app__.{name}" for name in names}


def test_the_devhost_refuses_to_start_with_a_function_the_worker_refuses(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0"}))
    folder = tmp_path / "DevhostRefusedTimer"
    folder.mkdir()
    (folder / "__init__.py").write_text(
        "import azure.functions as func\n\n\ndef main(timer: func.TimerRequest | None) -> None:\n    pass\n"
    )
    (folder / "function.json").write_text(json.dumps({"bindings": [
        {"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": "0 */5 * * * *"},
    ]}))
    with pytest.raises(FunctionLoadRefused, match="binding timer has invalid non-type annotation"):
        DevHost(tmp_path)
