"""The Stripe gateway against its stateful fake: what a sequence of calls does to the account, and the
exact requests it took."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from gateways.base import CardToken, GatewayContext, SaleRequest
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
from gateways.stripe import StripeGateway
from tests.conftest import LeakGuard
from tests.fakes.stripe import StripeFake

KEY_A, KEY_B = "sk_test_51TenantAaaaaaaaaaaaaa", "sk_test_51TenantBbbbbbbbbbbbbb"
RESTRICTED = "rk_test_51OnlyPaymentIntentsccc"
ORDER = "BVPABCDEFGHIJKLMNOPQRSTUVWXYZAB"


@pytest.fixture
def fake(leak_guard: LeakGuard) -> Iterator[StripeFake]:
    leak_guard.watch(KEY_A, KEY_B, RESTRICTED)
    keys = {KEY_A: "acct_A", KEY_B: "acct_B", RESTRICTED: "acct_A"}
    with StripeFake(keys, restricted={RESTRICTED: frozenset({"payment_intents"})}) as server:
        yield server



def stripe(fake: StripeFake, pool: HttpPool, key: str = KEY_A) -> StripeGateway:
    return StripeGateway({"secretKey": key}, GatewayContext(1005, fake.base_url, pool))


def sale(pm: str = "pm_card_visa", order_id: str = ORDER, amount: str = "19.99", **changes: Any) -> SaleRequest:
    fields: dict[str, Any] = {"order_id": order_id, "amount": Decimal(amount), "currency": "USD",
                              "token": CardToken("stripe_payment_method", pm), "comment": "Course 101"}
    return SaleRequest(**{**fields, **changes})


def test_a_token_sale_charges_once_and_says_the_last_four(fake: StripeFake, pool: HttpPool) -> None:
    result = stripe(fake, pool).charge(sale())

    [charge] = fake.live_charges("acct_A")
    assert (charge.id, charge.status, charge.amount) == (result.transaction_id, "succeeded", 1999)
    assert charge.metadata == {"bv_ref": ORDER}
    assert (result.amount, result.last_four, result.code) == (Decimal("19.99"), "4242", "succeeded")


def test_a_browser_made_payment_method_serves_one_payment(
    fake: StripeFake, pool: HttpPool, leak_guard: LeakGuard
) -> None:
    pm = fake.payment_method("1881")
    leak_guard.watch(pm)
    gateway = stripe(fake, pool)

    assert gateway.charge(sale(pm)).last_four == "1881"
    with pytest.raises(RequestRejected) as refused:
        gateway.charge(sale(pm, order_id="BVPANOTHERORDERXXXXXXXXXXXXXXX"))

    assert refused.value.code == "payment_method_unexpected_state"
    assert pm not in refused.value.message
    assert len(fake.live_charges()) == 1


@pytest.mark.parametrize(
    ("pm", "code", "standard"),
    [
        ("pm_card_chargeDeclined", "generic_decline", StandardError.DECLINED),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds", StandardError.INSUFFICIENT_FUNDS),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", StandardError.EXPIRED_CARD),
        ("pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc", StandardError.CVV_MISMATCH),
        ("pm_card_authenticationRequired", "authentication_required", StandardError.DECLINED),
    ],
)
def test_declines_charge_nothing(fake: StripeFake, pool: HttpPool, pm: str, code: str, standard: StandardError) -> None:
    with pytest.raises(Declined) as declined:
        stripe(fake, pool).charge(sale(pm))

    assert (declined.value.code, declined.value.standard, declined.value.http_status) == (code, standard, 402)
    assert declined.value.transaction_id in fake.transactions
    assert fake.live_charges() == []


def test_3ds_is_declined_because_we_ask_stripe_to_fail_it(fake: StripeFake, pool: HttpPool) -> None:
    with pytest.raises(Declined):
        stripe(fake, pool).charge(sale("pm_card_authenticationRequired"))

    [request] = fake.requests
    assert request.body["error_on_requires_action"] == "true"
    [intent] = fake.transactions.values()
    assert intent.status == "requires_payment_method"


@pytest.mark.parametrize("mode", ["drop", "slow"])
def test_a_lost_answer_is_unknown_and_the_retry_replays_it_without_charging_again(
    fake: StripeFake, pool: HttpPool, mode: str
) -> None:
    fake.set_fault(mode, match="POST /v1/payment_intents$")
    gateway = stripe(fake, pool)

    with pytest.raises(OutcomeUnknown):
        gateway.charge(sale())
    retried = gateway.charge(sale())

    [charge] = fake.live_charges()
    assert retried.transaction_id == charge.id
    posts = [r for r in fake.requests if r.method == "POST"]
    assert len(posts) == 2 and posts[0].headers["Idempotency-Key"] == posts[1].headers["Idempotency-Key"]


def test_a_decline_is_replayed_under_its_key(fake: StripeFake, pool: HttpPool) -> None:
    gateway = stripe(fake, pool)
    for _ in range(2):
        with pytest.raises(Declined):
            gateway.charge(sale("pm_card_chargeDeclined"))

    assert len(fake.transactions) == 1


def test_the_same_key_with_other_parameters_is_our_bug_not_a_decline(fake: StripeFake, pool: HttpPool) -> None:
    gateway = stripe(fake, pool)
    gateway.charge(sale())

    with pytest.raises(RequestRejected) as refused:
        gateway.charge(sale(amount="25.00"))

    assert refused.value.code == "idempotency_error" and not isinstance(refused.value, Declined)
    assert len(fake.live_charges()) == 1


def test_an_unknown_outcome_is_found_by_the_list_and_nothing_else_matches(fake: StripeFake, pool: HttpPool) -> None:
    gateway = stripe(fake, pool)
    for n in range(3):
        gateway.charge(sale(order_id=f"BVPOTHERORDER{n}XXXXXXXXXXXXXXXXX"))
    stripe(fake, pool, KEY_B).charge(sale())  # another account, the same order id
    fake.set_fault("drop", match="POST /v1/payment_intents$")
    with pytest.raises(OutcomeUnknown):
        gateway.charge(sale())

    found = gateway.find_payment(ORDER)

    assert found is not None
    mine = [c for c in fake.live_charges("acct_A") if c.metadata == {"bv_ref": ORDER}]
    assert [found.transaction_id] == [c.id for c in mine]
    assert gateway.find_payment("BVPNEVERCHARGEDXXXXXXXXXXXXXXXX") is None


def test_the_look_up_pages_through_a_busy_account(fake: StripeFake, pool: HttpPool, monkeypatch: Any) -> None:
    monkeypatch.setattr(StripeGateway, "PAGE_SIZE", 2)
    gateway = stripe(fake, pool)
    gateway.charge(sale())
    for n in range(5):
        gateway.charge(sale(order_id=f"BVPLATERORDER{n}XXXXXXXXXXXXXXXXX"))

    found = gateway.find_payment(ORDER)

    assert found is not None and found.transaction_id == fake.live_charges()[0].id
    lists = [r for r in fake.requests if r.method == "GET"]
    assert len(lists) == 3 and "starting_after" in lists[-1].query


def test_a_payment_older_than_the_window_is_not_seen(fake: StripeFake, pool: HttpPool) -> None:
    gateway = stripe(fake, pool)
    paid = gateway.charge(sale())
    fake.age(paid.transaction_id, StripeGateway.LOOKUP_WINDOW - 60)
    assert gateway.find_payment(ORDER) is not None

    fake.age(paid.transaction_id, 120)

    assert gateway.find_payment(ORDER) is None


def test_a_declined_attempt_is_not_a_payment_found(fake: StripeFake, pool: HttpPool) -> None:
    with pytest.raises(Declined):
        stripe(fake, pool).charge(sale("pm_card_chargeDeclined"))

    assert stripe(fake, pool).find_payment(ORDER) is None


def test_a_payment_still_processing_is_unknown_until_it_ends(fake: StripeFake, pool: HttpPool) -> None:
    fake.processing.add("pm_card_visa")
    gateway = stripe(fake, pool)
    with pytest.raises(OutcomeUnknown) as unknown:
        gateway.charge(sale())
    with pytest.raises(OutcomeUnknown):
        gateway.find_payment(ORDER)

    fake.ledger.finish(str(unknown.value.transaction_id), approved=True)

    found = gateway.find_payment(ORDER)
    assert found is not None and found.transaction_id == unknown.value.transaction_id


def test_refunds_partial_then_the_rest_never_more(fake: StripeFake, pool: HttpPool) -> None:
    gateway = stripe(fake, pool)
    paid = gateway.charge(sale())

    first = gateway.refund(paid.transaction_id, Decimal("5.00"), "BVRFIRSTREFUNDXXXXXXXXXXXXXXXX", "Dropped a module")
    status = gateway.payment_status(paid.transaction_id)
    assert (status.refunded, status.refundable, status.voidable, status.settled) == (Decimal("5.00"), True, False, True)
    with pytest.raises(RequestRejected):
        gateway.refund(paid.transaction_id, Decimal("15.00"), "BVRTOOMUCHXXXXXXXXXXXXXXXXXXXX")
    rest = gateway.refund(paid.transaction_id, None, "BVRTHERESTXXXXXXXXXXXXXXXXXXXX")
    with pytest.raises(NotRefundable):
        gateway.refund(paid.transaction_id, None, "BVRAGAINXXXXXXXXXXXXXXXXXXXXXX")

    assert (first.amount, rest.amount) == (Decimal("5.00"), Decimal("14.99"))
    assert fake.live_charges()[0].refunded == Decimal("19.99")
    status = gateway.payment_status(paid.transaction_id)
    assert (status.refundable, status.state) == (False, "refunded")
    refund_posts = [r for r in fake.requests if r.path == "/v1/refunds" and r.method == "POST"]
    assert refund_posts[0].body == {"payment_intent": paid.transaction_id, "amount": "500",
                                    "metadata": {"bv_ref": "BVRFIRSTREFUNDXXXXXXXXXXXXXXXX",
                                                 "comment": "Dropped a module"}}


def test_a_refund_whose_answer_was_lost_is_found_and_not_repeated(fake: StripeFake, pool: HttpPool) -> None:
    gateway = stripe(fake, pool)
    paid = gateway.charge(sale())
    fake.set_fault("drop", match="POST /v1/refunds$")
    with pytest.raises(OutcomeUnknown):
        gateway.refund(paid.transaction_id, Decimal("5.00"), "BVRLOSTXXXXXXXXXXXXXXXXXXXXXXX")

    found = gateway.find_refund("BVRLOSTXXXXXXXXXXXXXXXXXXXXXXX")
    again = gateway.refund(paid.transaction_id, Decimal("5.00"), "BVRLOSTXXXXXXXXXXXXXXXXXXXXXXX")

    assert found is not None and found.transaction_id == again.transaction_id
    assert fake.live_charges()[0].refunded == Decimal("5.00")
    assert gateway.find_refund("BVRNEVERXXXXXXXXXXXXXXXXXXXXXXX") is None


def test_status_of_a_refund_and_of_nothing(fake: StripeFake, pool: HttpPool) -> None:
    gateway = stripe(fake, pool)
    paid = gateway.charge(sale())
    refund = gateway.refund(paid.transaction_id, None, "BVRWHOLEXXXXXXXXXXXXXXXXXXXXXX")

    assert gateway.payment_status(refund.transaction_id).is_payment is False
    with pytest.raises(TransactionNotFound):
        gateway.payment_status("pi_3Fk999999nothere")
    with pytest.raises(TransactionNotFound):
        stripe(fake, pool, KEY_B).payment_status(paid.transaction_id)  # another account's payment
    with pytest.raises(TransactionNotFound):
        stripe(fake, pool, KEY_B).refund(paid.transaction_id, None, "BVROTHERACCOUNTXXXXXXXXXXXXXXX")


def test_a_captured_payment_cannot_be_voided(fake: StripeFake, pool: HttpPool) -> None:
    gateway = stripe(fake, pool)
    paid = gateway.charge(sale())

    with pytest.raises(RequestRejected) as refused:
        gateway.void(paid.transaction_id)

    assert refused.value.code == "payment_intent_unexpected_state"
    assert fake.live_charges()[0].status == "succeeded"


def test_verify_credentials(fake: StripeFake, pool: HttpPool) -> None:
    stripe(fake, pool).verify_credentials()
    with pytest.raises(CredentialsRejected):
        stripe(fake, pool, "sk_test_51Wrongwrongwrongwrong").verify_credentials()
    with pytest.raises(CredentialsRejected):
        stripe(fake, pool, RESTRICTED).verify_credentials()  # no Refunds permission: found now, not at a refund

    assert all(r.method == "GET" for r in fake.requests)
    assert fake.transactions == {}


def test_rate_limited_and_server_errors(fake: StripeFake, pool: HttpPool) -> None:
    gateway = stripe(fake, pool)
    fake.set_fault("http429")
    with pytest.raises(GatewayUnreachable) as limited:
        gateway.charge(sale())
    fake.set_fault("http500")
    with pytest.raises(OutcomeUnknown):
        gateway.charge(sale())

    assert limited.value.code == "rate_limited"
    assert fake.transactions == {}


def test_an_echoing_answer_never_carries_the_token_or_the_key_out(fake: StripeFake, pool: HttpPool) -> None:
    pm = fake.payment_method()
    fake.set_fault("echo")

    with pytest.raises(Declined) as declined:
        stripe(fake, pool).charge(sale(pm))

    text = f"{declined.value.code} {declined.value.message}"
    assert pm not in text and KEY_A not in text
