"""The accounts CLI against the real SecretClient, with the fake Key Vault behind its transport."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar

import pytest

from gateways.base import CredentialField, Gateway, GatewayContext
from gateways.errors import CredentialsRejected, GatewayUnreachable
from gateways.registry import gateway_types
from shared.credentials import SECRET_CONTENT_TYPE
from shared.errors import CredentialsMalformed
from shared.factory import normalise_credentials
from shared.settings import Settings
from tests.conftest import LeakGuard
from tests.fakes.keyvault import FakeKeyVault
from tests.support import UncalledGateway
from tools import accounts

ACCOUNT = 4242
NAME = f"merchant-account-{ACCOUNT}"
USERNAME, PASSWORD, MERCHANT_ID = "opsuser-7f3k", "S3cr3t-Pa55word!", "496160873888"


class LoginGateway(UncalledGateway):
    """Shaped like CardConnect, without depending on its file."""

    type_id = 501
    name = "LoginPay"
    credential_fields = (
        CredentialField("username", "Login", 1, aliases=("login",)),
        CredentialField("password", "Password", 2),
        CredentialField("merchantId", "MerchantId", 3),
    )


class VerifyingGateway(UncalledGateway):
    type_id = 502
    name = "Verifier"
    credential_fields = (CredentialField("apiKey", "ApiKey", 1),)
    seen: ClassVar[list[dict[str, str]]] = []

    def verify_credentials(self) -> None:
        self.seen.append(dict(self.credentials))
        key = self.credentials["apiKey"]
        if key.startswith("rejected"):
            # A gateway may quote what it refused; the CLI must not pass that on.
            raise CredentialsRejected(f"invalid api key {key}", code="401", http_status=401)
        if key.startswith("unreachable"):
            raise GatewayUnreachable("connection refused")


class OptionGateway(UncalledGateway):
    """A gateway with a per-merchant option beside its credentials (Payflow's `heldForReview`)."""

    type_id = 503
    name = "Optional"
    credential_fields = (
        CredentialField("apiKey", "ApiKey", 1),
        CredentialField("policy", "Policy", 2, required=False),
    )


TEST_TYPES: dict[int, type[Gateway]] = {
    **gateway_types(),
    LoginGateway.type_id: LoginGateway,
    VerifyingGateway.type_id: VerifyingGateway,
    OptionGateway.type_id: OptionGateway,
}


class RecordingPrompt:
    """Stands in for getpass: answers by the field name in the prompt and records every prompt."""

    def __init__(self, answers: Mapping[str, str]) -> None:
        self.answers = answers
        self.prompts: list[str] = []

    def __call__(self, text: str) -> str:
        self.prompts.append(text)
        return next((value for name, value in self.answers.items() if f"({name})" in text), "")


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "gateway_type", TEST_TYPES.get)
    monkeypatch.setattr(accounts, "gateway_types", lambda: TEST_TYPES)
    VerifyingGateway.seen.clear()


@pytest.fixture
def vault(leak_guard: LeakGuard) -> Iterator[FakeKeyVault]:
    leak_guard.watch(USERNAME, PASSWORD, MERCHANT_ID)
    yield FakeKeyVault()


def run(vault: FakeKeyVault, *argv: str, prompt: RecordingPrompt | None = None, stdin: str = "") -> int:
    return accounts.main(
        ["--vault-url", vault.url, *argv],
        secrets=vault.client(),
        prompt=prompt or RecordingPrompt({}),
        stdin=io.StringIO(stdin),
        settings=Settings(),
    )


def assert_no_secret_in(text: str, *values: str) -> None:
    for value in values or (USERNAME, PASSWORD, MERCHANT_ID):
        assert value not in text


def puts(vault: FakeKeyVault) -> list[dict[str, object]]:
    return [r.body for r in vault.requests if r.method == "PUT" and r.body is not None]


def set_login(vault: FakeKeyVault, *extra: str, password: str = PASSWORD) -> int:
    prompt = RecordingPrompt({"username": USERNAME, "password": password, "merchantId": MERCHANT_ID})
    return run(vault, "set", str(ACCOUNT), "--gateway-type", "501", *extra, prompt=prompt)


