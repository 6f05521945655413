"""CardConnectGateway against the stateful CardConnect fake: exact wire requests and every outcome."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests

from gateways.base import RefundRequest
from gateways.cardconnect import CardConnectGateway
from gateways.errors import (
    CredentialsRejected,
    Declined,
    GatewayMisconfigured,
    GatewayUnreachable,
    NotRefundable,
    OutcomeUnknown,
    RequestRejected,
    StandardError,
    TransactionNotFound,
)
from gateways.http import HttpPool
from shared.refunds import refund_or_void
from tests.fakes import CardConnectFake, unused_local_url
from tests.gateways.helpers import APPROVE_CC, CC_MERCHANTS, CC_MID, basic, cardconnect, sale

SALE_BODY = {
    "merchid": CC_MID,
    "orderid": "ord-1001-a",
    "amount": "19.99",
    "currency": "USD",
    "account": "4788250000121443",
    "expiry": "1228",
    "cvv2": "123",
    "name": "Pat Learner",
    "address": "1 College Ave",
    "city": "Springfield",
    "region": "IL",
    "country": "US",
    "postal": "62701",
    "ecomind": "E",
    "capture": "Y",
    "userfields": [{"comment": "Course 101 enrolment"}],
}


def refund(payment_id: str, amount: str | None = None, order_id: str = "ord-1001-r1") -> RefundRequest:
    return RefundRequest(payment_id=payment_id, amount=None if amount is None else Decimal(amount), order_id=order_id)


def writes(fake: CardConnectFake, endpoint: str) -> list[dict[str, object]]:
    return [r.body for r in fake.requests if r.method in ("PUT", "POST") and r.path.endswith("/" + endpoint)]


def test_declares_its_type_and_credentials() -> None:
    assert CardConnectGateway.type_id == 2
    assert CardConnectGateway.name == "CardConnect"
    assert [(f.name, f.label, f.display_order, f.aliases) for f in CardConnectGateway.credential_fields] == [
        ("username", "Login", 1, ("login",)),
        ("password", "Password", 2, ()),
        ("merchantId", "MerchantId", 3, ()),
    ]


def test_approved_sale_sends_the_exact_request(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    result = cardconnect(cc_fake, pool).charge(sale())

    [request] = cc_fake.requests
    assert (request.method, request.path) == ("PUT", "/cardconnect/rest/auth")
    assert request.body == SALE_BODY
    assert request.authorization == basic(*CC_MERCHANTS[CC_MID])
    assert request.headers["Content-Type"] == "application/json"
    assert result.action == "sale"
    assert (result.code, result.message, result.http_status) == ("00", "Approval", 200)
    assert result.amount == Decimal("19.99")
    [charge] = cc_fake.live_charges(CC_MID)
    assert charge.retref == result.transaction_id
    assert (charge.amount, charge.amount_sent, charge.setlstat) == (Decimal("19.99"), "19.99", "Queued for Capture")


@pytest.mark.parametrize(
    ("amount", "wire"), [("0.07", "0.07"), ("1000", "1000.00"), ("12.5", "12.50"), ("1E+2", "100.00")]
)
def test_amounts_always_carry_two_places_because_plain_digits_mean_cents(
    cc_fake: CardConnectFake, pool: HttpPool, amount: str, wire: str
) -> None:
    cardconnect(cc_fake, pool).charge(sale(amount=amount))

    assert writes(cc_fake, "auth")[0]["amount"] == wire
    assert cc_fake.live_charges()[0].amount == Decimal(wire)


@pytest.mark.parametrize("amount", ["0", "-1.00", "10.005"])
def test_amounts_that_are_not_whole_cents_are_refused_before_sending(
    cc_fake: CardConnectFake, pool: HttpPool, amount: str
) -> None:
    with pytest.raises(RequestRejected):
        cardconnect(cc_fake, pool).charge(sale(amount=amount))
    assert cc_fake.requests == []


def test_luhn_valid_order_ids_are_refused_before_sending(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    with pytest.raises(RequestRejected, match="Luhn"):
        cardconnect(cc_fake, pool).charge(sale(order_id="4242424242424242"))
    assert cc_fake.requests == []


@pytest.mark.parametrize(
    ("number", "code", "text", "standard"),
    [
        ("4387751111111053", "NU", "Insufficient funds", StandardError.INSUFFICIENT_FUNDS),
        ("4387751111111038", "05", "Do not honor", StandardError.DECLINED),
        ("4387751111111046", "54", "Wrong expiration", StandardError.EXPIRED_CARD),
    ],
)
def test_declines_raise_declined_with_the_raw_and_standard_codes(
    cc_fake: CardConnectFake, pool: HttpPool, number: str, code: str, text: str, standard: StandardError
) -> None:
    with pytest.raises(Declined) as declined:
        cardconnect(cc_fake, pool).charge(sale(number=number))

    assert (declined.value.code, declined.value.message, declined.value.http_status) == (code, text, 200)
    assert declined.value.standard is standard
    assert cc_fake.live_charges() == []


def test_respstat_b_is_an_unknown_outcome_never_a_decline(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    with pytest.raises(OutcomeUnknown) as unknown:
        cardconnect(cc_fake, pool).charge(sale(number="4999006200620062"))

    assert not isinstance(unknown.value, Declined)
    assert unknown.value.code == "62"


@pytest.mark.parametrize("mode", ["slow", "drop", "http500", "respstat_b"])
def test_lost_answers_are_unknown_outcomes(cc_fake: CardConnectFake, pool: HttpPool, mode: str) -> None:
    cc_fake.set_fault(mode, carry_out=True)

    with pytest.raises(OutcomeUnknown):
        cardconnect(cc_fake, pool).charge(sale())

    assert len(cc_fake.live_charges()) == 1, "the fake carried the sale out although no answer came back"
    assert len(writes(cc_fake, "auth")) == 1, "a sale must never be retried"


def test_unknown_outcome_is_resolved_by_finding_the_payment(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    gateway = cardconnect(cc_fake, pool)
    cc_fake.set_fault("drop")
    with pytest.raises(OutcomeUnknown):
        gateway.charge(sale())

    found = gateway.find_payment("ord-1001-a")

    assert found is not None
    assert found.transaction_id == cc_fake.live_charges()[0].retref
    assert (found.action, found.amount) == ("sale", Decimal("19.99"))
    assert cc_fake.requests[-1].path == f"/cardconnect/rest/inquireByOrderid/ord-1001-a/{CC_MID}/1"


def test_find_payment_ignores_declines_and_voids_and_reads_lists(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    gateway = cardconnect(cc_fake, pool)
    assert gateway.find_payment("ord-none") is None
    with pytest.raises(Declined):
        gateway.charge(sale(order_id="ord-2", number="4387751111111053"))
    assert gateway.find_payment("ord-2") is None

    paid = gateway.charge(sale(order_id="ord-2"))  # same order id: the fake answers a list
    found = gateway.find_payment("ord-2")
    assert found is not None and found.transaction_id == paid.transaction_id
    assert sum(t.orderid == "ord-2" for t in cc_fake.transactions.values()) == 2, "inquireByOrderid answers a list"

    refund_or_void(gateway, refund(paid.transaction_id))
    assert gateway.find_payment("ord-2") is None


def test_a_payment_found_by_order_id_is_voided_by_its_retref(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    gateway = cardconnect(cc_fake, pool)
    paid = gateway.charge(sale())

    found = gateway.find_payment("ord-1001-a")
    assert found is not None
    voided = gateway.void(found.transaction_id)

    assert (voided.action, voided.transaction_id) == ("void", paid.transaction_id)
    assert writes(cc_fake, "void") == [{"merchid": CC_MID, "retref": paid.transaction_id}]
    assert cc_fake.live_charges() == []
    assert gateway.find_payment("ord-1001-a") is None
    with pytest.raises(NotRefundable):
        gateway.void(paid.transaction_id)  # already voided: the gateway refuses (PPS 25)


def test_a_void_that_gets_no_answer_is_unknown(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    gateway = cardconnect(cc_fake, pool)
    paid = gateway.charge(sale())
    cc_fake.set_fault("http500", count=None, match="/void")

    with pytest.raises(OutcomeUnknown):
        gateway.void(paid.transaction_id)
    assert len(writes(cc_fake, "void")) == 1, "a void is sent once; the caller settles what is unknown"


def test_an_uncaptured_authorization_is_voidable_in_part(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    # Our sales capture at once; an authorization alone comes from elsewhere (the merchant's terminal).
    body = {"merchid": CC_MID, "account": APPROVE_CC, "expiry": "1228", "amount": "19.99", "orderid": "ord-auth"}
    retref = requests.put(cc_fake.base_url + "/auth", json=body, auth=CC_MERCHANTS[CC_MID], timeout=5).json()["retref"]
    gateway = cardconnect(cc_fake, pool)

    status = gateway.payment_status(retref)
    voided = gateway.void(retref, Decimal("5.00"))

    assert (status.state, status.voidable, status.voidable_in_part, status.settled) == ("Authorized", True, True, False)
    assert writes(cc_fake, "void") == [{"merchid": CC_MID, "retref": retref, "amount": "5.00"}]
    assert (voided.action, voided.amount) == ("void", Decimal("5.00"))
    assert cc_fake.transactions[retref].amount == Decimal("14.99")


def test_refund_before_settlement_is_a_void(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    gateway = cardconnect(cc_fake, pool)
    paid = gateway.charge(sale())

    result = refund_or_void(gateway, refund(paid.transaction_id))

    assert (result.action, result.amount, result.transaction_id) == ("void", Decimal("19.99"), paid.transaction_id)
    inquire = cc_fake.requests[-2]
    assert (inquire.method, inquire.path) == ("GET", f"/cardconnect/rest/inquire/{paid.transaction_id}/{CC_MID}")
    assert writes(cc_fake, "void") == [{"merchid": CC_MID, "retref": paid.transaction_id}]
    assert cc_fake.transactions[paid.transaction_id].setlstat == "Voided"


def test_partial_refund_before_settlement_is_not_refundable(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    gateway = cardconnect(cc_fake, pool)
    paid = gateway.charge(sale())

    with pytest.raises(NotRefundable, match="only after the payment settles"):
        refund_or_void(gateway, refund(paid.transaction_id, "5.00"))

    assert writes(cc_fake, "void") == [] and writes(cc_fake, "refund") == []
    assert len(cc_fake.live_charges()) == 1


def test_full_refund_after_settlement(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    gateway = cardconnect(cc_fake, pool)
    paid = gateway.charge(sale())
    cc_fake.settle_all()

    result = refund_or_void(gateway, refund(paid.transaction_id))

    assert writes(cc_fake, "refund") == [{"merchid": CC_MID, "retref": paid.transaction_id, "orderid": "ord-1001-r1"}]
    assert result.action == "refund" and result.transaction_id != paid.transaction_id
    assert result.amount == Decimal("19.99")
    assert cc_fake.transactions[result.transaction_id].original_retref == paid.transaction_id


def test_partial_refunds_after_settlement(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    gateway = cardconnect(cc_fake, pool)
    paid = gateway.charge(sale())
    cc_fake.settle(paid.transaction_id)

    first = refund_or_void(gateway, refund(paid.transaction_id, "5.00"))
    second = refund_or_void(gateway, refund(paid.transaction_id, "14.99", order_id="ord-1001-r2"))

    assert [body["amount"] for body in writes(cc_fake, "refund")] == ["5.00", "14.99"]
    assert (first.amount, second.amount) == (Decimal("5.00"), Decimal("14.99"))
    assert cc_fake.transactions[paid.transaction_id].refunded == Decimal("19.99")
    with pytest.raises(NotRefundable):
        refund_or_void(gateway, refund(paid.transaction_id, "0.01", order_id="ord-1001-r3"))


def test_refund_above_the_payment_is_rejected(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    gateway = cardconnect(cc_fake, pool)
    paid = gateway.charge(sale())
    cc_fake.settle_all()

    with pytest.raises(RequestRejected):
        refund_or_void(gateway, refund(paid.transaction_id, "20.00"))
    assert writes(cc_fake, "refund") == []


def test_refund_of_a_voided_payment_says_why(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    gateway = cardconnect(cc_fake, pool)
    paid = gateway.charge(sale())
    refund_or_void(gateway, refund(paid.transaction_id))

    with pytest.raises(NotRefundable, match="payment already voided"):
        refund_or_void(gateway, refund(paid.transaction_id, order_id="ord-1001-r2"))


def test_refund_of_an_unknown_or_foreign_payment_is_not_found(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    other = cardconnect(cc_fake, pool, merchid="800000000002").charge(sale())

    for payment_id in ("123456789012", other.transaction_id):
        with pytest.raises(TransactionNotFound):
            refund_or_void(cardconnect(cc_fake, pool), refund(payment_id))
    assert cc_fake.auth_failures == 0


def test_wrong_credentials_are_rejected(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    with pytest.raises(CredentialsRejected) as rejected:
        cardconnect(cc_fake, pool, password="not-the-password").charge(sale())

    assert rejected.value.http_status == 401
    assert cc_fake.auth_failures == 1 and cc_fake.live_charges() == []


def test_connection_refused_is_unreachable(pool: HttpPool) -> None:
    base_url = unused_local_url() + "/cardconnect/rest"
    with CardConnectFake(merchants=CC_MERCHANTS) as fake:
        gateway = cardconnect(fake, pool, base_url=base_url)
        with pytest.raises(GatewayUnreachable):
            gateway.charge(sale())


def test_http_400_is_a_rejected_request(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    cc_fake.set_fault("http400")
    with pytest.raises(RequestRejected, match="HTTP 400"):
        cardconnect(cc_fake, pool).charge(sale())


def test_http_404_is_our_wrong_url_not_the_request(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    gateway = cardconnect(cc_fake, pool, base_url=cc_fake.root_url + "/cardconnect/wrong")

    with pytest.raises(GatewayMisconfigured, match="CARDCONNECT_URL"):
        gateway.charge(sale())
