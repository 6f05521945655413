"""Both functions end to end through `main(req)` on the simulator gateway."""

from __future__ import annotations

import json
import logging

import pytest

from gateways.simulator import LEDGER
from tests.conftest import LeakGuard
from tests.support import SIMULATOR_ACCOUNT, new_meta, pay, payment_body, refund, refund_body

pytestmark = pytest.mark.usefixtures("simulator_service")


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "paymentgateway.audit"]


def test_payment_then_refund_happy_path(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    meta = new_meta()
    paid = pay(payment_body(amount=25.5), meta)

    assert paid.status == 200
    assert paid.detail["success"] is True
    assert paid.detail["statusCode"] == "approved"
    assert paid.detail["merchantAccountId"] == SIMULATOR_ACCOUNT
    payment_id = paid.detail["paymentTransactionId"]
    assert payment_id.startswith("sim_")
    assert json.loads(paid.headers["BVMeta"]) == meta
    charge = LEDGER.get(SIMULATOR_ACCOUNT, payment_id)
    assert charge is not None and str(charge.amount) == "25.5"

    refund_meta = new_meta()
    refunded = refund(refund_body(payment_id), refund_meta)
    assert refunded.status == 200, refunded.body
    assert refunded.detail["success"] is True
    assert refunded.detail["responseDetail"].startswith("Payment voided")
    assert json.loads(refunded.headers["BVMeta"]) == refund_meta
    assert charge.voided

    lines = audit_lines(caplog)
    assert [line["level"] for line in lines] == ["AUDIT", "AUDIT"]
    first = lines[0]
    assert first["transactionId"] == meta["transactionId"]
    assert first["service"] == "PaymentGatewayAPI"
    assert first["data"] == {
        "status": 200,
        "paymentTransactionId": payment_id,
        "gatewayTypeId": 900,
        "gatewayTypeName": "Simulator",
        "merchantAccountId": SIMULATOR_ACCOUNT,
        "userId": 42,
        "comment": "Course 101",
        "amount": "25.5",
        "currencyType": 840,
        "maskedCardNumber": "xxxxxxxxxxxx4242",
    }
    assert lines[1]["data"]["paymentTransactionId"] != payment_id


def test_partial_refund_after_settlement_then_over_refund_is_refused() -> None:
    paid = pay(payment_body(amount=100))
    payment_id = paid.detail["paymentTransactionId"]
    LEDGER.settle_all()

    partial = refund(refund_body(payment_id, amount=40))
    assert partial.status == 200
    assert partial.detail["responseDetail"] == "Refund approved"

    too_much = refund(refund_body(payment_id, amount=60.01))
    assert too_much.status == 400
    assert too_much.detail["success"] is False
    assert too_much.detail["statusCode"] == "amount_too_large"
    assert LEDGER.get(SIMULATOR_ACCOUNT, payment_id).refunded == 40  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("card", "code", "standard"),
    [
        ("4000000000000002", "card_declined", "declined"),
        ("4000000000009995", "insufficient_funds", "insufficient_funds"),
        ("4000000000000069", "expired_card", "expired_card"),
        ("4000000000000127", "incorrect_cvc", "cvv_mismatch"),
    ],
)
def test_declines_are_400_with_gateway_and_standard_codes(card: str, code: str, standard: str) -> None:
    declined = pay(payment_body(account=card))
    assert declined.status == 400
    assert declined.detail["success"] is False
    assert declined.detail["statusCode"] == code
    assert declined.detail["errorCode"] == standard
    assert declined.detail["gatewayHttpStatusCode"] == 200
    assert card not in declined.text


def test_timeout_is_outcome_unknown_not_failure(leak_guard: LeakGuard) -> None:
    meta = new_meta()
    unknown = pay(payment_body(account="4999006200620062"), meta)
    assert unknown.status == 502
    assert unknown.detail["success"] is False
    assert unknown.detail["statusCode"] == "outcome_unknown"
    assert "same transactionId" in unknown.detail["responseDetail"]


def test_refund_of_unknown_payment_is_404() -> None:
    missing = refund(refund_body("sim_doesnotexist"))
    assert missing.status == 404
    assert missing.detail["statusCode"] == "not_found"


def test_refund_of_another_merchants_payment_is_not_found() -> None:
    paid = pay(payment_body())
    other = refund(refund_body(paid.detail["paymentTransactionId"], merchantAccountId=1002))
    assert other.status == 404


def test_refund_of_voided_payment_is_409() -> None:
    paid = pay(payment_body())
    payment_id = paid.detail["paymentTransactionId"]
    assert refund(refund_body(payment_id)).status == 200
    again = refund(refund_body(payment_id))
    assert again.status == 409
    assert again.detail["statusCode"] == "voided"


def test_refund_aimed_at_a_refunds_id_finds_no_payment() -> None:
    paid = pay(payment_body(amount=40))
    LEDGER.settle_all()
    partial = refund(refund_body(paid.detail["paymentTransactionId"], amount=10))
    assert partial.status == 200 and partial.detail["responseDetail"] == "Refund approved"
    aimed_at_refund = refund(refund_body(partial.detail["paymentTransactionId"]))
    assert aimed_at_refund.status == 404
    assert refund(refund_body(paid.detail["paymentTransactionId"], amount=30)).status == 200
