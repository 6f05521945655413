"""The Authorize.Net gateway against its stateful fake: what each primitive sends and what the fake's
ledger holds afterwards (a charge, a void, a refund), for the outcomes the reference describes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from gateways.authorizenet import AuthorizeNetGateway, short_reference
from gateways.base import BillingAddress, Card, CardToken, GatewayContext, SaleRequest
from gateways.errors import (
    AlreadyVoided,
    CredentialsRejected,
    Declined,
    GatewayMisconfigured,
    NotRefundable,
    OutcomeUnknown,
    RequestRejected,
)
from gateways.http import HttpPool
from tests.fakes.authorizenet import DECLINE_ZIP, AuthorizeNetFake

LOGINS = {"login-one": "KeyOne0000000001", "login-two": "KeyTwo0000000002"}
APPROVE, DECLINE = "4111111111111111", "4000300011112220"
MERCHANT = 3001


class Clock:
    """The fake's clock (the duplicate window, submit and settlement times), starting at the real
    time: the gateway asks for the settled batches of the last days by its own clock."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[AuthorizeNetFake]:
    with AuthorizeNetFake(merchants=LOGINS, clock=clock) as server:
        yield server



def gateway(fake: AuthorizeNetFake, pool: HttpPool, login: str = "login-one", **options: str) -> AuthorizeNetGateway:
    credentials = {"apiLoginId": login, "transactionKey": LOGINS.get(login, "WrongKey00000000"), **options}
    return AuthorizeNetGateway(credentials, GatewayContext(MERCHANT, fake.base_url, pool))


def sale(order: str = "BVPAAAAAAAAAAAAAAAAAAAAAAAAAAAA", amount: str = "25.00", number: str = APPROVE,
         zip_code: str = "62701") -> SaleRequest:
    return SaleRequest(
        order_id=order, amount=Decimal(amount), currency="USD",
        card=Card(number=number, exp_month=12, exp_year=2028, cvv="999"),
        billing=BillingAddress(name="Pat Learner", street="1 College Ave", city="Springfield", state="IL",
                               postal_code=zip_code, country="US"),
        comment="Course 101",
    )