def test_set_prompts_for_each_declared_field_and_writes_the_contract_json(
    vault: FakeKeyVault, capsys: pytest.CaptureFixture[str]
) -> None:
    prompt = RecordingPrompt({"username": USERNAME, "password": PASSWORD, "merchantId": MERCHANT_ID})
    assert run(vault, "set", str(ACCOUNT), "--gateway-type", "501", "--updated-by", "alice", prompt=prompt) == 0

    assert prompt.prompts == [
        "LoginPay Login (username): ",
        "LoginPay Password (password): ",
        "LoginPay MerchantId (merchantId): ",
    ]
    (stored,) = vault.secrets[NAME]
    assert stored.value == json.dumps(
        {"gatewayTypeId": 501, "credentials": {"username": USERNAME, "password": PASSWORD, "merchantId": MERCHANT_ID}}
    )
    assert stored.content_type == SECRET_CONTENT_TYPE == "application/json"
    assert stored.tags == {"gatewayTypeId": "501", "gatewayTypeName": "LoginPay", "updatedBy": "alice"}
    (put,) = puts(vault)
    assert put["value"] == stored.value and put["contentType"] == "application/json"

    out = capsys.readouterr()
    assert f"{NAME}: created, version {stored.version}" in out.out
    assert_no_secret_in(out.out + out.err)


def test_the_service_reads_what_set_wrote(vault: FakeKeyVault) -> None:
    assert set_login(vault) == 0
    account = vault.client().load(ACCOUNT)
    assert account.gateway_type_id == 501
    assert dict(account.credentials) == {"username": USERNAME, "password": PASSWORD, "merchantId": MERCHANT_ID}


def test_rotation_adds_a_version_with_the_new_value(vault: FakeKeyVault, capsys: pytest.CaptureFixture[str]) -> None:
    assert set_login(vault) == 0
    assert set_login(vault, password="N3w-Pa55word!") == 0

    first, second = vault.secrets[NAME]
    assert first.version != second.version
    assert json.loads(first.value)["credentials"]["password"] == PASSWORD
    assert json.loads(second.value)["credentials"]["password"] == "N3w-Pa55word!"
    assert vault.client().load(ACCOUNT).version == second.version
    out = capsys.readouterr()
    assert f"{NAME}: rotated, version {second.version}" in out.out
    assert_no_secret_in(out.out + out.err, USERNAME, PASSWORD, MERCHANT_ID, "N3w-Pa55word!")


def test_set_reads_a_json_file_by_label_or_name(vault: FakeKeyVault, tmp_path: Path) -> None:
    path = tmp_path / "creds.json"
    path.write_text(json.dumps({"Login": USERNAME, "password": PASSWORD, "MERCHANTID": MERCHANT_ID}))
    assert run(vault, "set", str(ACCOUNT), "--gateway-type", "501", "--from-file", str(path)) == 0
    stored = json.loads(vault.secrets[NAME][-1].value)
    assert stored["credentials"] == {"username": USERNAME, "password": PASSWORD, "merchantId": MERCHANT_ID}


def test_set_reads_the_contract_shape_from_stdin(vault: FakeKeyVault, capsys: pytest.CaptureFixture[str]) -> None:
    document = {"gatewayTypeId": 501, "credentials": {"username": USERNAME, "password": PASSWORD,
                                                      "merchantId": int(MERCHANT_ID), "extra": "x"}}
    assert run(vault, "set", str(ACCOUNT), "--gateway-type", "501", "--from-file", "-",
               stdin=json.dumps(document)) == 0
    stored = json.loads(vault.secrets[NAME][-1].value)
    assert stored["credentials"] == {"username": USERNAME, "password": PASSWORD, "merchantId": MERCHANT_ID}
    out = capsys.readouterr()
    assert "ignored fields LoginPay does not declare: extra" in out.err
    assert_no_secret_in(out.out + out.err)


def test_set_works_with_a_real_registered_gateway(vault: FakeKeyVault) -> None:
    payload = TEST_TYPES[1]
    answers = {spec.name: f"value-of-{spec.name}-0123456789" for spec in payload.credential_fields}
    prompt = RecordingPrompt(answers)
    assert run(vault, "set", str(ACCOUNT), "--gateway-type", "1", prompt=prompt) == 0
    assert len(prompt.prompts) == len(payload.credential_fields)
    assert json.loads(vault.secrets[NAME][-1].value) == {"gatewayTypeId": 1, "credentials": answers}


