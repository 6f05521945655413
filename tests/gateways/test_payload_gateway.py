"""PayloadGateway against the stateful Payload fake: exact wire requests and every outcome."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateways.base import RefundRequest
from gateways.errors import (
    CredentialsRejected,
    Declined,
    GatewayUnreachable,
    NotRefundable,
    OutcomeUnknown,
    RequestRejected,
    StandardError,
    TransactionNotFound,
)
from gateways.http import HttpPool
from gateways.payload import PayloadGateway
from shared.refunds import refund_or_void
from tests.fakes import PayloadFake, unused_local_url
from tests.gateways.helpers import APPROVE_PL, PL_ACCOUNTS, PL_KEY, basic, payload, sale

PAYMENT_BODY = {
    "amount": Decimal("19.99"),
    "processing_id": "acct_tenant1",
    "description": "Course 101 enrolment",
    "order_number": "ord-1001-a",
    "payment_method": {
        "type": "card",
        "billing_address": {"postal_code": "62701"},
        "card": {"card_number": APPROVE_PL, "expiry": "12/28", "card_code": "123"},
    },
    "type": "payment",
}


def pay(gateway: PayloadGateway, order_id: str = "ord-1001-a", amount: str = "19.99", number: str = APPROVE_PL) -> str:
    return gateway.charge(sale(order_id=order_id, amount=amount, number=number)).transaction_id


def refund(payment_id: str, amount: str | None = None, order_id: str = "ord-1001-r1") -> RefundRequest:
    return RefundRequest(payment_id=payment_id, amount=None if amount is None else Decimal(amount), order_id=order_id)


def sent(fake: PayloadFake, method: str) -> list[object]:
    return [r.body for r in fake.requests if r.method == method]


def test_declares_its_type_and_credentials() -> None:
    assert (PayloadGateway.type_id, PayloadGateway.name) == (1, "Payload")
    assert [(f.name, f.label, f.display_order) for f in PayloadGateway.credential_fields] == [
        ("apiKey", "ApiKey", 1),
        ("processingId", "ProcessingId", 2),
    ]


def test_approved_sale_sends_the_exact_request(pl_fake: PayloadFake, pool: HttpPool) -> None:
    result = payload(pl_fake, pool).charge(sale(number=APPROVE_PL))

    [request] = pl_fake.requests
    assert (request.method, request.path) == ("POST", "/transactions")
    assert request.body == PAYMENT_BODY
    assert list(request.body) == list(PAYMENT_BODY), "keys in payload-api's order"
    assert '"amount": 19.99,' in request.raw_body
    assert request.authorization == basic(PL_KEY, "")
    assert request.headers["Content-Type"] == "application/json"
    assert (result.action, result.code, result.http_status) == ("sale", "approved", 200)
    assert result.amount == Decimal("19.99")
    [charge] = pl_fake.live_charges("acct_tenant1")
    assert charge.id == result.transaction_id and charge.order_number == "ord-1001-a"


@pytest.mark.parametrize(
    ("amount", "wire"), [("0.07", "0.07"), ("19.99", "19.99"), ("0.30", "0.3"), ("1000", "1000.0")]
)
def test_amounts_survive_the_json_number_edge(pl_fake: PayloadFake, pool: HttpPool, amount: str, wire: str) -> None:
    pay(payload(pl_fake, pool), amount=amount)

    assert f'"amount": {wire},' in pl_fake.requests[0].raw_body
    assert pl_fake.live_charges()[0].amount == Decimal(amount)


def test_long_comments_are_cut_to_payloads_description_limit(pl_fake: PayloadFake, pool: HttpPool) -> None:
    payload(pl_fake, pool).charge(sale(number=APPROVE_PL, comment="x" * 300))

    assert pl_fake.requests[0].body["description"] == "x" * 128


@pytest.mark.parametrize(
    ("number", "code", "standard"),
    [
        ("4111111111119900", "card_expired", StandardError.EXPIRED_CARD),
        ("4111111111119903", "general_decline", StandardError.DECLINED),
        ("4111111111119904", "insufficient_bal", StandardError.INSUFFICIENT_FUNDS),
        ("4111111111119905", "invalid_card_code", StandardError.CVV_MISMATCH),
        ("4111111111119906", "invalid_card_number", StandardError.INVALID_CARD),
        ("4000000000000002", "general_decline", StandardError.DECLINED),
    ],
)
def test_declines_raise_declined_with_the_decline_code(
    pl_fake: PayloadFake, pool: HttpPool, number: str, code: str, standard: StandardError
) -> None:
    with pytest.raises(Declined) as declined:
        pay(payload(pl_fake, pool), number=number)

    assert (declined.value.code, declined.value.http_status, declined.value.standard) == (code, 400, standard)
    assert declined.value.transaction_id in pl_fake.transactions
    assert pl_fake.live_charges() == []


@pytest.mark.parametrize("mode", ["slow", "drop", "http500"])
def test_lost_answers_are_unknown_outcomes(pl_fake: PayloadFake, pool: HttpPool, mode: str) -> None:
    pl_fake.set_fault(mode, carry_out=True)

    with pytest.raises(OutcomeUnknown):
        pay(payload(pl_fake, pool))

    assert len(pl_fake.live_charges()) == 1
    assert len(sent(pl_fake, "POST")) == 1, "a sale must never be retried"


def test_find_payment_by_order_number_then_void_it(pl_fake: PayloadFake, pool: HttpPool) -> None:
    gateway = payload(pl_fake, pool)
    assert gateway.find_payment("ord-1001-a") is None
    with pytest.raises(Declined):
        pay(gateway, number="4111111111119903")
    assert gateway.find_payment("ord-1001-a") is None
    pl_fake.set_fault("drop")
    with pytest.raises(OutcomeUnknown):
        pay(gateway)

    found = gateway.find_payment("ord-1001-a")
    search = pl_fake.requests[-1]
    assert found is not None
    voided = gateway.void(found.transaction_id)

    assert (search.method, search.path, search.query) == (
        "GET",
        "/transactions",
        {"order_number": "ord-1001-a", "type": "payment"},
    )
    assert found.transaction_id == pl_fake.transactions[found.transaction_id].id
    assert (voided.action, voided.transaction_id) == ("void", found.transaction_id)
    assert sent(pl_fake, "PUT") == [{"status": "voided"}]
    assert pl_fake.live_charges() == []
    assert gateway.find_payment("ord-1001-a") is None


def test_refund_before_settlement_is_a_void(pl_fake: PayloadFake, pool: HttpPool) -> None:
    gateway = payload(pl_fake, pool)
    payment_id = pay(gateway)

    result = refund_or_void(gateway, refund(payment_id))

    get, put = pl_fake.requests[-2:]
    assert (get.method, get.path) == ("GET", f"/transactions/{payment_id}")
    assert (put.method, put.path, put.body) == ("PUT", f"/transactions/{payment_id}", {"status": "voided"})
    assert (result.action, result.transaction_id, result.amount) == ("void", payment_id, Decimal("19.99"))
    assert pl_fake.transactions[payment_id].status == "voided"


def test_partial_refund_before_settlement_is_not_refundable(pl_fake: PayloadFake, pool: HttpPool) -> None:
    gateway = payload(pl_fake, pool)
    payment_id = pay(gateway)

    with pytest.raises(NotRefundable, match="only after the payment settles"):
        refund_or_void(gateway, refund(payment_id, "5.00"))
    assert sent(pl_fake, "PUT") == [] and len(sent(pl_fake, "POST")) == 1


def test_full_refund_after_settlement(pl_fake: PayloadFake, pool: HttpPool) -> None:
    gateway = payload(pl_fake, pool)
    payment_id = pay(gateway)
    pl_fake.settle_all()

    result = refund_or_void(gateway, refund(payment_id))

    assert pl_fake.requests[-1].body == {
        "amount": Decimal("19.99"),
        "ledger": [{"assoc_transaction_id": payment_id}],
        "order_number": "ord-1001-r1",
        "type": "refund",
    }
    assert result.action == "refund" and result.transaction_id != payment_id
    assert result.amount == Decimal("19.99")


def test_partial_refunds_after_settlement(pl_fake: PayloadFake, pool: HttpPool) -> None:
    gateway = payload(pl_fake, pool)
    payment_id = pay(gateway)
    pl_fake.settle(payment_id)

    first = refund_or_void(gateway, refund(payment_id, "0.07"))
    second = refund_or_void(gateway, refund(payment_id, "19.92", order_id="ord-1001-r2"))

    assert (first.amount, second.amount) == (Decimal("0.07"), Decimal("19.92"))
    assert pl_fake.transactions[payment_id].refunded == Decimal("19.99")
    with pytest.raises(RequestRejected):
        refund_or_void(gateway, refund(payment_id, "0.01", order_id="ord-1001-r3"))


def test_refund_above_the_payment_is_rejected(pl_fake: PayloadFake, pool: HttpPool) -> None:
    gateway = payload(pl_fake, pool)
    payment_id = pay(gateway)
    pl_fake.settle_all()

    with pytest.raises(RequestRejected):
        refund_or_void(gateway, refund(payment_id, "19.991"))
    with pytest.raises(RequestRejected, match="exceeds"):
        refund_or_void(gateway, refund(payment_id, "20.00"))
    assert len(sent(pl_fake, "POST")) == 1


def test_refund_of_a_voided_payment_says_why(pl_fake: PayloadFake, pool: HttpPool) -> None:
    gateway = payload(pl_fake, pool)
    payment_id = pay(gateway)
    refund_or_void(gateway, refund(payment_id))

    with pytest.raises(NotRefundable, match="payment already voided"):
        refund_or_void(gateway, refund(payment_id, order_id="ord-1001-r2"))


def test_refund_of_an_unknown_or_foreign_payment_is_not_found(pl_fake: PayloadFake, pool: HttpPool) -> None:
    foreign = pay(payload(pl_fake, pool, api_key="test_secret_key_tenant2"))

    for payment_id in ("txn_missing", foreign):
        with pytest.raises(TransactionNotFound):
            refund_or_void(payload(pl_fake, pool), refund(payment_id))


def test_wrong_key_or_processing_account_is_rejected(pl_fake: PayloadFake, pool: HttpPool) -> None:
    with pytest.raises(CredentialsRejected) as wrong_key:
        pay(payload(pl_fake, pool, api_key="test_secret_key_wrong"))
    with pytest.raises(CredentialsRejected) as wrong_account:
        pay(payload(pl_fake, pool, processing_id=PL_ACCOUNTS["test_secret_key_tenant2"]))

    assert (wrong_key.value.http_status, wrong_account.value.http_status) == (401, 403)
    assert pl_fake.live_charges() == []


def test_connection_refused_is_unreachable(pl_fake: PayloadFake, pool: HttpPool) -> None:
    with pytest.raises(GatewayUnreachable):
        pay(payload(pl_fake, pool, base_url=unused_local_url()))


def test_validation_errors_are_rejected_requests(pl_fake: PayloadFake, pool: HttpPool) -> None:
    with pytest.raises(RequestRejected, match="InvalidAttributes"):
        pay(payload(pl_fake, pool), number="")
