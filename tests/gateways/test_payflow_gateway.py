"""PayflowGateway against the stateful Payflow fake: exact wire requests and every outcome."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from gateways.base import GatewayContext
from gateways.errors import (
    CredentialsRejected,
    Declined,
    NotRefundable,
    OutcomeUnknown,
    StandardError,
    TransactionNotFound,
)
from gateways.http import HttpPool
from gateways.payflow import PayflowGateway, payment_ref, refund_ref, request_id_for
from tests.fakes.payflow import PayflowFake, parse_body
from tests.gateways.helpers import sale

VENDOR = "acmeuniv"
CREDENTIALS = {"partner": "PayPal", "vendor": VENDOR, "user": "acmeapi", "password": "p&ss=w0rd"}
CARD = "5105105105105100"
ACCOUNT = 1001


@pytest.fixture
def fake() -> Iterator[PayflowFake]:
    with PayflowFake(vendors={VENDOR: ("PayPal", "acmeapi", "p&ss=w0rd")}) as server:
        yield server


def payflow(fake: PayflowFake, pool: HttpPool, **changes: str) -> PayflowGateway:
    return PayflowGateway({**CREDENTIALS, **changes}, GatewayContext(ACCOUNT, fake.base_url, pool))


def sent(fake: PayflowFake) -> list[dict[str, str]]:
    return [parse_body(r.raw_body) for r in fake.requests]


def test_declares_its_type_credentials_and_urls() -> None:
    assert (PayflowGateway.type_id, PayflowGateway.name) == (4, "PayPal Payflow Pro")
    assert [(f.name, f.label, f.display_order, f.required) for f in PayflowGateway.credential_fields] == [
        ("partner", "Partner", 1, True),
        ("vendor", "Vendor", 2, True),
        ("user", "User", 3, True),
        ("password", "Password", 4, True),
        ("heldForReview", "Held For Review", 5, False),
    ]
    assert PayflowGateway.test_url == "https://pilot-payflowpro.paypal.com"
    assert PayflowGateway.live_url == "https://payflowpro.paypal.com"
    assert PayflowGateway.url_setting == "PAYFLOW_URL"


def test_approved_sale_sends_the_exact_request(fake: PayflowFake, pool: HttpPool) -> None:
    result = payflow(fake, pool).charge(sale("BVPORDER", number=CARD))

    [request] = fake.requests
    assert (request.method, request.path) == ("POST", "/")
    assert request.raw_body == (
        "TRXTYPE=S&TENDER=C&PARTNER=PayPal&VENDOR=acmeuniv&USER=acmeapi&PWD[9]=p&ss=w0rd"
        f"&ACCT={CARD}&EXPDATE=1228&CVV2=123&AMT=19.99&CURRENCY=USD&CUSTREF={payment_ref(ACCOUNT, 'BVPORDER')}"
        "&COMMENT2=BVPORDER&COMMENT1[20]=Course 101 enrolment&BILLTOFIRSTNAME=Pat&BILLTOLASTNAME=Learner"
        "&BILLTOSTREET[13]=1 College Ave&BILLTOCITY=Springfield&BILLTOSTATE=IL&BILLTOZIP=62701&BILLTOCOUNTRY=US"
    )
    assert request.headers["Content-Type"] == "text/namevalue"
    assert request.headers["X-VPS-REQUEST-ID"] == request_id_for(ACCOUNT, "BVPORDER", "sale")
    assert int(request.headers["X-VPS-CLIENT-TIMEOUT"]) >= 1
    assert "Authorization" not in request.headers
    [charge] = fake.live_charges(VENDOR)
    assert (result.transaction_id, result.action, result.code, result.message) == (charge["pnref"], "sale", "0",
                                                                                    "Approved")
    assert charge["order_id"] == "BVPORDER"
    assert result.amount == Decimal("19.99") == charge["amount"]


def test_a_retried_sale_gets_the_original_answer_and_charges_once(fake: PayflowFake, pool: HttpPool) -> None:
    gateway = payflow(fake, pool)
    first = gateway.charge(sale("BVPORDER", number=CARD))
    again = gateway.charge(sale("BVPORDER", number=CARD))

    assert again.transaction_id == first.transaction_id
    assert len(fake.live_charges(VENDOR)) == 1
    assert [r.headers["X-VPS-REQUEST-ID"] for r in fake.requests] == [request_id_for(ACCOUNT, "BVPORDER", "sale")] * 2


def test_each_merchant_account_and_order_gets_its_own_request_id(fake: PayflowFake, pool: HttpPool) -> None:
    payflow(fake, pool).charge(sale("BVPORDER", number=CARD))
    payflow(fake, pool).charge(sale("BVPOTHER", number=CARD))
    PayflowGateway(CREDENTIALS, GatewayContext(ACCOUNT + 1, fake.base_url, pool)).charge(sale("BVPORDER", number=CARD))

    assert len({r.headers["X-VPS-REQUEST-ID"] for r in fake.requests}) == 3
    assert len(fake.live_charges(VENDOR)) == 3


@pytest.mark.parametrize(
    ("amount", "code", "standard"),
    [("1012.00", "12", StandardError.DECLINED), ("1013.00", "13", StandardError.DECLINED),
     ("1114.00", "114", StandardError.CVV_MISMATCH), ("2500.00", "12", StandardError.DECLINED)],
)
def test_declines_charge_nothing(
    fake: PayflowFake, pool: HttpPool, amount: str, code: str, standard: StandardError
) -> None:
    with pytest.raises(Declined) as declined:
        payflow(fake, pool).charge(sale("BVPORDER", amount=amount, number=CARD))
    assert (declined.value.code, declined.value.standard, declined.value.http_status) == (code, standard, 200)
    assert declined.value.transaction_id is not None
    assert fake.live_charges(VENDOR) == []


def test_an_expired_card_is_declined_as_expired(fake: PayflowFake, pool: HttpPool) -> None:
    from dataclasses import replace

    from tests.gateways.helpers import card

    with pytest.raises(Declined) as declined:
        payflow(fake, pool).charge(sale("BVPORDER", card=replace(card(CARD), exp_year=2020)))
    assert (declined.value.code, declined.value.standard) == ("24", StandardError.EXPIRED_CARD)


def test_held_for_review_is_voided_and_declined_by_default(fake: PayflowFake, pool: HttpPool) -> None:
    with pytest.raises(Declined) as declined:
        payflow(fake, pool).charge(sale("BVPORDER", amount="1126.00", number=CARD))

    assert (declined.value.code, declined.value.standard) == ("held_for_review", StandardError.HELD_FOR_REVIEW)
    assert "voided" in declined.value.message
    held = fake.transactions[str(declined.value.transaction_id)]
    assert held["status"] == "voided" and fake.live_charges(VENDOR) == []
    assert [(f["TRXTYPE"], f.get("ORIGID")) for f in sent(fake)] == [("S", None), ("V", held["pnref"])]


def test_a_merchant_may_accept_sales_held_for_review(fake: PayflowFake, pool: HttpPool) -> None:
    result = payflow(fake, pool, heldForReview="accept").charge(sale("BVPORDER", amount="1126.00", number=CARD))

    assert (result.code, result.message) == ("held_for_review", "Under review by Fraud Service")
    [held] = fake.live_charges(VENDOR)
    assert held["pnref"] == result.transaction_id and held["status"] == "authorized"


def test_a_held_sale_found_after_an_unknown_outcome_is_voided_not_adopted(fake: PayflowFake, pool: HttpPool) -> None:
    fake.set_fault("drop")
    gateway = payflow(fake, pool)
    with pytest.raises(OutcomeUnknown):
        gateway.charge(sale("BVPORDER", amount="1126.00", number=CARD))

    assert gateway.find_payment("BVPORDER") is None
    assert fake.live_charges(VENDOR) == []


def test_a_processor_timeout_is_unknown_and_a_retry_goes_again_under_a_follow_up_id(
    fake: PayflowFake, pool: HttpPool
) -> None:
    gateway = payflow(fake, pool)
    with pytest.raises(OutcomeUnknown) as unknown:
        gateway.charge(sale("BVPORDER", amount="1104.00", number=CARD))
    assert unknown.value.code == "104"

    with pytest.raises(OutcomeUnknown):
        gateway.charge(sale("BVPORDER", amount="1104.00", number=CARD))

    ids = [r.headers["X-VPS-REQUEST-ID"] for r in fake.requests]
    kinds = [f["TRXTYPE"] for f in sent(fake)]
    # The replayed timeout, a look-up by CUSTREF that finds only the failed sale, the sale again.
    assert kinds == ["S", "S", "I", "S"]
    assert ids[0] == ids[1] != ids[3]
    assert sent(fake)[2]["CUSTREF"] == payment_ref(ACCOUNT, "BVPORDER")
    assert fake.live_charges(VENDOR) == []


def test_a_lost_answer_is_found_by_custref_and_a_retry_charges_once(fake: PayflowFake, pool: HttpPool) -> None:
    fake.set_fault("drop")
    gateway = payflow(fake, pool)
    with pytest.raises(OutcomeUnknown):
        gateway.charge(sale("BVPORDER", number=CARD))

    found = gateway.find_payment("BVPORDER")
    [charge] = fake.live_charges(VENDOR)
    assert found is not None and (found.transaction_id, found.amount) == (charge["pnref"], Decimal("19.99"))
    assert gateway.charge(sale("BVPORDER", number=CARD)).transaction_id == charge["pnref"]
    assert len(fake.live_charges(VENDOR)) == 1
    assert gateway.find_payment("BVPNEVER") is None


def test_inquiries_use_fresh_request_ids(fake: PayflowFake, pool: HttpPool) -> None:
    gateway = payflow(fake, pool)
    assert gateway.find_payment("BVPORDER") is None
    gateway.charge(sale("BVPORDER", number=CARD))
    assert gateway.find_payment("BVPORDER") is not None  # a replayed id would answer "not found" again
    inquiries = [r.headers["X-VPS-REQUEST-ID"] for r in fake.requests if parse_body(r.raw_body)["TRXTYPE"] == "I"]
    assert len(set(inquiries)) == 2


def test_wrong_credentials_are_rejected(fake: PayflowFake, pool: HttpPool) -> None:
    with pytest.raises(CredentialsRejected) as rejected:
        payflow(fake, pool, password="wrong").charge(sale("BVPORDER", number=CARD))
    assert rejected.value.code == "1"
    assert rejected.value.message == "PayPal Payflow Pro did not accept the merchant's credentials"
    with pytest.raises(CredentialsRejected):
        payflow(fake, pool, user="nobody").verify_credentials()


def test_verify_credentials_charges_nobody(fake: PayflowFake, pool: HttpPool) -> None:
    payflow(fake, pool).verify_credentials()
    assert [f["TRXTYPE"] for f in sent(fake)] == ["I"] and fake.transactions == {}


def test_status_void_and_refund_follow_settlement(fake: PayflowFake, pool: HttpPool) -> None:
    gateway = payflow(fake, pool)
    payment = gateway.charge(sale("BVPORDER", number=CARD)).transaction_id

    pending = gateway.payment_status(payment)
    assert pending.is_payment and pending.voidable and not pending.refundable and pending.amount == Decimal("19.99")
    fake.settle(payment)
    settled = gateway.payment_status(payment)
    assert settled.settled and settled.refundable and not settled.voidable
    with pytest.raises(NotRefundable) as too_late:
        gateway.void(payment)
    assert too_late.value.code == "108"

    part = gateway.refund(payment, Decimal("5.00"), "BVRFIRST", "Partial")
    assert (part.action, part.amount) == ("refund", Decimal("5.00"))
    assert sent(fake)[-1] == {
        "TRXTYPE": "C", "TENDER": "C", "PARTNER": "PayPal", "VENDOR": VENDOR, "USER": "acmeapi", "PWD": "p&ss=w0rd",
        "ORIGID": payment, "AMT": "5.00", "CUSTREF": refund_ref(ACCOUNT, "BVRFIRST"), "COMMENT2": "BVRFIRST",
        "COMMENT1": "Partial",
    }
    found = gateway.find_refund("BVRFIRST")
    assert found is not None and (found.transaction_id, found.amount) == (part.transaction_id, Decimal("5.00"))
    assert gateway.find_refund("BVRNEVER") is None
    assert not gateway.payment_status(part.transaction_id).is_payment
    with pytest.raises(NotRefundable) as over:
        gateway.refund(payment, Decimal("15.00"), "BVRSECOND")
    assert over.value.code == "105"
    rest = gateway.refund(payment, None, "BVRTHIRD")
    assert fake.transactions[rest.transaction_id]["amount"] == Decimal("14.99")


def test_void_before_settlement(fake: PayflowFake, pool: HttpPool) -> None:
    gateway = payflow(fake, pool)
    payment = gateway.charge(sale("BVPORDER", number=CARD)).transaction_id

    void = gateway.void(payment)
    assert (void.action, void.transaction_id, void.code) == ("void", payment, "0")
    assert fake.transactions[payment]["status"] == "voided"
    status = gateway.payment_status(payment)
    assert status.voided and not status.voidable and status.state == "voided"
    assert gateway.find_payment("BVPORDER") is None
    assert gateway.void(payment).transaction_id == void.transaction_id  # the retry's original answer
    assert sent(fake)[1]["ORIGID"] == payment


def test_status_of_an_unknown_pnref_is_not_found(fake: PayflowFake, pool: HttpPool) -> None:
    with pytest.raises(TransactionNotFound):
        payflow(fake, pool).payment_status("V000A0000000")


def test_a_retried_sale_held_for_review_is_declined_again_and_voided_once(fake: PayflowFake, pool: HttpPool) -> None:
    gateway = payflow(fake, pool)
    for _ in range(2):
        with pytest.raises(Declined) as declined:
            gateway.charge(sale("BVPORDER", amount="1126.00", number=CARD))
        assert declined.value.standard is StandardError.HELD_FOR_REVIEW

    [held] = fake.transactions.values()
    assert held["status"] == "voided" and "void" in held
    assert [f["TRXTYPE"] for f in sent(fake)] == ["S", "V", "S", "V"]  # both replayed with DUPLICATE=1


def test_a_fault_aimed_at_the_sale_leaves_the_inquiry_alone(fake: PayflowFake, pool: HttpPool) -> None:
    fake.set_fault("http500", match="TRXTYPE=S$", count=None)
    gateway = payflow(fake, pool)
    assert gateway.find_payment("BVPORDER") is None
    with pytest.raises(OutcomeUnknown):
        gateway.charge(sale("BVPORDER", number=CARD))
    assert [r.status for r in fake.requests] == [200, 500]


def test_a_held_sale_found_for_a_merchant_who_accepts_them_is_adopted(fake: PayflowFake, pool: HttpPool) -> None:
    fake.set_fault("drop")
    gateway = payflow(fake, pool, heldForReview="accept")
    with pytest.raises(OutcomeUnknown):
        gateway.charge(sale("BVPORDER", amount="1126.00", number=CARD))

    found = gateway.find_payment("BVPORDER")
    [held] = fake.live_charges(VENDOR)
    assert found is not None and (found.transaction_id, found.code) == (held["pnref"], "held_for_review")