def test_an_optional_field_is_prompted_as_such_and_left_out_when_empty(vault: FakeKeyVault) -> None:
    prompt = RecordingPrompt({"apiKey": "key-0123456789"})
    assert run(vault, "set", str(ACCOUNT), "--gateway-type", "503", prompt=prompt) == 0
    assert prompt.prompts == [
        "Optional ApiKey (apiKey): ", "Optional Policy (policy) [optional: Enter leaves it out]: "
    ]
    assert json.loads(vault.secrets[NAME][-1].value)["credentials"] == {"apiKey": "key-0123456789"}
    assert dict(normalise_credentials(OptionGateway.credential_fields, {"ApiKey": "k"}, ACCOUNT)) == {"apiKey": "k"}

    prompt = RecordingPrompt({"apiKey": "key-0123456789", "policy": "accept"})
    assert run(vault, "set", str(ACCOUNT), "--gateway-type", "503", prompt=prompt) == 0
    assert json.loads(vault.secrets[NAME][-1].value)["credentials"] == {"apiKey": "key-0123456789", "policy": "accept"}
    OptionGateway({"apiKey": "k"}, GatewayContext(ACCOUNT, "", None))  # the gateway takes it without the option
    with pytest.raises(CredentialsMalformed):
        normalise_credentials(OptionGateway.credential_fields, {"policy": "accept"}, ACCOUNT)


def test_set_refuses_an_unknown_gateway_type(vault: FakeKeyVault, capsys: pytest.CaptureFixture[str]) -> None:
    prompt = RecordingPrompt({"username": USERNAME})
    assert run(vault, "set", str(ACCOUNT), "--gateway-type", "77", prompt=prompt) == 1
    assert prompt.prompts == []
    assert vault.secrets == {} and puts(vault) == []
    assert "gateway type 77 is not registered" in capsys.readouterr().err


def test_set_refuses_the_simulator(vault: FakeKeyVault) -> None:
    assert 900 in TEST_TYPES
    assert run(vault, "set", str(ACCOUNT), "--gateway-type", "900") == 1
    assert vault.secrets == {}


def test_set_refuses_a_missing_field(vault: FakeKeyVault, capsys: pytest.CaptureFixture[str]) -> None:
    prompt = RecordingPrompt({"username": USERNAME, "merchantId": MERCHANT_ID})
    assert run(vault, "set", str(ACCOUNT), "--gateway-type", "501", prompt=prompt) == 1
    assert vault.secrets == {} and puts(vault) == []
    out = capsys.readouterr()
    assert "nothing was written" in out.err and "lack password" in out.err
    assert_no_secret_in(out.out + out.err)


def test_set_refuses_a_file_missing_a_field(vault: FakeKeyVault, tmp_path: Path) -> None:
    path = tmp_path / "creds.json"
    path.write_text(json.dumps({"username": USERNAME, "password": PASSWORD}))
    assert run(vault, "set", str(ACCOUNT), "--gateway-type", "501", "--from-file", str(path)) == 1
    assert vault.secrets == {}


def test_set_does_not_echo_a_broken_file(vault: FakeKeyVault, capsys: pytest.CaptureFixture[str]) -> None:
    broken = '{"username": "' + USERNAME + '", "password": ' + PASSWORD + "}"
    assert run(vault, "set", str(ACCOUNT), "--gateway-type", "501", "--from-file", "-", stdin=broken) == 1
    assert vault.secrets == {}
    out = capsys.readouterr()
    assert "not valid JSON" in out.err
    assert_no_secret_in(out.out + out.err)


def test_set_refuses_a_file_for_another_gateway_type(vault: FakeKeyVault) -> None:
    document = {"gatewayTypeId": 1, "credentials": {"username": USERNAME, "password": PASSWORD, "merchantId": "1"}}
    assert run(vault, "set", str(ACCOUNT), "--gateway-type", "501", "--from-file", "-",
               stdin=json.dumps(document)) == 1
    assert vault.secrets == {}


def test_set_refuses_to_move_an_account_to_another_type_unless_asked(vault: FakeKeyVault) -> None:
    vault.set(NAME, json.dumps({"gatewayTypeId": 502, "credentials": {"apiKey": "k"}}))
    assert set_login(vault) == 1
    assert len(vault.secrets[NAME]) == 1
    assert set_login(vault, "--change-type") == 0
    assert json.loads(vault.secrets[NAME][-1].value)["gatewayTypeId"] == 501


def test_show_masks_every_value(vault: FakeKeyVault, capsys: pytest.CaptureFixture[str]) -> None:
    assert set_login(vault, "--updated-by", "alice") == 0
    capsys.readouterr()
    assert run(vault, "show", str(ACCOUNT)) == 0
    out = capsys.readouterr()
    assert_no_secret_in(out.out + out.err)
    text = out.out
    assert "gateway type: 501 (LoginPay)" in text
    assert f"version:      {vault.secrets[NAME][-1].version}" in text
    assert "updated by:   alice" in text
    assert "content type: application/json" in text
    lines = {line.split()[0]: line.split()[1] for line in text.splitlines()[-3:]}
    assert lines == {"username": "****", "password": "****", "merchantId": "****3888"}


