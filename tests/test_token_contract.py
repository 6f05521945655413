"""The card-token part of the contract: `processPayment` takes a `token` instead of `account`/`cvv2`.

Every malformed combination is a 422 with the envelope and an `errors` list naming the field, never
a 500 and never the token's value. What the account's gateway cannot charge (a token type it does
not take, a card number when it takes tokens only) is refused before any call: no idempotency key
is taken and nothing reaches the gateway. A body without a token is V1 as it was (the existing
tests); token sales at the gateways are in tests/test_flow_tokens.py.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from gateways.base import Gateway
from gateways.registry import gateway_types
from gateways.simulator import LEDGER, SimulatorGateway
from shared.contract import TOKEN_TYPES, PaymentBody
from shared.flow import Operation, PaymentService, order_id_for, request_identity
from tests.conftest import LeakGuard
from tests.support import SIMULATOR_ACCOUNT, audit_lines, new_meta, pay, payment_body

pytestmark = pytest.mark.usefixtures("simulator_service")

CARDSECURE = {"type": "cardsecure", "value": "9418594164531111"}
PAYLOAD_PM = {"type": "payload_payment_method", "value": "pm_3bW9JMoHcb1u4GHb8m7Dl"}
DESCRIPTOR = "COMMON.ACCEPT.INAPP.PAYMENT"
OPAQUE = {"type": "authorizenet_opaque", "value": "eyJjb2RlIjoiNTBfMl8wNjAwMDUz", "descriptor": DESCRIPTOR}
STRIPE_PM = {"type": "stripe_payment_method", "value": "pm_1PqRsTuVwXyZ0123456789ab"}


def token_body(token: Any, **overrides: Any) -> dict[str, Any]:
    """A payment body with `token` instead of the card (None values are left out)."""
    fields: dict[str, Any] = {"token": token, "account": None, "cvv2": None, "expDate": None}
    return payment_body(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (token_body(PAYLOAD_PM, account="4242424242424242"), "account", "is not sent with a token"),
        (token_body(PAYLOAD_PM, cvv2="123"), "cvv2", "is not sent with a token"),
        (token_body(CARDSECURE), "expDate", "Field required"),
        (token_body(CARDSECURE, expDate="0120"), "expDate", "card has expired"),
        (token_body(CARDSECURE, expDate="13/39"), "expDate", "must be MMYY"),
        (token_body(PAYLOAD_PM, expDate="1239"), "expDate", "is not sent with a payload_payment_method token"),
        (token_body(STRIPE_PM, expDate="1239"), "expDate", "is not sent with a stripe_payment_method token"),
        (token_body({"type": "paypal", "value": "x"}), "token.type", "must be one of cardsecure, payload_payment"),
        (token_body({"value": PAYLOAD_PM["value"]}), "token.type", "Field required"),
        (token_body({"type": "payload_payment_method"}), "token.value", "Field required"),
        (token_body({"type": "payload_payment_method", "value": 12345678}), "token.value", "valid string"),
        (token_body({"type": "payload_payment_method", "value": "tok_123456"}), "token.value", "is not a payload"),
        (token_body({"type": "stripe_payment_method", "value": "pm_abc-def"}), "token.value", "is not a stripe"),
        (token_body({"type": "cardsecure", "value": "4242424242424242"}, expDate="1239"), "token.value",
         "all digits: starting with 9"),
        (token_body({"type": "cardsecure", "value": "94185941"}, expDate="1239"), "token.value", "12 to 19"),
        (token_body({"type": "cardsecure", "value": "94185941645311110000"}, expDate="1239"), "token.value",
         "12 to 19"),
        (token_body({**OPAQUE, "value": "not base64!"}), "token.value", "base64"),
        (token_body({**PAYLOAD_PM, "descriptor": DESCRIPTOR}), "token.descriptor",
         "is sent only with authorizenet_opaque"),
        (token_body({"type": "authorizenet_opaque", "value": OPAQUE["value"]}), "token.descriptor",
         "is required for authorizenet_opaque"),
        (token_body({**OPAQUE, "descriptor": "common accept"}), "token.descriptor", "is required for"),
        (token_body({**PAYLOAD_PM, "cvv": "123"}), "token", "Extra inputs are not permitted"),
        (token_body("pm_3bW9JMoHcb1u4GHb8m7Dl"), "token", "valid dictionary"),
        (token_body(None), "account", "Field required"),
        (payment_body(account=None), "account", "Field required"),
        (payment_body(cvv2=None), "cvv2", "Field required"),
    ],
)
def test_every_malformed_card_or_token_combination_is_a_422_naming_the_field(
    body: dict[str, Any], field: str, message: str
) -> None:
    result = pay(body)
    assert result.status == 422, result.text
    assert result.detail["statusCode"] == "validation_error" and result.detail["success"] is False
    errors = {error["field"]: error["message"] for error in result.detail["errors"]}
    assert field in errors and message in errors[field], errors


def test_a_refused_token_is_not_also_judged_as_a_missing_card() -> None:
    result = pay(token_body({"type": "cardsecure", "value": "4242424242424242"}))
    assert [error["field"] for error in result.detail["errors"]] == ["token.value"]


def test_a_token_type_the_gateway_does_not_take_is_refused_before_any_call_naming_the_types_it_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(SimulatorGateway, "token_kinds", frozenset())
    meta = new_meta()
    result = pay(token_body(PAYLOAD_PM), meta)
    assert result.status == 422, result.text
    assert result.detail["statusCode"] == "token_not_accepted"
    message = "Simulator does not take payload_payment_method tokens; token types it takes: none"
    assert result.detail["responseMessage"].startswith(message)
    assert result.detail["errors"] == [{"field": "token.type", "message": result.detail["responseMessage"]}]
    assert LEDGER.by_order(SIMULATOR_ACCOUNT, order_id_for(Operation.PAYMENT, meta["transactionId"])) is None
    # No key was taken: the same transaction with the card number goes through.
    assert pay(payment_body(), meta).status == 200


def test_the_message_names_the_types_the_gateway_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SimulatorGateway, "token_kinds", frozenset({"stripe_payment_method", "cardsecure"}))
    result = pay(token_body(PAYLOAD_PM))
    assert result.status == 422 and result.detail["statusCode"] == "token_not_accepted"
    assert "token types it takes: cardsecure, stripe_payment_method (or send the card number)" in (
        result.detail["responseMessage"]
    )


def test_a_card_number_on_a_token_only_gateway_is_refused_before_any_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SimulatorGateway, "accepts_cards", False)
    monkeypatch.setattr(SimulatorGateway, "token_kinds", frozenset({"stripe_payment_method"}))
    meta = new_meta()
    result = pay(payment_body(), meta)
    assert result.status == 422, result.text
    assert result.detail["statusCode"] == "card_number_not_accepted"
    assert result.detail["errors"] == [
        {"field": "account", "message": "Simulator takes card tokens only (stripe_payment_method), not card numbers"}
    ]
    assert LEDGER.by_order(SIMULATOR_ACCOUNT, order_id_for(Operation.PAYMENT, meta["transactionId"])) is None


def test_every_gateways_token_kinds_are_contract_token_types_and_a_token_only_gateway_declares_some() -> None:
    for cls in gateway_types().values():
        assert cls.token_kinds <= set(TOKEN_TYPES), cls.name
        assert cls.accepts_cards or cls.token_kinds, cls.name
    assert Gateway.token_kinds == frozenset() and Gateway.accepts_cards is True


def test_a_body_with_a_token_parses_to_the_token_and_its_expiry() -> None:
    body = PaymentBody.model_validate(token_body({**CARDSECURE, "value": " 9418594164531111 "}, expDate="0739"))
    assert body.token is not None and body.token.value == "9418594164531111" and body.expDate == "0739"
    assert body.account is None and body.cvv2 is None and body.masked_card_number is None
    assert "9418594164531111" not in repr(body)
    assert PaymentBody.model_validate(token_body(OPAQUE)).token == PaymentBody.model_validate(
        json.loads(json.dumps(token_body(OPAQUE)))
    ).token


def test_the_fingerprint_holds_the_token_so_another_token_under_the_same_key_is_another_request() -> None:
    first = PaymentBody.model_validate(token_body(PAYLOAD_PM))
    again = PaymentBody.model_validate(token_body(dict(PAYLOAD_PM)))
    other = PaymentBody.model_validate(token_body({**PAYLOAD_PM, "value": "pm_9zZ9JMoHcb1u4GHb8m7Dl"}))
    assert request_identity(Operation.PAYMENT, first) == request_identity(Operation.PAYMENT, again)
    assert request_identity(Operation.PAYMENT, first) != request_identity(Operation.PAYMENT, other)
    card = PaymentBody.model_validate(payment_body(amount=Decimal("25.00")))
    assert b"token" not in request_identity(Operation.PAYMENT, card)


def test_a_token_sale_is_charged_audited_with_the_gateways_last_four_and_replayed(leak_guard: LeakGuard) -> None:
    meta = new_meta()
    first = pay(token_body(CARDSECURE, expDate="1239"), meta)
    assert first.status == 200, first.text
    payment = LEDGER.get(SIMULATOR_ACCOUNT, first.detail["paymentTransactionId"])
    assert payment is not None and payment.amount == Decimal("25.00")
    (line,) = [line for line in audit_lines(leak_guard) if line["data"].get("status") == 200]
    assert line["data"]["maskedCardNumber"] == "xxxxxxxxxxxx1111"
    again = pay(token_body(CARDSECURE, expDate="1239"), meta)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.text == first.text
    other = pay(token_body({**CARDSECURE, "value": "9418594164539999"}, expDate="1239"), meta)
    assert other.status == 422 and other.detail["statusCode"] == "idempotency_key_reused"
    assert LEDGER.by_order(SIMULATOR_ACCOUNT, order_id_for(Operation.PAYMENT, meta["transactionId"])) is payment


def test_a_token_sale_whose_gateway_tells_no_last_four_is_audited_without_a_masked_card(leak_guard: LeakGuard) -> None:
    result = pay(token_body(STRIPE_PM))
    assert result.status == 200, result.text
    (line,) = [line for line in audit_lines(leak_guard) if line["data"].get("status") == 200]
    assert "maskedCardNumber" not in line["data"]


def test_no_stored_record_holds_a_token(simulator_service: PaymentService) -> None:
    sent = [(token_body(CARDSECURE, expDate="1239"), CARDSECURE), (token_body(OPAQUE), OPAQUE),
            (token_body({**PAYLOAD_PM, "cvv": "123"}), PAYLOAD_PM)]  # the last one refused (422)
    for body, token in sent:
        meta = new_meta()
        answer = pay(body, meta)
        assert token["value"] not in answer.text
        record = simulator_service.idempotency.get(f"payment:{SIMULATOR_ACCOUNT}:{meta['transactionId']}")
        if answer.status == 200:
            assert record is not None and record.body is not None
        stored = "" if record is None else json.dumps([record.fingerprint, record.body, record.context])
        assert token["value"] not in stored