def test_sale_is_charged_once_under_our_reference(fake: AuthorizeNetFake, pool: HttpPool) -> None:
    result = gateway(fake, pool).charge(sale())
    [charge] = fake.live_charges("login-one")
    assert (charge.transId, charge.transactionStatus) == (result.transaction_id, "capturedPendingSettlement")
    assert charge.invoiceNumber == short_reference(MERCHANT, "BVPAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert (result.amount, result.last_four) == (Decimal("25.00"), "1111")


@pytest.mark.parametrize(("number", "zip_code"), [(DECLINE, "62701"), (APPROVE, DECLINE_ZIP)])
def test_declines(fake: AuthorizeNetFake, pool: HttpPool, number: str, zip_code: str) -> None:
    with pytest.raises(Declined) as caught:
        gateway(fake, pool).charge(sale(number=number, zip_code=zip_code))
    assert caught.value.code == "2"
    assert fake.live_charges() == []


def test_held_for_review_is_voided_by_default(fake: AuthorizeNetFake, pool: HttpPool) -> None:
    fake.review_above["login-one"] = Decimal("100.00")
    with pytest.raises(Declined) as caught:
        gateway(fake, pool).charge(sale(amount="150.00"))
    assert caught.value.code == "held_for_review"
    assert fake.live_charges() == []
    assert fake.transactions[str(caught.value.transaction_id)].transactionStatus == "voided"


def test_held_for_review_accepted_stays_held_and_never_settles_unapproved(
    fake: AuthorizeNetFake, pool: HttpPool
) -> None:
    fake.review_above["login-one"] = Decimal("100.00")
    result = gateway(fake, pool, heldForReview="accept").charge(sale(amount="150.00"))
    assert result.code == "held_for_review"
    fake.settle_all()
    assert fake.transactions[result.transaction_id].transactionStatus == "FDSAuthorizedPendingReview"
    fake.approve_held(result.transaction_id)
    fake.settle_all()
    assert fake.transactions[result.transaction_id].transactionStatus == "settledSuccessfully"


def test_lost_answer_is_unknown_then_found_and_a_resend_adopts_the_original(
    fake: AuthorizeNetFake, pool: HttpPool
) -> None:
    fake.set_fault("drop")
    with pytest.raises(OutcomeUnknown):
        gateway(fake, pool).charge(sale())
    [charge] = fake.live_charges()
    found = gateway(fake, pool).find_payment("BVPAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert found is not None and found.transaction_id == charge.transId
    # Were the look-up to miss it, a resend within the window is answered with the original.
    again = gateway(fake, pool).charge(sale())
    assert again.transaction_id == charge.transId
    assert len(fake.live_charges()) == 1


def test_find_payment_in_settled_batches(fake: AuthorizeNetFake, pool: HttpPool) -> None:
    result = gateway(fake, pool).charge(sale())
    fake.settle_all()
    found = gateway(fake, pool).find_payment("BVPAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert found is not None and found.transaction_id == result.transaction_id
    assert gateway(fake, pool).find_payment("BVPBBBBBBBBBBBBBBBBBBBBBBBBBBBB") is None


def test_find_payment_is_scoped_to_the_merchants_own_login(fake: AuthorizeNetFake, pool: HttpPool) -> None:
    gateway(fake, pool).charge(sale())
    assert gateway(fake, pool, "login-two").find_payment("BVPAAAAAAAAAAAAAAAAAAAAAAAAAAAA") is None


def test_void_then_second_void(fake: AuthorizeNetFake, pool: HttpPool) -> None:
    result = gateway(fake, pool).charge(sale())
    assert gateway(fake, pool).payment_status(result.transaction_id).voidable
    gateway(fake, pool).void(result.transaction_id)
    assert fake.transactions[result.transaction_id].transactionStatus == "voided"
    with pytest.raises(AlreadyVoided):
        gateway(fake, pool).void(result.transaction_id)
    status = gateway(fake, pool).payment_status(result.transaction_id)
    assert (status.voided, status.voidable, status.refundable) == (True, False, False)


def test_void_after_settlement_is_not_refundable_that_way(fake: AuthorizeNetFake, pool: HttpPool) -> None:
    result = gateway(fake, pool).charge(sale())
    fake.settle(result.transaction_id)
    with pytest.raises(NotRefundable):
        gateway(fake, pool).void(result.transaction_id)


def test_refunds_after_settlement_partial_then_the_rest_then_over(fake: AuthorizeNetFake, pool: HttpPool) -> None:
    payment = gateway(fake, pool).charge(sale(amount="30.00"))
    fake.settle(payment.transaction_id)
    status = gateway(fake, pool).payment_status(payment.transaction_id)
    assert (status.settled, status.refundable, status.amount) == (True, True, Decimal("30.00"))
    first = gateway(fake, pool).refund(payment.transaction_id, Decimal("10.00"), "BVRONEAAAAAAAAAAAAAAAAAAAAAAAAA")
    second = gateway(fake, pool).refund(payment.transaction_id, Decimal("10.00"), "BVRTWOAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert first.transaction_id != second.transaction_id, "equal partial refunds are not duplicates of each other"
    with pytest.raises(RequestRejected) as over:
        gateway(fake, pool).refund(payment.transaction_id, Decimal("10.01"), "BVRTHREEAAAAAAAAAAAAAAAAAAAAAAA")
    assert over.value.code == "55"
    assert fake.transactions[payment.transaction_id].refunded == Decimal("20.00")
    found = gateway(fake, pool).find_refund("BVRTWOAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert found is not None and found.transaction_id == second.transaction_id


def test_refund_before_settlement_in_full_becomes_a_void(fake: AuthorizeNetFake, pool: HttpPool) -> None:
    payment = gateway(fake, pool).charge(sale())
    result = gateway(fake, pool).refund(payment.transaction_id, None, "BVRONEAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert result.action == "void"
    assert fake.transactions[payment.transaction_id].transactionStatus == "voided"


def test_details_api_off(fake: AuthorizeNetFake, pool: HttpPool) -> None:
    payment = gateway(fake, pool).charge(sale())
    fake.details_off.add("login-one")
    for call in (lambda g: g.payment_status(payment.transaction_id),
                 lambda g: g.find_payment("BVPAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), lambda g: g.verify_credentials()):
        with pytest.raises(GatewayMisconfigured) as caught:
            call(gateway(fake, pool))
        assert caught.value.code == "E00011"


def test_verify_credentials(fake: AuthorizeNetFake, pool: HttpPool) -> None:
    gateway(fake, pool).verify_credentials()
    with pytest.raises(CredentialsRejected):
        gateway(fake, pool, "login-unknown").verify_credentials()
    assert fake.live_charges() == []


def test_an_accept_nonce_charges_once(fake: AuthorizeNetFake, pool: HttpPool) -> None:
    nonce = fake.issue_nonce(APPROVE, 12, 2028)
    token_sale = SaleRequest(order_id="BVPTOKENAAAAAAAAAAAAAAAAAAAAAAA", amount=Decimal("25.00"), currency="USD",
                             token=CardToken("authorizenet_opaque", nonce, "COMMON.ACCEPT.INAPP.PAYMENT"))
    result = gateway(fake, pool).charge(token_sale)
    assert result.last_four == "1111"
    # A retry whose look-up missed the charge sends the spent nonce: the look-up settles it.
    assert gateway(fake, pool).charge(token_sale).transaction_id == result.transaction_id
    assert len(fake.live_charges()) == 1
    other = SaleRequest(order_id="BVPOTHERAAAAAAAAAAAAAAAAAAAAAAA", amount=Decimal("25.00"), currency="USD",
                        token=CardToken("authorizenet_opaque", nonce))
    with pytest.raises(RequestRejected) as caught:
        gateway(fake, pool).charge(other)
    assert caught.value.code == "token_rejected"