def test_show_names_a_missing_field_without_values(vault: FakeKeyVault, capsys: pytest.CaptureFixture[str]) -> None:
    vault.set(NAME, json.dumps({"gatewayTypeId": 501, "credentials": {"login": USERNAME, "password": PASSWORD}}))
    assert run(vault, "show", str(ACCOUNT)) == 0
    out = capsys.readouterr().out
    assert "lack merchantId" in out
    assert_no_secret_in(out)


def test_show_of_a_missing_account_is_an_error(vault: FakeKeyVault, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(vault, "show", str(ACCOUNT)) == 2
    assert f"no secret {NAME}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("password", PASSWORD, "****"),
        ("apiKey", "sk_live_0123456789abcdef", "****"),
        ("username", "a-very-long-user-name", "****"),
        ("merchantId", MERCHANT_ID, "****3888"),
        ("processingId", "acct_3bW9JMapnT2sCPj7wPRg", "****wPRg"),
        ("merchantId", "123456789", "****"),
    ],
)
def test_mask_never_shows_more_than_the_last_four(field: str, value: str, shown: str) -> None:
    assert accounts.mask(field, value) == shown


def test_list_lists_accounts_without_reading_values(vault: FakeKeyVault, capsys: pytest.CaptureFixture[str]) -> None:
    assert set_login(vault) == 0
    vault.set("merchant-account-7", json.dumps({"gatewayTypeId": 502, "credentials": {"apiKey": "k"}}))
    vault.set("idempotency-hmac-key", "not an account", content_type=None)
    capsys.readouterr()
    reads_before = vault.reads()

    assert run(vault, "list") == 0
    assert vault.reads() == reads_before
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("merchant-account-7  gatewayTypeId ? (untagged")
    assert lines[1].startswith(f"{NAME}  gatewayTypeId 501 (LoginPay)")
    assert lines[2] == "2 merchant account(s)"


def store_verifier(vault: FakeKeyVault, api_key: str) -> None:
    vault.set(NAME, json.dumps({"gatewayTypeId": 502, "credentials": {"apiKey": api_key}}))


def test_verify_accepted(vault: FakeKeyVault, capsys: pytest.CaptureFixture[str]) -> None:
    store_verifier(vault, "good-key-0123456789")
    assert run(vault, "verify", str(ACCOUNT)) == 0
    assert VerifyingGateway.seen == [{"apiKey": "good-key-0123456789"}]
    assert "Verifier accepted" in capsys.readouterr().out


def test_verify_rejected(vault: FakeKeyVault, capsys: pytest.CaptureFixture[str], leak_guard: LeakGuard) -> None:
    leak_guard.watch("rejected-key-0123456789")
    store_verifier(vault, "rejected-key-0123456789")
    assert run(vault, "verify", str(ACCOUNT)) == 1
    out = capsys.readouterr()
    assert "Verifier rejected the credentials" in out.out
    assert "rejected-key-0123456789" not in out.out + out.err


def test_verify_error_when_the_gateway_cannot_be_reached(vault: FakeKeyVault) -> None:
    store_verifier(vault, "unreachable-key")
    assert run(vault, "verify", str(ACCOUNT)) == 2


def test_verify_error_when_there_is_no_secret(vault: FakeKeyVault) -> None:
    assert run(vault, "verify", str(ACCOUNT)) == 2
    assert VerifyingGateway.seen == []


