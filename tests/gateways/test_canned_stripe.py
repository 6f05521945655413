"""Stripe's interpreters against canned answers shaped like Stripe's own (docs.stripe.com/api: the
PaymentIntent, Refund, list and error objects), served over loopback so that the whole path from the
HTTP pool to the result or error is exercised and the exact wire request is recorded."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from gateways.base import Card, CardToken, GatewayContext, PaymentStatus, SaleRequest
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
from gateways.stripe import StripeGateway
from tests.conftest import LeakGuard
from tests.fakes._server import FakeServer, RecordedRequest, Reply
from tests.gateways.helpers import TIMEOUTS

SECRET_KEY = "sk_test_51CannedKeyAbcdefGhijkl"
PM = "pm_1PgCannedVisa4242xyz"
ORDER = "BVPQWERTYUIOPASDFGHJKLZXCVBNMQW"
REFUND_ORDER = "BVRMNBVCXZLKJHGFDSAPOIUYTREWQA"
PI = "pi_3PgCannedIntent0001"
CH = "ch_3PgCannedCharge0001"
RE = "re_3PgCannedRefund0001"
CLIENT_SECRET = f"{PI}_secret_CannedClientSecret42"


class Canned(FakeServer):
    """Answers each request with the next canned reply, and records it."""

    url_path = "/v1"

    def __init__(self) -> None:
        super().__init__()
        self.replies: list[Reply] = []

    def answer(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def handle(self, request: RecordedRequest) -> Reply:
        return self.replies.pop(0) if self.replies else Reply(500, {"error": {"type": "api_error"}})


@pytest.fixture
def canned() -> Iterator[Canned]:
    with Canned() as server:
        yield server


@pytest.fixture
def gateway(canned: Canned, leak_guard: LeakGuard) -> Iterator[StripeGateway]:
    leak_guard.watch(SECRET_KEY, PM, CLIENT_SECRET)
    pool = HttpPool(TIMEOUTS)
    yield StripeGateway({"secretKey": SECRET_KEY}, GatewayContext(1005, canned.base_url, pool))
    pool.close()


def token_sale(amount: str = "19.99", currency: str = "USD", **changes: Any) -> SaleRequest:
    fields: dict[str, Any] = {
        "order_id": ORDER, "amount": Decimal(amount), "currency": currency, "comment": "Course 101 enrolment",
        "token": CardToken(kind="stripe_payment_method", value=PM),
    }
    return SaleRequest(**{**fields, **changes})


def charge_object(amount: int = 1999, refunded: int = 0) -> dict[str, Any]:
    return {
        "id": CH, "object": "charge", "amount": amount, "amount_captured": amount, "amount_refunded": refunded,
        "captured": True, "currency": "usd", "paid": True, "payment_intent": PI, "payment_method": PM,
        "outcome": {
            "network_status": "approved_by_network", "reason": None, "risk_level": "normal",
            "seller_message": "Payment complete.", "type": "authorized",
        },
        "payment_method_details": {
            "card": {"brand": "visa", "country": "US", "exp_month": 12, "exp_year": 2028, "funding": "credit",
                     "last4": "4242"},
            "type": "card",
        },
        "refunded": refunded == amount, "status": "succeeded",
    }


def intent(status: str = "succeeded", amount: int = 1999, **changes: Any) -> dict[str, Any]:
    body = {
        "id": PI, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
        "amount_received": amount if status == "succeeded" else 0, "capture_method": "automatic",
        "client_secret": CLIENT_SECRET, "confirmation_method": "automatic", "created": int(time.time()),
        "currency": "usd", "description": "Course 101 enrolment", "last_payment_error": None,
        "latest_charge": charge_object(amount) if status == "succeeded" else None, "livemode": False,
        "metadata": {"bv_ref": ORDER}, "payment_method": PM, "payment_method_types": ["card"], "status": status,
    }
    return {**body, **changes}


def successful_purchase_response() -> Reply:
    return Reply(200, intent())


def card_error(code: str, decline_code: str | None, message: str, status: int = 402) -> Reply:
    failed = intent("requires_payment_method", latest_charge=CH)
    error = {
        "charge": CH, "code": code, "decline_code": decline_code,
        "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}", "message": message,
        "payment_intent": failed,
        "payment_method": {"id": PM, "object": "payment_method", "card": {"brand": "visa", "last4": "0002"}},
        "request_log_url": "https://dashboard.stripe.com/test/logs/req_canned", "type": "card_error",
    }
    if decline_code is None:
        del error["decline_code"]
    failed["last_payment_error"] = {k: v for k, v in error.items() if k != "payment_intent"}
    return Reply(status, {"error": error})


def failed_purchase_response() -> Reply:
    return card_error("card_declined", "generic_decline", "Your card was declined.")


def insufficient_funds_response() -> Reply:
    return card_error("card_declined", "insufficient_funds", "Your card has insufficient funds.")


def authentication_required_response() -> Reply:
    # error_on_requires_action=true: a card that needs 3-D Secure fails the attempt instead.
    return card_error(
        "authentication_required", "authentication_required",
        "Your card was declined. This transaction requires authentication.",
    )


def error_response(status: int, kind: str, message: str, code: str | None = None, **extra: Any) -> Reply:
    error: dict[str, Any] = {"type": kind, "message": message, **extra}
    if code is not None:
        error["code"] = code
    return Reply(status, {"error": error})


def refund_object(status: str = "succeeded", amount: int = 1999, order: str = REFUND_ORDER, **changes: Any) -> Any:
    return {
        "id": RE, "object": "refund", "amount": amount, "charge": CH, "created": int(time.time()),
        "currency": "usd", "metadata": {"bv_ref": order}, "payment_intent": PI, "reason": None, "status": status,
        **changes,
    }


def listing(*items: dict[str, Any], has_more: bool = False, url: str = "/v1/payment_intents") -> Reply:
    return Reply(200, {"object": "list", "data": list(items), "has_more": has_more, "url": url})


def pays(gateway: StripeGateway, canned: Canned, reply: Reply, **changes: Any) -> Any:
    canned.answer(reply)
    return gateway.charge(token_sale(**changes))


def test_successful_purchase(gateway: StripeGateway, canned: Canned) -> None:
    result = pays(gateway, canned, successful_purchase_response())

    [request] = canned.requests
    assert (request.method, request.path) == ("POST", "/v1/payment_intents")
    assert request.raw_body == (
        "amount=1999&currency=usd&payment_method=pm_1PgCannedVisa4242xyz&payment_method_types%5B%5D=card"
        "&confirm=true&capture_method=automatic&error_on_requires_action=true"
        "&description=Course+101+enrolment&metadata%5Bbv_ref%5D=BVPQWERTYUIOPASDFGHJKLZXCVBNMQW"
        "&expand%5B%5D=latest_charge"
    )
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.bearer == SECRET_KEY and request.basic_auth is None
    assert request.headers["Idempotency-Key"] == f"{ORDER}-sale"
    assert request.headers["Stripe-Version"] == StripeGateway.API_VERSION
    assert (result.transaction_id, result.action, result.code, result.http_status) == (PI, "sale", "succeeded", 200)
    assert (result.amount, result.last_four, result.message) == (Decimal("19.99"), "4242", "succeeded")


def test_a_retry_sends_the_same_key_and_the_same_body(gateway: StripeGateway, canned: Canned) -> None:
    pays(gateway, canned, successful_purchase_response())
    pays(gateway, canned, successful_purchase_response())

    first, second = canned.requests
    assert first.raw_body == second.raw_body
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == f"{ORDER}-sale"


@pytest.mark.parametrize(
    ("amount", "wire"), [("0.07", "7"), ("0.50", "50"), ("19.99", "1999"), ("1234.5", "123450"), ("100000", "10000000")]
)
def test_amounts_go_in_exact_minor_units(gateway: StripeGateway, canned: Canned, amount: str, wire: str) -> None:
    pays(gateway, canned, successful_purchase_response(), amount=amount)

    assert canned.requests[0].body["amount"] == wire


@pytest.mark.parametrize("amount", ["19.999", "0", "-1.00", "NaN"])
def test_amounts_that_are_not_whole_cents_are_refused_before_any_call(
    gateway: StripeGateway, canned: Canned, amount: str
) -> None:
    with pytest.raises(RequestRejected):
        gateway.charge(token_sale(amount=amount))

    assert canned.requests == []


@pytest.mark.parametrize(("currency", "wire"), [("USD", "usd"), ("CAD", "cad"), ("GBP", "gbp"), ("EUR", "eur")])
def test_currency_goes_in_lower_case(gateway: StripeGateway, canned: Canned, currency: str, wire: str) -> None:
    pays(gateway, canned, successful_purchase_response(), currency=currency)

    assert canned.requests[0].body["currency"] == wire


def test_a_currency_it_does_not_take_is_refused_before_any_call(gateway: StripeGateway, canned: Canned) -> None:
    with pytest.raises(RequestRejected) as refused:
        gateway.charge(token_sale(currency="JPY"))

    assert refused.value.code == "currency" and canned.requests == []


@pytest.mark.parametrize(
    "changes",
    [
        {"token": None, "card": Card("4242424242424242", 12, 2028, "123")},
        {"token": CardToken(kind="cardsecure", value="9418594164541111")},
        {"token": CardToken(kind="stripe_payment_method", value="tok_visa")},
        {"token": CardToken(kind="stripe_payment_method", value="pm_1Pg/../refunds")},
    ],
    ids=["card", "other-kind", "not-a-payment-method", "path-characters"],
)
def test_anything_but_a_payment_method_is_refused_before_any_call(
    gateway: StripeGateway, canned: Canned, changes: dict[str, Any]
) -> None:
    with pytest.raises(RequestRejected) as refused:
        gateway.charge(token_sale(**changes))

    assert canned.requests == []
    assert "4242424242424242" not in refused.value.message and "9418594164541111" not in refused.value.message


def test_the_test_payment_methods_with_underscores_are_payment_method_ids(
    gateway: StripeGateway, canned: Canned
) -> None:
    pays(gateway, canned, successful_purchase_response(), token=CardToken("stripe_payment_method", "pm_card_visa"))

    assert canned.requests[0].body["payment_method"] == "pm_card_visa"


@pytest.mark.parametrize(
    ("reply", "code", "standard"),
    [
        (failed_purchase_response(), "generic_decline", StandardError.DECLINED),
        (insufficient_funds_response(), "insufficient_funds", StandardError.INSUFFICIENT_FUNDS),
        (card_error("expired_card", None, "Your card has expired."), "expired_card", StandardError.EXPIRED_CARD),
        (card_error("incorrect_cvc", None, "Your card's security code is incorrect."), "incorrect_cvc",
         StandardError.CVV_MISMATCH),
        (card_error("processing_error", None, "An error occurred while processing your card."), "processing_error",
         StandardError.PROCESSING_ERROR),
        (authentication_required_response(), "authentication_required", StandardError.DECLINED),
    ],
    ids=["generic", "insufficient-funds", "expired", "cvc", "processing-error", "3ds-required"],
)
def test_failed_purchase_is_a_decline_with_stripes_reason(
    gateway: StripeGateway, canned: Canned, reply: Reply, code: str, standard: StandardError
) -> None:
    with pytest.raises(Declined) as declined:
        pays(gateway, canned, reply)

    assert (declined.value.code, declined.value.standard, declined.value.http_status) == (code, standard, 402)
    assert declined.value.transaction_id == PI
    assert PM not in declined.value.message


@pytest.mark.parametrize("status", ["requires_payment_method", "requires_action", "canceled"])
def test_a_200_intent_that_did_not_capture_is_a_decline(gateway: StripeGateway, canned: Canned, status: str) -> None:
    with pytest.raises(Declined) as declined:
        pays(gateway, canned, Reply(200, intent(status)))

    assert declined.value.transaction_id == PI


@pytest.mark.parametrize("status", ["processing", "requires_capture", "some_future_status"])
def test_an_intent_not_final_is_an_unknown_outcome(gateway: StripeGateway, canned: Canned, status: str) -> None:
    with pytest.raises(OutcomeUnknown) as unknown:
        pays(gateway, canned, Reply(200, intent(status)))

    assert unknown.value.transaction_id == PI
    assert unknown.value.code == (status if status != "some_future_status" else "unexpected_status")


@pytest.mark.parametrize(
    "body",
    [
        intent(id=None), intent(amount_received="1999"), intent(amount_received=19.99),
        {"object": "payment_intent"}, ["not", "an", "object"],
    ],
    ids=["no-id", "string-amount", "float-amount", "bare", "array"],
)
def test_a_200_we_cannot_read_is_an_unknown_outcome(gateway: StripeGateway, canned: Canned, body: Any) -> None:
    with pytest.raises(OutcomeUnknown):
        pays(gateway, canned, Reply(200, body))


@pytest.mark.parametrize(
    ("reply", "error", "code"),
    [
        (error_response(400, "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters they were first used "
                        "with. Try using a key other than 'BVP...-sale' if you meant to execute a different request."),
         RequestRejected, "idempotency_error"),
        (error_response(409, "invalid_request_error",
                        "There is currently another in-progress request using this Idempotent Key.",
                        "idempotency_key_in_use"), OutcomeUnknown, "idempotency_key_in_use"),
        (error_response(429, "invalid_request_error", "Too many requests hit the API too quickly.", "rate_limit"),
         GatewayUnreachable, "rate_limited"),
        (error_response(500, "api_error", "An unknown error occurred"), OutcomeUnknown, "500"),
        (error_response(424, "api_error", "An external dependency failed."), OutcomeUnknown, "424"),
        (error_response(401, "invalid_request_error", "Invalid API Key provided: sk_test_****ijkl"),
         CredentialsRejected, "401"),
        (error_response(403, "invalid_request_error",
                        "The provided key 'rk_test_****ijkl' does not have the required permissions for this endpoint",
                        "secret_key_required"), CredentialsRejected, "secret_key_required"),
        (error_response(404, "invalid_request_error", "Unrecognized request URL (POST: /v1/paymentintents)."),
         GatewayMisconfigured, "404"),
        (error_response(400, "invalid_request_error", f"No such PaymentMethod: '{PM}'", "resource_missing",
                        param="payment_method"), RequestRejected, "resource_missing"),
        (error_response(400, "invalid_request_error",
                        "The provided PaymentMethod was previously used with a PaymentIntent without Customer "
                        "attachment, shared with a connected account without Customer attachment, or was detached "
                        "from a Customer. It may not be used again.", "payment_method_unexpected_state"),
         RequestRejected, "payment_method_unexpected_state"),
    ],
    ids=["idempotency-error", "key-in-use", "rate-limited", "api-error", "424", "bad-key", "restricted-key",
         "wrong-url", "unknown-payment-method", "payment-method-used"],
)
def test_error_objects(gateway: StripeGateway, canned: Canned, reply: Reply, error: type[Exception], code: str) -> None:
    with pytest.raises(error) as raised:
        pays(gateway, canned, reply)

    assert type(raised.value) is error
    assert getattr(raised.value, "code") == code
    assert PM not in str(raised.value) and SECRET_KEY not in str(raised.value)


def test_a_reused_key_is_not_a_decline(gateway: StripeGateway, canned: Canned) -> None:
    with pytest.raises(RequestRejected) as raised:
        pays(gateway, canned, error_response(400, "idempotency_error", "Keys for idempotent requests ..."))

    assert not isinstance(raised.value, Declined)


def test_status_of_a_succeeded_payment_partly_refunded(gateway: StripeGateway, canned: Canned) -> None:
    canned.answer(Reply(200, intent(latest_charge=charge_object(1999, refunded=500))))

    status = gateway.payment_status(PI)

    [request] = canned.requests
    assert (request.method, request.path, request.query) == (
        "GET", f"/v1/payment_intents/{PI}", {"expand[]": "latest_charge"}
    )
    assert "Idempotency-Key" not in request.headers
    assert status == PaymentStatus(
        transaction_id=PI, is_payment=True, amount=Decimal("19.99"), currency="USD", settled=True, voided=False,
        voidable=False, refundable=True, refunded=Decimal("5.00"), state="succeeded",
    )


def test_status_of_a_payment_refunded_in_full(gateway: StripeGateway, canned: Canned) -> None:
    canned.answer(Reply(200, intent(latest_charge=charge_object(1999, refunded=1999))))

    status = gateway.payment_status(PI)

    assert (status.refundable, status.voidable, status.refunded, status.state) == (
        False, False, Decimal("19.99"), "refunded"
    )


@pytest.mark.parametrize(
    ("state", "voided", "voidable", "refundable"),
    [
        ("canceled", True, False, False),
        ("requires_capture", False, True, False),
        ("requires_payment_method", False, False, False),
        ("processing", False, False, False),
    ],
)
def test_status_of_intents_not_succeeded(
    gateway: StripeGateway, canned: Canned, state: str, voided: bool, voidable: bool, refundable: bool
) -> None:
    canned.answer(Reply(200, intent(state)))

    status = gateway.payment_status(PI)

    assert (status.is_payment, status.voided, status.voidable, status.refundable, status.state) == (
        True, voided, voidable, refundable, state
    )
    assert not status.settled


def test_status_of_a_refund_is_not_a_payment(gateway: StripeGateway, canned: Canned) -> None:
    canned.answer(Reply(200, refund_object()))

    status = gateway.payment_status(RE)

    assert canned.requests[0].path == f"/v1/refunds/{RE}"
    assert (status.transaction_id, status.is_payment, status.refundable, status.amount) == (
        RE, False, False, Decimal("19.99")
    )


def test_status_of_an_unknown_payment(gateway: StripeGateway, canned: Canned) -> None:
    canned.answer(error_response(404, "invalid_request_error", "No such payment_intent: 'pi_nope'",
                                 "resource_missing", param="intent"))

    with pytest.raises(TransactionNotFound):
        gateway.payment_status("pi_nope")


def test_void_cancels_the_intent(gateway: StripeGateway, canned: Canned) -> None:
    canned.answer(Reply(200, intent("canceled", cancellation_reason=None)))

    result = gateway.void(PI)

    [request] = canned.requests
    assert (request.method, request.path, request.raw_body) == ("POST", f"/v1/payment_intents/{PI}/cancel", "")
    assert request.headers["Idempotency-Key"] == f"{PI}-cancel"
    assert (result.transaction_id, result.action, result.amount) == (PI, "void", Decimal("19.99"))


def test_void_of_a_captured_payment_is_refused_by_stripe(gateway: StripeGateway, canned: Canned) -> None:
    canned.answer(error_response(
        400, "invalid_request_error",
        "You cannot cancel this PaymentIntent because it has a status of succeeded. Only a PaymentIntent with one "
        "of the following statuses may be canceled: requires_payment_method, requires_capture, "
        "requires_confirmation, requires_action, processing.", "payment_intent_unexpected_state",
    ))

    with pytest.raises(RequestRejected) as refused:
        gateway.void(PI)

    assert refused.value.code == "payment_intent_unexpected_state"


def test_a_partial_void_is_refused_before_any_call(gateway: StripeGateway, canned: Canned) -> None:
    with pytest.raises(RequestRejected):
        gateway.void(PI, Decimal("1.00"))

    assert canned.requests == []


def test_partial_refund(gateway: StripeGateway, canned: Canned) -> None:
    canned.answer(Reply(200, refund_object(amount=500)))

    result = gateway.refund(PI, Decimal("5.00"), REFUND_ORDER, "Dropped the course")

    [request] = canned.requests
    assert (request.method, request.path) == ("POST", "/v1/refunds")
    assert request.raw_body == (
        f"payment_intent={PI}&amount=500&metadata%5Bbv_ref%5D={REFUND_ORDER}&metadata%5Bcomment%5D=Dropped+the+course"
    )
    assert request.headers["Idempotency-Key"] == f"{REFUND_ORDER}-refund"
    assert (result.transaction_id, result.action, result.code, result.amount) == (
        RE, "refund", "succeeded", Decimal("5.00")
    )


def test_full_refund_sends_no_amount(gateway: StripeGateway, canned: Canned) -> None:
    canned.answer(Reply(200, refund_object()))

    result = gateway.refund(PI, None, REFUND_ORDER)

    assert "amount" not in canned.requests[0].body
    assert result.amount == Decimal("19.99")


def test_a_pending_refund_is_accepted(gateway: StripeGateway, canned: Canned) -> None:
    canned.answer(Reply(200, refund_object("pending")))

    assert gateway.refund(PI, None, REFUND_ORDER).code == "pending"


def test_a_failed_refund_is_not_refunded(gateway: StripeGateway, canned: Canned) -> None:
    canned.answer(Reply(200, refund_object("failed", failure_reason="expired_or_canceled_card")))

    with pytest.raises(NotRefundable) as refused:
        gateway.refund(PI, None, REFUND_ORDER)

    assert "expired_or_canceled_card" in refused.value.message


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (error_response(400, "invalid_request_error",
                        "Refund amount ($25.00) is greater than unrefunded amount on charge ($19.99)",
                        param="amount"), RequestRejected),
        (error_response(400, "invalid_request_error", f"Charge {CH} has already been refunded.",
                        "charge_already_refunded"), NotRefundable),
        (error_response(400, "invalid_request_error", "No such payment_intent: 'pi_nope'", "resource_missing",
                        param="payment_intent"), TransactionNotFound),
    ],
    ids=["over-refund", "already-refunded", "unknown-payment"],
)
def test_refund_errors(gateway: StripeGateway, canned: Canned, reply: Reply, error: type[Exception]) -> None:
    canned.answer(reply)

    with pytest.raises(error):
        gateway.refund(PI, Decimal("25.00"), REFUND_ORDER)


def test_find_payment_reads_the_list_and_matches_our_reference(gateway: StripeGateway, canned: Canned) -> None:
    others = [intent(id=f"pi_other{n}", metadata={"bv_ref": f"BVPOTHER{n}"}) for n in range(3)]
    canned.answer(listing(*others, intent(), has_more=False))
    before = int(time.time())

    found = gateway.find_payment(ORDER)

    [request] = canned.requests
    assert (request.method, request.path) == ("GET", "/v1/payment_intents")
    assert request.query["limit"] == "100" and request.query["expand[]"] == "data.latest_charge"
    window = before - int(request.query["created[gte]"])
    assert StripeGateway.LOOKUP_WINDOW <= window <= StripeGateway.LOOKUP_WINDOW + 5
    assert "Idempotency-Key" not in request.headers
    assert found is not None
    assert (found.transaction_id, found.action, found.amount, found.last_four) == (
        PI, "sale", Decimal("19.99"), "4242"
    )


def test_find_payment_follows_the_pages(gateway: StripeGateway, canned: Canned) -> None:
    canned.answer(
        listing(intent(id="pi_page1a", metadata={}), intent(id="pi_page1b", metadata={"bv_ref": "x"}), has_more=True),
        listing(intent(), has_more=False),
    )

    found = gateway.find_payment(ORDER)

    first, second = canned.requests
    assert "starting_after" not in first.query and second.query["starting_after"] == "pi_page1b"
    assert second.query["created[gte]"] == first.query["created[gte]"]
    assert found is not None and found.transaction_id == PI


def test_find_payment_skips_attempts_that_charged_nothing(gateway: StripeGateway, canned: Canned) -> None:
    canned.answer(listing(intent("requires_payment_method"), intent("canceled")))

    assert gateway.find_payment(ORDER) is None


def test_find_payment_prefers_the_succeeded_intent(gateway: StripeGateway, canned: Canned) -> None:
    canned.answer(listing(intent("processing", id="pi_newer"), intent()))

    found = gateway.find_payment(ORDER)

    assert found is not None and found.transaction_id == PI


def test_find_payment_of_an_intent_still_processing_is_unknown(gateway: StripeGateway, canned: Canned) -> None:
    canned.answer(listing(intent("processing")))

    with pytest.raises(OutcomeUnknown):
        gateway.find_payment(ORDER)


def test_a_look_up_that_runs_out_of_pages_is_unknown_not_nothing(gateway: StripeGateway, canned: Canned) -> None:
    canned.answer(*[
        listing(intent(id=f"pi_filler{n}", metadata={}), has_more=True) for n in range(StripeGateway.LOOKUP_PAGES)
    ])

    with pytest.raises(OutcomeUnknown) as unknown:
        gateway.find_payment(ORDER)

    assert unknown.value.code == "lookup_incomplete"
    assert len(canned.requests) == StripeGateway.LOOKUP_PAGES


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, {"object": "list", "data": {"oops": 1}, "has_more": False}),
        Reply(200, {"object": "payment_intent"}),
        Reply(200, {"object": "list", "data": ["pi_x"], "has_more": False}),
        Reply(200, {"object": "list", "data": [], "has_more": True}),
    ],
    ids=["data-not-a-list", "not-a-list", "items-not-objects", "more-but-empty"],
)
def test_a_list_we_cannot_read_is_unknown_not_nothing(gateway: StripeGateway, canned: Canned, reply: Reply) -> None:
    canned.answer(reply)

    with pytest.raises(OutcomeUnknown):
        gateway.find_payment(ORDER)


def test_find_refund(gateway: StripeGateway, canned: Canned) -> None:
    canned.answer(listing(
        refund_object("failed", order=REFUND_ORDER, id="re_failed1"), refund_object(order="BVROTHER", id="re_other"),
        refund_object(amount=500), url="/v1/refunds",
    ))

    found = gateway.find_refund(REFUND_ORDER)

    assert canned.requests[0].path == "/v1/refunds"
    assert found is not None
    assert (found.transaction_id, found.action, found.amount) == (RE, "refund", Decimal("5.00"))


def test_find_refund_finds_nothing(gateway: StripeGateway, canned: Canned) -> None:
    canned.answer(listing(refund_object(order="BVROTHER"), url="/v1/refunds"))

    assert gateway.find_refund(REFUND_ORDER) is None


def test_verify_credentials_reads_and_charges_nobody(gateway: StripeGateway, canned: Canned) -> None:
    canned.answer(listing(intent()), listing(url="/v1/refunds"))

    gateway.verify_credentials()

    assert [(r.method, r.path, r.query) for r in canned.requests] == [
        ("GET", "/v1/payment_intents", {"limit": "1"}), ("GET", "/v1/refunds", {"limit": "1"}),
    ]
    assert all(r.bearer == SECRET_KEY for r in canned.requests)


def test_verify_credentials_with_a_bad_key(gateway: StripeGateway, canned: Canned) -> None:
    canned.answer(error_response(401, "invalid_request_error", "Invalid API Key provided: sk_test_****ijkl"))

    with pytest.raises(CredentialsRejected):
        gateway.verify_credentials()


def test_scrub_removes_the_key_the_token_and_the_client_secret() -> None:
    declined = copy.deepcopy(failed_purchase_response().body)
    transcript = (
        "POST http://127.0.0.1/v1/payment_intents\n"
        f"Authorization: Bearer {SECRET_KEY}\nIdempotency-Key: {ORDER}-sale\n\n"
        f"amount=1999&currency=usd&payment_method={PM}&payment_method_types%5B%5D=card&confirm=true\n"
        f"--\nHTTP 200\n\n{intent()}\n{declined}\n"
        "Invalid API Key provided: rk_live_51AbcdefGhijklmnop\n"
    ).replace("'", '"')

    scrubbed = StripeGateway.scrub(transcript)

    for secret in (SECRET_KEY, PM, CLIENT_SECRET, "rk_live_51AbcdefGhijklmnop", "_secret_"):
        assert secret not in scrubbed
    assert "Authorization: Bearer [FILTERED]" in scrubbed
    assert "payment_method=[FILTERED]&payment_method_types%5B%5D=card" in scrubbed
    for kept in ("amount=1999", PI, CH, f"{ORDER}-sale", '"last4": "4242"', "Your card was declined."):
        assert kept in scrubbed
