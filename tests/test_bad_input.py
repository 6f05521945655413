"""Every bad input gets the contract's status and envelope, never a 500, and never echoes a card."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import requests

from shared import runtime
from tests.devhost_process import devhost
from tests.support import (
    SIMULATOR_ACCOUNT,
    install_service,
    make_settings,
    new_meta,
    pay,
    payment_body,
    refund,
    refund_body,
)

pytestmark = pytest.mark.usefixtures("simulator_service")

ENVELOPE_KEYS = {
    "success", "statusCode", "gatewayHttpStatusCode", "responseMessage", "responseDetail",
    "paymentTransactionId", "merchantAccountId", "errorCode",
}


def assert_envelope(detail: dict[str, Any]) -> None:
    assert set(detail) >= ENVELOPE_KEYS
    assert detail["success"] is False


@pytest.mark.parametrize(
    "meta",
    [
        "",
        "not json",
        "[1, 2]",
        json.dumps({"universityId": 7, "userId": 42}),
        json.dumps({"transactionId": "not-a-uuid", "universityId": 7, "userId": 42}),
        json.dumps({"transactionId": "6f1c2a0e-3b7e-4f7a-9d55-1a2b3c4d5e6f", "universityId": "7", "userId": 42}),
        json.dumps({"transactionId": "6f1c2a0e-3b7e-4f7a-9d55-1a2b3c4d5e6f", "universityId": 7}),
        json.dumps({"transactionId": "6f1c2a0e-3b7e-4f7a-9d55-1a2b3c4d5e6f", "universityId": True, "userId": 42}),
        json.dumps({"transactionId": "6f1c2a0e-3b7e-4f7a-9d55-1a2b3c4d5e6f", "universityId": -1, "userId": 42}),
        json.dumps({"transactionId": "6f1c2a0e-3b7e-4f7a-9d55-1a2b3c4d5e6f", "universityId": 7, "userId": 2**31}),
        json.dumps({"transactionId": "6f1c2a0e-3b7e-4f7a-9d55-1a2b3c4d5e6f", "universityId": 10**400, "userId": 1}),
        '{"transactionId": ' + "[" * 1000 + "]" * 1000 + ', "universityId": 7, "userId": 42}',
        # Valid keys plus an ignored key nested 1000 deep.
        '{"transactionId": "6f1c2a0e-3b7e-4f7a-9d55-1a2b3c4d5e6f", "universityId": 7, "userId": 42, "x": '
        + '{"a": ' * 1000 + "1" + "}" * 1000 + "}",
    ],
)
def test_bad_bvmeta_is_400_incomplete_request(meta: str) -> None:
    for result in (pay(payment_body(), meta), refund(refund_body("sim_x"), meta)):
        assert result.status == 400
        assert_envelope(result.detail)
        assert result.detail["responseDetail"] == "Incomplete request"


def test_missing_bvmeta_header_is_400() -> None:
    from ProcessPayment import main
    from tests.support import PAYMENT_URL, call, http_request

    result = call(main, http_request("POST", PAYMENT_URL, payment_body(), None))
    assert result.status == 400
    assert result.detail["responseDetail"] == "Incomplete request"
    assert "BVMeta" not in result.headers


DEEP_LIST = b"[" * 1000 + b"]" * 1000
DEEP_OBJECT = b'{"a": ' * 1000 + b"1" + b"}" * 1000
DEEPER_THAN_ANY_DECODER = b"[" * 100_000 + b"]" * 100_000  # past the JSON decoder's recursion limit


@pytest.mark.parametrize(
    "body",
    [
        b"", b"{not json", b"[1,2,3]", b'"text"', b"\xff\xfe", b"NaN", b'{"amount": NaN}',
        # Nested 1000 deep: the JSON decoder's recursion limit, not a 500.
        DEEP_LIST, DEEP_OBJECT, b'{"comment": ' + DEEP_LIST + b"}", b'{"ignored": ' + DEEP_OBJECT + b"}",
        b'{"credentials": ' + DEEP_OBJECT + b"}", DEEPER_THAN_ANY_DECODER,
    ],
)
def test_non_json_or_non_object_body_is_422(body: bytes) -> None:
    result = pay(body)
    assert result.status == 422
    assert_envelope(result.detail)
    assert result.detail["errors"]


TODAY = dt.datetime.now(dt.UTC).date()
LAST_MONTH = (TODAY.replace(day=1) - dt.timedelta(days=1)).strftime("%m%y")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("account", "4242424242424241"),  # Luhn fails
        ("account", "424242424242"),  # 12 digits
        ("account", "42424242424242424242"),  # 20 digits
        ("account", "4242-4242-4242-4242"),
        ("account", 4242424242424242),
        ("expDate", "1330"),
        ("expDate", "0030"),
        ("expDate", "12/30"),
        ("expDate", LAST_MONTH),
        ("cvv2", "12"),
        ("cvv2", "12345"),
        ("cvv2", "12a"),
        ("amount", 0),
        ("amount", -5),
        ("amount", 10.001),
        ("amount", 100000.01),
        ("amount", "ten"),
        ("amount", None),
        # The contract says number: a JSON string is refused whatever it holds (V1's lax parsing
        # charged "\u0661\u0662\u0663" as 123.00 and "1_000" as 1000.00).
        ("amount", "25.00"),
        ("amount", "25"),
        ("amount", "\u0661\u0662\u0663"),
        ("amount", "1_000"),
        ("amount", True),
        ("amount", {"value": 25}),
        ("currencyType", 999),
        ("currencyType", "USD"),
        ("currencyType", "840"),
        ("currencyType", True),
        ("gatewayTypeId", "900"),
        ("gatewayTypeId", True),
        ("gatewayTypeId", 0),
        ("gatewayTypeId", 2**31),
        ("merchantAccountId", 0),
        ("merchantAccountId", "1001"),
        ("merchantAccountId", 1001.0),
        ("merchantAccountId", True),
        ("merchantAccountId", 2**31),
        ("merchantAccountId", 10**400),
        ("userId", None),
        ("userId", "42"),
        ("userId", False),
        ("userId", -1),
        ("userId", 2**31),
        ("gatewayTypeName", "x" * 101),
        ("gatewayTypeName", 900),
        ("name", "x" * 101),
        ("comment", "x" * 256),
        ("zip", "12345678901"),
    ],
)
def test_each_payment_field_rule_is_422_naming_the_field(field: str, value: Any) -> None:
    body = payment_body()
    if value is None:
        body.pop(field)
    else:
        body[field] = value
    result = pay(body)
    assert result.status == 422, result.body
    assert_envelope(result.detail)
    assert [e["field"] for e in result.detail["errors"]] == [field]
    assert field in result.detail["responseDetail"]
    if field == "account" and isinstance(value, str) and value.isdigit():
        assert value not in result.text


def test_current_month_expiry_is_accepted() -> None:
    assert pay(payment_body(expDate=TODAY.strftime("%m%y"))).status == 200


def test_amount_with_trailing_zero_places_is_accepted_and_exact() -> None:
    result = pay(json.dumps(payment_body()).replace('"amount": 25.0', '"amount": 19.990').encode())
    assert result.status == 200, result.body


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("paymentTransactionId", None),
        ("paymentTransactionId", ""),
        ("paymentTransactionId", "x" * 65),
        ("amount", 0),
        ("amount", 1.234),
        ("amount", "5.00"),
        ("amount", "\u0661\u0662\u0663"),
        ("amount", True),
        ("currencyType", 1),
        ("currencyType", "840"),
        ("merchantAccountId", 2**31),
        ("userId", 2**31),
        ("gatewayTypeName", "x" * 101),
        ("maskedCardNumber", "4242424242424242"),
        ("maskedCardNumber", "42xx"),
    ],
)
def test_each_refund_field_rule_is_422(field: str, value: Any) -> None:
    body = refund_body("sim_x")
    if value is None:
        body.pop(field)
    else:
        body[field] = value
    result = refund(body)
    assert result.status == 422, result.body
    assert [e["field"] for e in result.detail["errors"]] == [field]
    assert "4242424242424242" not in result.text


def test_unknown_gateway_type_is_400() -> None:
    result = pay(payment_body(gatewayTypeId=77))
    assert result.status == 400
    assert result.detail["statusCode"] == "unknown_gateway_type"


def test_gateway_type_not_matching_the_secret_is_400_and_no_call(tmp_path: Any) -> None:
    # Account 1001 is a simulator account; the request claims it is CardConnect.
    result = pay(payment_body(gatewayTypeId=2, gatewayTypeName="CardConnect"))
    assert result.status == 400
    assert result.detail["statusCode"] == "gateway_type_mismatch"


def test_credentials_in_body_are_refused_and_never_echoed() -> None:
    result = pay(payment_body(credentials={"username": "legacy-user", "password": "legacy-pass-value"}))
    assert result.status == 400
    assert result.detail["statusCode"] == "credentials_not_allowed"
    assert "legacy-pass-value" not in result.text


def test_credentials_in_body_are_used_when_the_migration_setting_is_on(tmp_path: Any) -> None:
    settings = make_settings(tmp_path, allow_request_credentials=True)
    settings.local_credentials_file.write_text("{}")
    install_service(settings)
    try:
        result = pay(payment_body(merchantAccountId=4242, credentials={}))
        assert result.status == 200
    finally:
        runtime.install(None)


def test_unknown_merchant_account_is_400_not_configured_and_not_retryable() -> None:
    result = pay(payment_body(merchantAccountId=999999))
    assert result.status == 400
    assert result.detail["statusCode"] == "merchant_account_not_configured"
    assert "999999" in result.detail["responseDetail"]
    assert "Retry-After" not in result.headers


def test_a_stored_secret_missing_a_field_is_503_credentials_malformed(tmp_path: Any) -> None:
    settings = make_settings(tmp_path)
    settings.local_credentials_file.write_text(json.dumps({
        "2001": {"gatewayTypeId": 2, "credentials": {"username": "u", "merchantId": "496160873888"}},
        "2002": {"gatewayTypeId": "two"},
    }))
    install_service(settings)
    try:
        for account in (2001, 2002):
            result = pay(payment_body(gatewayTypeId=2, merchantAccountId=account))
            assert result.status == 503
            assert result.detail["statusCode"] == "credentials_malformed"
            assert str(account) in result.detail["responseDetail"]
            assert result.headers["Retry-After"]
    finally:
        runtime.install(None)


def test_simulator_is_refused_unless_enabled(tmp_path: Any) -> None:
    settings = make_settings(tmp_path, enable_simulator=False)
    settings.local_credentials_file.write_text(json.dumps({str(SIMULATOR_ACCOUNT): {"gatewayTypeId": 900}}))
    install_service(settings)
    try:
        result = pay(payment_body())
        assert result.status == 400
        assert result.detail["statusCode"] == "unknown_gateway_type"
    finally:
        runtime.install(None)


def test_refund_without_payment_id_is_422() -> None:
    body = refund_body("x")
    del body["paymentTransactionId"]
    result = refund(body)
    assert result.status == 422
    assert result.detail["errors"][0]["field"] == "paymentTransactionId"


def test_unexpected_failure_is_500_envelope_without_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("card 4242424242424242 exploded")

    monkeypatch.setattr(runtime.service(), "handle", explode)
    result = pay(payment_body(), new_meta())
    assert result.status == 500
    assert result.detail["statusCode"] == "internal_error"
    assert "Traceback" not in result.text and "4242424242424242" not in result.text


# --- the same over HTTP, through the devhost -------------------------------------------------


@pytest.fixture(scope="module")
def live_host(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("bad_input_http")
    credentials = tmp / "credentials.json"
    # 1003 is listed without a secret: configured nowhere, like an account missing from Key Vault.
    credentials.write_text(json.dumps({"1001": {"gatewayTypeId": 900, "credentials": {}}, "1003": None}))
    env = {
        "CREDENTIAL_SOURCE": "file",
        "LOCAL_CREDENTIALS_FILE": str(credentials),
        "ENABLE_SIMULATOR": "true",
        "IDEMPOTENCY_STORE": "sqlite",
        "IDEMPOTENCY_SQLITE_PATH": str(tmp / "idempotency.sqlite"),
        "DEVHOST_LOG": str(tmp / "devhost.log"),
    }
    with devhost(env, "--no-timers") as (base, log_path):
        yield base
    assert "unexpected" not in log_path.read_text()


def post(base: str, body: bytes | dict[str, Any], meta: str | None = None) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"BVMeta": meta or json.dumps(new_meta()), "Content-Type": "application/json"}
    return requests.post(f"{base}/paymentGateway/processPayment", headers=headers, data=data, timeout=10)


def test_hostile_bodies_over_http_are_4xx(live_host: str) -> None:
    from gateways.simulator import LEDGER

    # 1000 levels: past Python 3.11's decoder recursion limit, within 3.13's (then the rules refuse it).
    deep = post(live_host, b'{"comment": ' + DEEP_LIST + b"}")
    assert deep.status_code == 422, deep.text
    deeper = post(live_host, b'{"comment": ' + DEEPER_THAN_ANY_DECODER + b"}")
    assert deeper.status_code == 422, deeper.text
    assert deeper.json()["detail"]["errors"] == [{"field": "body", "message": "nested too deeply"}]

    nested_meta = json.dumps(new_meta())[:-1] + ', "x": ' + "[" * 1000 + "]" * 1000 + "}"
    assert post(live_host, payment_body(), nested_meta).status_code == 400

    for amount in ('"\u0661\u0662\u0663"', '"1_000"', '"25.00"', "true"):
        text = json.dumps(payment_body(amount=None))[:-1] + f', "amount": {amount}}}'
        refused = post(live_host, text.encode())
        assert refused.status_code == 422, (amount, refused.text)
        assert [e["field"] for e in refused.json()["detail"]["errors"]] == ["amount"]

    # Written out as text: past 4300 digits Python itself refuses to turn an integer into a string
    # or back (its ValueError once read as "not valid JSON"); the id's own bound still names it.
    for account_id in (str(2**31), "1" + "0" * 1000, "9" * 5000, "-" + "9" * 5000):
        text = json.dumps(payment_body())[:-1] + f', "merchantAccountId": {account_id}}}'
        too_large = post(live_host, text.encode())
        assert too_large.status_code == 422, too_large.text
        assert [e["field"] for e in too_large.json()["detail"]["errors"]] == ["merchantAccountId"]
    for amount in ("9" * 5000, "9" * 5000 + ".00"):
        text = json.dumps(payment_body(amount=None))[:-1] + f', "amount": {amount}}}'
        too_large = post(live_host, text.encode())
        assert too_large.status_code == 422, too_large.text
        assert too_large.json()["detail"]["errors"] == [{"field": "amount", "message": "must be at most 100000.00"}]
    assert LEDGER.payments(2**31) == []


@pytest.mark.parametrize("account", [1003, 424242])
def test_an_account_without_a_stored_secret_is_400_over_http(live_host: str, account: int) -> None:
    meta = json.dumps(new_meta())
    for _ in range(2):  # and the same again on a retry: nothing was stored, nothing to wait for
        answer = post(live_host, payment_body(merchantAccountId=account), meta)
        assert answer.status_code == 400, answer.text
        assert answer.json()["detail"]["statusCode"] == "merchant_account_not_configured"
        assert "Retry-After" not in answer.headers
