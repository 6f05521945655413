"""Stripe: PaymentIntents confirmed server-side with a PaymentMethod the browser made, spoken directly.

Token-only. New Stripe accounts may not send raw card numbers to the API (reference §3.2), so the
card is typed into Stripe.js's Payment Element and the LMS sends us its PaymentMethod id (`pm_...`).
stripe-python is not used: its key and base URL are module-global by default, and the wire is small.

Wire facts (reference §3): `https://api.stripe.com/v1` for test and live alike (the key decides:
`sk_test_`/`sk_live_`, or a restricted `rk_` key); `Authorization: Bearer <secret key>`; form-encoded
bodies with bracketed keys; a pinned `Stripe-Version`; JSON answers. Amounts are integers in minor
units (cents for every currency we take) and currencies lower case.

A sale is one PaymentIntent created with `confirm=true` and automatic capture. 3-D Secure cannot be
completed in V1's synchronous contract (nobody would get the `client_secret`), so
`error_on_requires_action=true` makes Stripe fail the attempt instead (a 402 decline); the
PaymentIntent then waits for another payment method and has charged nothing.

Idempotency (reference §3.5): every POST carries `Idempotency-Key: <our order id>-<operation>`.
Our order id is derived from the canonical key, so a retry sends the same key and the same body, and
Stripe replays its first answer (a decline, or even a 500) instead of acting twice. Stripe keeps keys
for at least 24 hours per endpoint; after that a retry is a new request. That is safe here: a retry
whose first attempt's outcome was unknown looks the payment up first (below), and a PaymentMethod
without a Customer serves one payment only, so a resend after pruning is refused rather than charged
again. A key reused with other parameters is an `idempotency_error`: a bug of ours, never a decline.

Look-up (reference §3.6): by the list endpoints, filtered on `metadata[bv_ref]` here, because search
lags behind writes (up to an hour in outages) and a look-up that misses a charge would charge again.
The list is read newest first back to `LOOKUP_WINDOW`; a page budget keeps it bounded, and a look-up
that runs out of pages before the window ends is unknown, never "nothing found".

Refunds (reference §3.7): captured money comes back only by a refund, linked to the PaymentIntent,
whole or partial, several partials up to the amount charged. Stripe has no void after capture; a
PaymentIntent still holding uncaptured funds (`requires_capture`, which our automatic capture never
leaves behind) is cancelled instead.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlencode

from gateways.base import (
    Action,
    CredentialField,
    Gateway,
    GatewayResult,
    PaymentStatus,
    SaleRequest,
)
from gateways.cards import CENT, whole_cents
from gateways.errors import (
    CredentialsRejected,
    Declined,
    GatewayError,
    GatewayMisconfigured,
    NotRefundable,
    OutcomeUnknown,
    RequestRejected,
    StandardError,
    TransactionNotFound,
)
from gateways.http import FILTERED, HttpReply, gateway_url, scrub_transcript

log = logging.getLogger(__name__)

Body = dict[str, Any]
Form = list[tuple[str, str]]

PAYMENT_METHOD = re.compile(r"pm_[A-Za-z0-9_]{1,250}")
"""A PaymentMethod id as Stripe.js returns it (the token kind `stripe_payment_method`)."""
SECRET_SHAPES = re.compile(
    r"\b(?:pm_[A-Za-z0-9_]+|(?:sk|rk)_(?:test|live)_[A-Za-z0-9]+|[a-z]+_[A-Za-z0-9]+_secret_[A-Za-z0-9]+)"
)
"""Stripe's own secrets by their shape: PaymentMethod ids (our tokens), secret and restricted keys,
and `client_secret`s (which let a browser confirm a PaymentIntent). Found wherever they appear,
nested error objects included, not only under the field names we send."""


class StripeGateway(Gateway):
    type_id = 5
    name = "Stripe"
    credential_fields = (CredentialField("secretKey", "Secret Key", 1),)
    currencies: ClassVar[frozenset[str]] = frozenset({"USD", "CAD", "GBP", "EUR"})
    """All four are two-decimal currencies: their minor unit is the cent."""
    test_url = "https://api.stripe.com/v1"
    live_url = "https://api.stripe.com/v1"
    url_setting = "STRIPE_URL"
    token_kinds: ClassVar[frozenset[str]] = frozenset({"stripe_payment_method"})
    accepts_cards = False
    transaction_id_pattern = re.compile(r"(?:pi|re)_[A-Za-z0-9]{1,250}")
    """PaymentIntents (what a sale returns) and refunds."""

    API_VERSION = "2024-06-20"
    """Pinned, so that the account's default version (changeable in the Dashboard) never changes
    the objects we parse: `latest_charge` on the PaymentIntent, a cancel without a Refund object."""
    METADATA_KEY = "bv_ref"
    LOOKUP_WINDOW = 72 * 3600
    """How far back a look-up reads: the longest default life of an unknown outcome here (the
    idempotency record's 48 hours) with a day to spare."""
    LOOKUP_PAGES = 20
    PAGE_SIZE = 100
    DESCRIPTION_LIMIT = 1000
    METADATA_VALUE_LIMIT = 500
    standard_errors: ClassVar[Mapping[str, StandardError]] = {
        # Stripe's `code` and `decline_code` values (docs.stripe.com/declines/codes,
        # docs.stripe.com/error-codes); anything else is a plain decline.
        "insufficient_funds": StandardError.INSUFFICIENT_FUNDS,
        "expired_card": StandardError.EXPIRED_CARD,
        "incorrect_cvc": StandardError.CVV_MISMATCH,
        "invalid_cvc": StandardError.CVV_MISMATCH,
        "incorrect_number": StandardError.INVALID_CARD,
        "invalid_number": StandardError.INVALID_CARD,
        "invalid_expiry_month": StandardError.EXPIRED_CARD,
        "invalid_expiry_year": StandardError.EXPIRED_CARD,
        "processing_error": StandardError.PROCESSING_ERROR,
    }

    def charge(self, sale: SaleRequest) -> GatewayResult:
        payment_method = payment_method_of(sale, self.token_kinds)
        form: Form = [
            ("amount", minor_units(sale.amount)),
            ("currency", self._currency(sale.currency)),
            ("payment_method", payment_method),
            ("payment_method_types[]", "card"),
            ("confirm", "true"),
            ("capture_method", "automatic"),
            ("error_on_requires_action", "true"),
        ]
        if sale.comment:
            form.append(("description", sale.comment[: self.DESCRIPTION_LIMIT]))
        form += [(f"metadata[{self.METADATA_KEY}]", sale.order_id), ("expand[]", "latest_charge")]
        intent = self._commit("POST", ("payment_intents",), form=form, key=f"{sale.order_id}-sale")
        return sale_result(intent)

    def payment_status(self, payment_id: str) -> PaymentStatus:
        if payment_id.startswith("re_"):
            return refund_status(self._commit("GET", ("refunds", payment_id)))
        params = {"expand[]": "latest_charge"}
        return intent_status(self._commit("GET", ("payment_intents", payment_id), params=params))

    def void(self, payment_id: str, amount: Decimal | None = None) -> GatewayResult:
        if amount is not None:
            # payment_status never offers a partial void: a cancel releases the whole hold.
            raise RequestRejected("Stripe cannot void part of a payment", code="partial_void")
        intent = self._commit(
            "POST", ("payment_intents", payment_id, "cancel"), form=[], key=f"{payment_id}-cancel"
        )
        if intent.get("status") != "canceled":
            raise OutcomeUnknown(
                f"Stripe answered a cancel with status {intent.get('status')!r}",
                code="unexpected_status", http_status=200, transaction_id=payment_id,
            )
        return result_from(intent, "void", intent_id(intent), minor_amount(intent.get("amount")))

    def refund(
        self, payment_id: str, amount: Decimal | None, order_id: str, comment: str | None = None
    ) -> GatewayResult:
        form: Form = [("payment_intent", payment_id)]
        if amount is not None:
            form.append(("amount", minor_units(amount)))
        form.append((f"metadata[{self.METADATA_KEY}]", order_id))
        if comment:
            form.append(("metadata[comment]", comment[: self.METADATA_VALUE_LIMIT]))
        refund = self._commit("POST", ("refunds",), form=form, key=f"{order_id}-refund")
        return refund_result(refund)

    def find_payment(self, order_id: str) -> GatewayResult | None:
        found = [
            intent for intent in self._listed("payment_intents", order_id, expand="data.latest_charge")
            if intent.get("status") in CHARGED_STATUSES
        ]
        if len(found) > 1:
            log.warning("Stripe holds %d charged PaymentIntents for order %s", len(found), order_id)
        # A succeeded one first; one still processing or holding funds is an unknown outcome.
        found.sort(key=lambda intent: intent.get("status") != "succeeded")
        return sale_result(found[0]) if found else None

    def find_refund(self, order_id: str) -> GatewayResult | None:
        found = [
            refund for refund in self._listed("refunds", order_id)
            if refund.get("status") not in ("failed", "canceled")
        ]
        return refund_result(found[0]) if found else None

    def verify_credentials(self) -> None:
        # Reads only, one row each, of the two kinds of object the gateway writes: a restricted key
        # without the PaymentIntents or Refunds permission fails here (403) and not at a sale.
        for collection in ("payment_intents", "refunds"):
            self._commit("GET", (collection,), params={"limit": "1"})

    @staticmethod
    def scrub(transcript: str) -> str:
        text = scrub_transcript(transcript, json_fields=("client_secret",), form_fields=("payment_method",))
        return SECRET_SHAPES.sub(FILTERED, text)

    def _currency(self, currency: str) -> str:
        if currency.upper() not in self.currencies:
            raise RequestRejected(
                f"Stripe here takes {', '.join(sorted(self.currencies))}, not {currency}",
                code="currency", standard=StandardError.CONFIG_ERROR,
            )
        return currency.lower()

    def _listed(self, collection: str, order_id: str, expand: str | None = None) -> Iterator[Body]:
        """Every object in `collection` made with our reference `order_id` within the look-up window,
        newest first. Raises OutcomeUnknown when the page budget ends before the window does."""
        params = {"created[gte]": str(int(time.time()) - self.LOOKUP_WINDOW), "limit": str(self.PAGE_SIZE)}
        if expand:
            params["expand[]"] = expand
        for _ in range(self.LOOKUP_PAGES):
            page = listing_of(self._commit("GET", (collection,), params=params))
            data: list[Body] = page["data"]
            yield from (item for item in data if metadata_ref(item, self.METADATA_KEY) == order_id)
            if page.get("has_more") is not True:
                return
            if not data:
                raise OutcomeUnknown(
                    f"Stripe's {collection} list said it had more but gave nothing", code="unreadable_response"
                )
            params["starting_after"] = str(data[-1].get("id"))
        raise OutcomeUnknown(
            f"Stripe's {collection} list held more than {self.LOOKUP_PAGES * self.PAGE_SIZE} objects within the "
            "look-up window; the look-up could not read them all",
            code="lookup_incomplete",
        )

    def _commit(
        self,
        method: str,
        path: tuple[str, ...],
        *,
        form: Sequence[tuple[str, str]] | None = None,
        params: Mapping[str, str] | None = None,
        key: str | None = None,
    ) -> Body:
        """`path`: a collection, or a collection, an object id and an action (each encoded whole).
        `key`: the Idempotency-Key of a POST."""
        headers = {"Authorization": f"Bearer {self.credentials['secretKey']}", "Stripe-Version": self.API_VERSION}
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if key is not None:
            headers["Idempotency-Key"] = key
        names_object = len(path) > 1

        def read_error(reply: HttpReply) -> GatewayError:
            body = reply.json if isinstance(reply.json, dict) else {}
            return error_from(reply.status, body, names_object=names_object)

        reply = self.http.send(
            method, gateway_url(self.context.base_url, *path), auth=None, params=params, headers=headers,
            data=None if form is None else urlencode(form), gateway=self.name, endpoint=path[0],
            url_setting=self.url_setting, statuses={403: read_error, 404: read_error},
        )
        if 200 <= reply.status < 300:
            if not isinstance(reply.json, dict) or not reply.json:
                raise OutcomeUnknown(
                    "Stripe answered with an unexpected body", code="unreadable_response", http_status=reply.status
                )
            return reply.json
        raise read_error(reply)


CHARGED_STATUSES = frozenset({"succeeded", "processing", "requires_capture"})
"""PaymentIntent statuses in which money moved or may still move. The others (requires_payment_method
after a decline, requires_confirmation, requires_action, canceled) charged nothing."""


def payment_method_of(sale: SaleRequest, accepted: frozenset[str]) -> str:
    """The PaymentMethod id the sale carries. The flow refuses cards and other kinds before any
    call; this is the gateway's own guard, and its messages never repeat the value."""
    token = sale.token
    if token is None or token.kind not in accepted:
        raise RequestRejected(
            f"Stripe takes only a browser token of kind {', '.join(sorted(accepted))}; no card numbers",
            code="token_required", standard=StandardError.CONFIG_ERROR,
        )
    if not PAYMENT_METHOD.fullmatch(token.value):
        raise RequestRejected("the Stripe token is not a PaymentMethod id (pm_...)", code="token")
    return token.value


def minor_units(amount: Decimal) -> str:
    """`amount` (major units) as Stripe's integer minor units: 19.99 -> "1999", exactly."""
    return str(int(whole_cents(amount).scaleb(2)))


def minor_amount(value: object) -> Decimal | None:
    """An amount from Stripe's answer (integer minor units) in major units; None when absent. One
    that is not an integer means the answer is malformed: the outcome is unknown."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return (Decimal(value) * CENT).quantize(CENT)
    raise unreadable("an amount that is not an integer")


def unreadable(what: str) -> OutcomeUnknown:
    """An answer we cannot read: whatever it answers may have been carried out."""
    return OutcomeUnknown(f"Stripe answered with {what}", code="unreadable_response", http_status=200)


def metadata_ref(item: Mapping[str, Any], key: str) -> str | None:
    metadata = item.get("metadata")
    value = metadata.get(key) if isinstance(metadata, dict) else None
    return value if isinstance(value, str) else None


def listing_of(body: Body) -> Body:
    data = body.get("data")
    if body.get("object") != "list" or not isinstance(data, list) or not all(isinstance(i, dict) for i in data):
        # Not "nothing found": a payment may hide behind an answer we cannot read.
        raise unreadable("a list")
    return body


def intent_id(intent: Mapping[str, Any]) -> str:
    """The PaymentIntent's id; an answer without a usable one cannot be referenced, so the outcome
    of what it answers is unknown."""
    value = intent.get("id")
    if isinstance(value, str) and StripeGateway.is_transaction_id(value) and value.startswith("pi_"):
        return value
    raise unreadable("a PaymentIntent without a usable id")


def refund_id(refund: Mapping[str, Any]) -> str:
    value = refund.get("id")
    if isinstance(value, str) and StripeGateway.is_transaction_id(value) and value.startswith("re_"):
        return value
    raise unreadable("a refund without a usable id")


def latest_charge(intent: Mapping[str, Any]) -> Mapping[str, Any]:
    """The PaymentIntent's latest charge when it came expanded; {} when it did not."""
    charge = intent.get("latest_charge")
    return charge if isinstance(charge, dict) else {}


def last_four_of(intent: Mapping[str, Any]) -> str | None:
    details = latest_charge(intent).get("payment_method_details")
    card = details.get("card") if isinstance(details, dict) else None
    last4 = card.get("last4") if isinstance(card, dict) else None
    return last4 if isinstance(last4, str) and re.fullmatch(r"[0-9]{4}", last4) else None


def result_from(
    obj: Mapping[str, Any], action: Action, transaction_id: str, amount: Decimal | None, last_four: str | None = None
) -> GatewayResult:
    """An approval: Stripe's status word (`succeeded`) is its code and its message, as Stripe's
    objects carry no message of their own (only a failure has one)."""
    status = str(obj.get("status") or "")
    return GatewayResult(
        transaction_id=transaction_id,
        action=action,
        code=status,
        message=status,
        http_status=200,
        amount=amount,
        last_four=last_four,
    )


def sale_result(intent: Mapping[str, Any]) -> GatewayResult:
    """A PaymentIntent answered to a sale (or found by a look-up): approved only once `succeeded`."""
    status = intent.get("status")
    payment_id = intent_id(intent)
    if status == "succeeded":
        amount = minor_amount(intent.get("amount_received"))
        return result_from(intent, "sale", payment_id, amount, last_four=last_four_of(intent))
    if status in ("requires_payment_method", "canceled", "requires_action", "requires_confirmation"):
        # Nothing was captured, and without the client secret nobody can take this one further.
        raise declined_from(intent.get("last_payment_error"), 200, payment_id, fallback=str(status))
    # processing: the charge exists and its outcome is not final. requires_capture: funds are held,
    # which automatic capture never leaves; the reconciler cancels it. Anything else is new to us.
    raise OutcomeUnknown(
        f"Stripe answered PaymentIntent status {status!r}; the outcome is not final",
        code=str(status) if status in ("processing", "requires_capture") else "unexpected_status",
        http_status=200,
        transaction_id=payment_id,
    )


def refund_result(refund: Mapping[str, Any]) -> GatewayResult:
    """A refund: approved when `succeeded`, or `pending` (Stripe accepted it and will send it: card
    refunds fail only when the card is closed, which Stripe then reports to the merchant)."""
    status = refund.get("status")
    identifier = refund_id(refund)
    if status in ("succeeded", "pending"):
        return result_from(refund, "refund", identifier, minor_amount(refund.get("amount")))
    if status in ("failed", "canceled"):
        raise NotRefundable(
            f"Stripe refund {identifier} {status}: {refund.get('failure_reason') or 'no reason given'}",
            code=str(status), http_status=200,
        )
    raise OutcomeUnknown(
        f"Stripe answered refund status {status!r}", code="unexpected_status", http_status=200,
        transaction_id=identifier,
    )


def intent_status(intent: Mapping[str, Any]) -> PaymentStatus:
    status = str(intent.get("status") or "")
    charge = latest_charge(intent)
    refunded = minor_amount(charge.get("amount_refunded")) or Decimal(0)
    amount = minor_amount(intent.get("amount_received") if status == "succeeded" else intent.get("amount"))
    currency = intent.get("currency")
    return PaymentStatus(
        transaction_id=intent_id(intent),
        is_payment=True,
        amount=amount,
        currency=currency.upper() if isinstance(currency, str) else None,
        settled=status == "succeeded",
        voided=status == "canceled",
        voidable=status == "requires_capture",
        refundable=status == "succeeded" and (amount is None or refunded < amount),
        refunded=refunded,
        state="refunded" if status == "succeeded" and amount is not None and refunded >= amount else status,
    )


def refund_status(refund: Mapping[str, Any]) -> PaymentStatus:
    currency = refund.get("currency")
    return PaymentStatus(
        transaction_id=refund_id(refund),
        is_payment=False,
        amount=minor_amount(refund.get("amount")),
        currency=currency.upper() if isinstance(currency, str) else None,
        settled=False,
        voided=False,
        voidable=False,
        refundable=False,
        state=str(refund.get("status") or ""),
    )


def declined_from(error: object, http_status: int, payment_id: str | None, *, fallback: str = "declined") -> Declined:
    """A decline from Stripe's error object (a 402's `error`, or a PaymentIntent's `last_payment_error`)."""
    fields = error if isinstance(error, dict) else {}
    decline_code, code = fields.get("decline_code"), fields.get("code")
    # Stripe's texts can name what was sent (the PaymentMethod): never passed on.
    reason = StripeGateway.scrub(str(decline_code or code or fallback))
    standard = StripeGateway.standard_errors.get(reason) or StripeGateway.standard_errors.get(str(code))
    return Declined(
        StripeGateway.scrub(str(fields.get("message") or f"Stripe declined the payment: {reason}")),
        code=reason,
        http_status=http_status,
        standard=standard or StandardError.DECLINED,
        transaction_id=payment_id,
    )


def error_from(status: int, body: Mapping[str, Any], *, names_object: bool) -> GatewayError:
    """What a non-2xx answer the HTTP layer leaves to us means (it maps 401, 429 and 5xx the same for
    every gateway). Stripe's error object: `type` (card_error, invalid_request_error,
    idempotency_error, api_error), `code`, `decline_code`, `message`, `param`, `payment_intent`.
    `names_object`: the URL named one object (a 404 then means it does not exist)."""
    error = body.get("error")
    fields: Mapping[str, Any] = error if isinstance(error, dict) else {}
    kind, code = str(fields.get("type") or ""), StripeGateway.scrub(str(fields.get("code") or ""))
    # Stripe's texts can name what was sent ("No such PaymentMethod: 'pm_...'").
    message = StripeGateway.scrub(str(fields.get("message") or f"HTTP {status}"))
    if kind == "card_error":
        intent = fields.get("payment_intent")
        payment_id = intent.get("id") if isinstance(intent, dict) else None
        return declined_from(fields, status, payment_id if isinstance(payment_id, str) else None)
    if status == 409 or code == "idempotency_key_in_use":
        # Another request with this key is running right now: it may charge.
        return OutcomeUnknown(
            "Stripe is still carrying out an earlier attempt of this request", code=code or "409", http_status=status
        )
    if kind == "idempotency_error":
        # Our key reached Stripe with other parameters than the first time: our bug. This request
        # did nothing; what the first one did stands.
        return RequestRejected(
            f"Stripe refused a reused idempotency key: {message}", code="idempotency_error", http_status=status
        )
    if status == 403:
        # The key is valid but may not make this call: a restricted key lacking a permission.
        return CredentialsRejected(
            f"Stripe refused the merchant's key for this call: {message}", code=code or "403", http_status=status
        )
    missing = code == "resource_missing" and fields.get("param") in (None, "id", "intent", "payment_intent", "charge")
    if missing or (status == 404 and names_object):
        return TransactionNotFound(
            "Stripe has no such payment for this merchant", code="transaction_not_found", http_status=status
        )
    if status == 404:
        return GatewayMisconfigured(
            "Stripe has no such endpoint: check STRIPE_URL; nothing was done", code=code or "404", http_status=status
        )
    if code == "charge_already_refunded":
        return NotRefundable(f"Stripe: {message}", code=code, http_status=status)
    if status == 424:
        # A failed dependency may have acted (5xx are unknown in the HTTP layer, before this is read).
        return OutcomeUnknown(
            f"Stripe answered HTTP {status}; the request may have been carried out", code=code or str(status),
            http_status=status,
        )
    return RequestRejected(
        f"Stripe refused the request: {message}", code=code or kind or str(status), http_status=status
    )