def test_a_vault_is_required(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("KEY_VAULT_URL", raising=False)
    assert accounts.main(["list"]) == 2
    assert "--vault-url" in capsys.readouterr().err
    monkeypatch.setenv("KEY_VAULT_URL", "http://kv.example")
    assert accounts.main(["list"]) == 2


def test_key_vault_down_is_an_error(vault: FakeKeyVault, capsys: pytest.CaptureFixture[str]) -> None:
    vault.down = True
    assert run(vault, "list") == 2
    assert "Key Vault could not be reached" in capsys.readouterr().err


def test_usage_errors_exit_2(vault: FakeKeyVault) -> None:
    assert run(vault, "show", "not-a-number") == 2
    assert run(vault, "set", str(ACCOUNT)) == 2


def test_set_records_the_accounts_currency_and_the_service_reads_it(
    vault: FakeKeyVault, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = {"apiKey": "test_secret_key_0123456789", "processingId": "acct_0123456789"}
    assert run(vault, "set", str(ACCOUNT), "--gateway-type", "1", "--currency", "cad",
               prompt=RecordingPrompt(answers)) == 0

    assert json.loads(vault.secrets[NAME][-1].value) == {"gatewayTypeId": 1, "currency": "CAD",
                                                          "credentials": answers}
    assert vault.client().load(ACCOUNT).currency == "CAD"
    assert "currency CAD" in capsys.readouterr().out
    assert run(vault, "show", str(ACCOUNT)) == 0
    assert "currency:     CAD" in capsys.readouterr().out


def test_rotation_keeps_the_accounts_currency(vault: FakeKeyVault) -> None:
    vault.set(NAME, json.dumps({"gatewayTypeId": 501, "currency": "CAD", "credentials": {"username": "u"}}))
    LoginGateway.currencies = frozenset({"USD", "CAD"})
    try:
        assert set_login(vault) == 0
        assert json.loads(vault.secrets[NAME][-1].value)["currency"] == "CAD"
        assert set_login(vault, "--currency", "USD") == 0
        assert json.loads(vault.secrets[NAME][-1].value)["currency"] == "USD"
    finally:
        del LoginGateway.currencies


def test_an_account_without_a_currency_shows_the_default(
    vault: FakeKeyVault, capsys: pytest.CaptureFixture[str]
) -> None:
    assert set_login(vault) == 0
    assert "currency" not in json.loads(vault.secrets[NAME][-1].value)
    capsys.readouterr()
    assert run(vault, "show", str(ACCOUNT)) == 0
    assert "currency:     USD (default)" in capsys.readouterr().out


@pytest.mark.parametrize("currency", ["GBP", "dollars", "US"])
def test_set_refuses_a_currency_the_gateway_cannot_take(
    vault: FakeKeyVault, capsys: pytest.CaptureFixture[str], currency: str
) -> None:
    assert set_login(vault, "--currency", currency) == 1
    assert "currency" in capsys.readouterr().err
    assert vault.secrets == {}


PAYFLOW_CREDENTIALS = {"partner": "PFPartner", "vendor": "acmeuniv", "user": "acmeapi", "password": "p&ss=w0rd"}


def test_payflow_credentials_are_set_with_the_labels_merchants_see(vault: FakeKeyVault, leak_guard: LeakGuard) -> None:
    leak_guard.watch(*PAYFLOW_CREDENTIALS.values())
    prompt = RecordingPrompt(PAYFLOW_CREDENTIALS)
    assert run(vault, "set", str(ACCOUNT), "--gateway-type", "4", prompt=prompt) == 0

    assert prompt.prompts == [
        "PayPal Payflow Pro Partner (partner): ", "PayPal Payflow Pro Vendor (vendor): ",
        "PayPal Payflow Pro User (user): ", "PayPal Payflow Pro Password (password): ",
        "PayPal Payflow Pro Held For Review (heldForReview) [optional: Enter leaves it out]: ",
    ]
    assert json.loads(vault.secrets[NAME][-1].value) == {"gatewayTypeId": 4, "credentials": PAYFLOW_CREDENTIALS}


def test_payflow_credentials_are_verified_without_charging(
    vault: FakeKeyVault, leak_guard: LeakGuard, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.fakes.payflow import PayflowFake

    leak_guard.watch(*PAYFLOW_CREDENTIALS.values())
    with PayflowFake(vendors={"acmeuniv": ("PFPartner", "acmeapi", "p&ss=w0rd")}) as fake:
        settings = Settings(gateway_url_overrides={"PAYFLOW_URL": fake.base_url})
        verify = ["--vault-url", vault.url, "verify", str(ACCOUNT)]
        vault.set(NAME, json.dumps({"gatewayTypeId": 4, "credentials": PAYFLOW_CREDENTIALS}))
        assert accounts.main(verify, secrets=vault.client(), settings=settings) == 0
        wrong = {**PAYFLOW_CREDENTIALS, "password": "revoked-password"}
        vault.set(NAME, json.dumps({"gatewayTypeId": 4, "credentials": wrong}))
        assert accounts.main(verify, secrets=vault.client(), settings=settings) == 1

        assert [r.raw_body.split("&", 1)[0] for r in fake.requests] == ["TRXTYPE=I", "TRXTYPE=I"]
        assert fake.transactions == {} and fake.auth_failures == 1
    out = capsys.readouterr().out
    assert "PayPal Payflow Pro accepted the credentials" in out and "rejected the credentials" in out
    assert_no_secret_in(out, *PAYFLOW_CREDENTIALS.values(), "revoked-password")
