"""Every bad input gets the contract's status and envelope, never a 500, and never echoes a card."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from shared import runtime
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


@pytest.mark.parametrize("body", [b"", b"{not json", b"[1,2,3]", b'"text"', b"\xff\xfe", b"NaN", b'{"amount": NaN}'])
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
        ("currencyType", 999),
        ("currencyType", "USD"),
        ("gatewayTypeId", "900"),
        ("merchantAccountId", 0),
        ("merchantAccountId", "1001"),
        ("userId", None),
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
        ("currencyType", 1),
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


def test_unknown_merchant_account_is_503_credentials_unavailable() -> None:
    result = pay(payment_body(merchantAccountId=999999))
    assert result.status == 503
    assert result.detail["statusCode"] == "credentials_unavailable"
    assert "999999" in result.detail["responseDetail"]


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
