"""Payload: the Payload REST API, spoken directly.

The `payload-api` library is deliberately not used here: its configuration is module-global, its
object cache is shared across sessions (one tenant's key can end up on another tenant's request),
and it has no timeouts or pooling (gateway reference, Part 3). Its wire format is small, and a
contract test proves our bodies equal the library's for the same inputs.

Wire facts (reference, Part 2): HTTP Basic with the API key as username and an empty password; JSON
bodies; `amount` a JSON number in major units. Success is HTTP 200 with a transaction object; a
decline is HTTP 400 `TransactionDeclined` whose `details` is the declined transaction. A payment
can be voided (`PUT status=voided`) until it is batched for funding and refunded only after.

Statuses (compared case-insensitively): `processed` is a completed sale; `authorized` is a hold,
which Payload processes on a `status=processed` update, so a sale answered `authorized` is
completed with that update (the LMS asked for a sale, and the reference says a hold becomes one
this way); `processing` means a charge exists whose outcome is not final: the answer is unknown
(502) and a retry or the reconciler finds it later; `declined` and `rejected` charged nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

from gateways.base import (
    Action,
    BillingAddress,
    Card,
    CredentialField,
    Gateway,
    GatewayContext,
    GatewayResult,
    PaymentStatus,
    SaleRequest,
    SandboxCards,
)
from gateways.cards import answered_amount, whole_cents
from gateways.errors import (
    Declined,
    GatewayError,
    OutcomeUnknown,
    RequestRejected,
    StandardError,
    TransactionNotFound,
)
from gateways.http import NO_STATUSES, HttpReply, StatusError, gateway_url, scrub_transcript

log = logging.getLogger(__name__)

Body = dict[str, Any]
# Search values starting with ! < > ? act as operators in Payload's filters; ours never may.
ORDER_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:~-]{0,63}")


class PayloadGateway(Gateway):
    type_id = 1
    name = "Payload"
    test_url = "https://api.payload.com"
    live_url = "https://api.payload.com"
    """One host for both: a test API key (`test_secret_key_...`) is what keeps a call in the sandbox."""
    url_setting = "PAYLOAD_API_URL"
    sandbox_cards = SandboxCards(approve="4242424242424242", decline="4000000000000002")
    credential_fields = (
        CredentialField("apiKey", "ApiKey", 1),
        CredentialField("processingId", "ProcessingId", 2),
    )

    transaction_id_pattern = re.compile(r"txn_[A-Za-z0-9]{1,60}")
    """Transaction ids are `txn_` and letters or digits (gateway reference §2.1)."""
    currencies: ClassVar[frozenset[str]] = frozenset({"USD", "CAD"})
    """Payload takes no currency on the wire: the processing account's currency applies, which is
    why the flow refuses a request in another currency than the merchant account's."""
    live_statuses: ClassVar[frozenset[str]] = frozenset({"processed", "authorized", "processing"})
    """A payment in one of these is a charge that exists (a look-up must never miss it)."""
    standard_errors: ClassVar[Mapping[str, StandardError]] = {
        "card_expired": StandardError.EXPIRED_CARD,
        "invalid_card_code": StandardError.CVV_MISMATCH,
        "insufficient_bal": StandardError.INSUFFICIENT_FUNDS,
        "invalid_card_number": StandardError.INVALID_CARD,
    }
    DESCRIPTION_LIMIT = 128
    SECRET_FIELDS = (
        "card_number", "card_code", "expiry", "account_number", "api_key", "apiKey", "processing_id",
        "payment_method_id",
    )
    """What `scrub` removes. `processing_id` is the secret's `processingId`, a credential field: it
    names the account the key charges into, so transcripts treat it like the key (as the accounts
    CLI does). `payment_method_id` is a card token: it charges the card again."""
    token_kinds = frozenset({"payload_payment_method"})
    """A payment method id (`pm_...`) from Secure Input's payment method form, charged here."""

    def __init__(self, credentials: Mapping[str, str], context: GatewayContext) -> None:
        super().__init__(credentials, context)
        self.processing_id = credentials["processingId"]

    def charge(self, sale: SaleRequest) -> GatewayResult:
        if sale.currency.upper() not in self.currencies:
            raise RequestRejected(
                f"Payload does not take {sale.currency}", code="currency", standard=StandardError.CONFIG_ERROR
            )
        check_order_number(sale.order_id)
        # Keys in the order payload-api 0.5.1 sends them.
        payment: Body = {"amount": json_amount(sale.amount), "processing_id": self.processing_id}
        add_description(payment, sale.comment)
        payment["order_number"] = sale.order_id
        add_payment_method(payment, sale)
        payment["type"] = "payment"
        transaction = self._commit("POST", "transactions", payment)
        return result_from(self._completed(transaction), "sale")

    def payment_status(self, payment_id: str) -> PaymentStatus:
        return status_from(self._commit("GET", ("transactions", payment_id)))

    def void(self, payment_id: str, amount: Decimal | None = None) -> GatewayResult:
        if amount is not None:
            raise RequestRejected("Payload voids whole payments only", code="partial_void")
        voided = self._commit("PUT", ("transactions", payment_id), {"status": "voided"})
        if status_of(voided) != "voided":
            raise OutcomeUnknown(
                f"Payload answered a void with status {voided.get('status')!r}",
                code="unexpected_status",
                http_status=200,
            )
        return result_from(voided, "void")

    def refund(
        self, payment_id: str, amount: Decimal | None, order_id: str, comment: str | None = None
    ) -> GatewayResult:
        if amount is None:
            amount = self._whole_amount(payment_id)
        refund: Body = {
            "amount": json_amount(amount),
            "ledger": [{"assoc_transaction_id": payment_id}],
            "order_number": order_id,
        }
        add_description(refund, comment)
        refund["type"] = "refund"
        transaction = self._commit("POST", "transactions", refund)
        return result_from(self._approved(transaction), "refund")

    def find_payment(self, order_id: str) -> GatewayResult | None:
        live = self._live_payments(order_id)
        if len(live) > 1:
            log.warning("Payload holds %d live payments for order %s; using the first", len(live), order_id)
        # Our own hold is our sale half done: completing it is what the first attempt was doing.
        return result_from(self._completed(live[0]), "sale") if live else None

    def find_refund(self, order_id: str) -> GatewayResult | None:
        refunds = [
            t for t in self._search(order_id, "refund")
            if t.get("order_number") == order_id and status_of(t) in self.live_statuses
        ]
        # A refund still processing exists: unknown, never "not found" (which would refund again).
        return result_from(self._approved(refunds[0]), "refund") if refunds else None

    def verify_credentials(self) -> None:
        # A one-row search of this processing account's transactions: read-only, charges nobody.
        self._commit("GET", "transactions", params={"processing_id": self.processing_id, "limit": "1"})

    @staticmethod
    def scrub(transcript: str) -> str:
        fields = PayloadGateway.SECRET_FIELDS
        return scrub_transcript(transcript, json_fields=fields, form_fields=fields)

    def _search(self, order_id: str, kind: str) -> list[Body]:
        check_order_number(order_id)
        listing = self._commit("GET", "transactions", params={"order_number": order_id, "type": kind})
        values = listing.get("values") if listing.get("object") == "list" else None
        if not isinstance(values, list) or not all(isinstance(t, dict) for t in values):
            # Not "nothing found": a transaction may hide behind an answer we cannot read.
            raise OutcomeUnknown(
                "Payload answered a transaction search with an unreadable body", code="unreadable_response",
                http_status=200,
            )
        return values

    def _whole_amount(self, payment_id: str) -> Decimal:
        # A Payload refund always names its amount; for "all of it" that is the payment's, read afresh.
        amount = self.payment_status(payment_id).amount
        if amount is None:
            raise RequestRejected(f"Payload reported no amount for transaction {payment_id}", code="no_amount")
        return amount

    def _live_payments(self, order_id: str) -> list[Body]:
        return [t for t in self._search(order_id, "payment") if self._is_live_payment(t, order_id)]

    def _is_live_payment(self, transaction: Body, order_id: str) -> bool:
        return (
            transaction.get("order_number") == order_id
            and status_of(transaction) in self.live_statuses
            and transaction.get("processing_id") in (None, self.processing_id)
        )

    def _commit(
        self,
        method: str,
        path: str | tuple[str, ...],
        body: Body | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Body:
        """`path`: a collection, or a collection and an object id (each encoded whole)."""
        segments = (path,) if isinstance(path, str) else path
        url = gateway_url(self.context.base_url, *segments)
        # 401: the key is wrong. 403 on a sale or search: the processing account we name is not the
        # key's, so the stored apiKey and processingId do not belong together (the pool's default).
        # On a path naming a transaction, 403 and 404 mean it is not this merchant's (`not_found`).
        reply = self.http.send(
            method, url, auth=(self.credentials["apiKey"], ""), json=body, params=params,
            gateway=self.name, endpoint=segments[0], url_setting=self.url_setting,
            statuses=NO_STATUSES if isinstance(path, str) else OBJECT_STATUSES,
        )
        if 200 <= reply.status < 300:
            if not isinstance(reply.json, dict):
                raise OutcomeUnknown(
                    "Payload answered with an unexpected body", code="unreadable_response", http_status=reply.status
                )
            return reply.json
        error: Body = reply.json if isinstance(reply.json, dict) else {}
        error_type = str(error.get("error_type") or "")
        code, status = error_type or str(reply.status), reply.status
        if error_type == "TransactionDeclined" and isinstance(error.get("details"), dict):
            raise declined_from(error["details"], reply.status)
        raise RequestRejected(error_message_from(error, status), code=code, http_status=status)

    def _completed(self, payment: Body) -> Body:
        """`payment` as a completed sale: a hold (`authorized`) is processed first."""
        if status_of(payment) == "authorized":
            try:
                payment = self._commit("PUT", ("transactions", id_from(payment)), {"status": "processed"})
            except (OutcomeUnknown, Declined):
                raise
            except GatewayError as error:
                # The hold stands whatever went wrong: never "nothing charged".
                raise OutcomeUnknown(
                    f"Payload holds payment {payment.get('id')} as authorized and did not process it: "
                    f"{error.message}",
                    code="authorized",
                    http_status=error.http_status,
                    transaction_id=payment.get("id"),
                ) from None
        return self._approved(payment)

    def _approved(self, transaction: Body) -> Body:
        status = status_of(transaction)
        if status == "processed":
            return transaction
        if status in ("declined", "rejected"):
            raise declined_from(transaction, 200)
        if status == "processing":
            raise OutcomeUnknown(
                f"Payload is still processing transaction {transaction.get('id')}; its outcome is not final",
                code="processing",
                http_status=200,
                transaction_id=transaction.get("id"),
            )
        raise OutcomeUnknown(
            f"Payload answered with transaction status {transaction.get('status')!r}",
            code="unexpected_status",
            http_status=200,
        )


def not_found(reply: HttpReply) -> TransactionNotFound:
    # 403 is "outside this key's scope": another account's transaction, which for this merchant does
    # not exist. The key itself is fine, so no credential refresh.
    return TransactionNotFound(
        "Payload has no such transaction for this merchant", code="transaction_not_found", http_status=reply.status
    )


OBJECT_STATUSES: Mapping[int, StatusError] = {403: not_found, 404: not_found}
"""How Payload answers a URL naming a transaction it does not hold for this key."""


def json_amount(amount: Decimal) -> float:
    """`amount` as the JSON number Payload expects. Python's float repr is the shortest string that
    reads back as the same float, so 19.99 goes on the wire as 19.99, never 19.989999..."""
    return float(format(whole_cents(amount), "f"))


def add_payment_method(payment: Body, sale: SaleRequest) -> None:
    """The card, or a saved payment method charged server-side by its id (no card fields at all)."""
    if sale.card is not None:
        payment["payment_method"] = card_payment_method(sale.card, sale.billing)
    elif sale.token is not None and sale.token.kind == "payload_payment_method":
        payment["payment_method_id"] = sale.token.value
    else:
        raise RequestRejected("Payload takes a card or a payment method id (pm_...)", code="token_not_accepted")


def card_payment_method(card: Card, billing: BillingAddress) -> Body:
    method: Body = {"type": "card"}
    if billing.postal_code:
        method["billing_address"] = {"postal_code": billing.postal_code}
    method["card"] = {
        "card_number": card.number,
        "expiry": f"{card.exp_month:02d}/{card.exp_year % 100:02d}",
        "card_code": card.cvv,
    }
    return method


def add_description(body: Body, comment: str | None) -> None:
    if comment:
        body["description"] = comment[: PayloadGateway.DESCRIPTION_LIMIT]


def check_order_number(order_id: str) -> None:
    if not ORDER_NUMBER.fullmatch(order_id):
        raise RequestRejected(
            "order id must be 1-64 letters, digits or ._:~- starting with a letter or digit", code="order_number"
        )


def status_of(transaction: Mapping[str, Any]) -> str:
    """The transaction's status in lower case: Payload's own pages write them capitalised."""
    return str(transaction.get("status") or "").lower()


def status_from(transaction: Mapping[str, Any]) -> PaymentStatus:
    status = status_of(transaction)
    is_payment = transaction.get("type") in (None, "payment")
    amount = amount_from(transaction)
    if is_payment and amount is None:
        raise OutcomeUnknown(f"Payload reported no amount for payment {transaction.get('id')}", code="no_amount")
    # A payment still `processing` is neither: its outcome is not final yet.
    completed = status in ("processed", "authorized")
    settled = is_settled(transaction)
    return PaymentStatus(
        transaction_id=id_from(transaction),
        is_payment=is_payment,
        amount=amount,
        currency=None,
        settled=settled,
        voided=status == "voided",
        voidable=completed and not settled,
        refundable=completed and settled,
        state=status,
    )


def is_settled(payment: Mapping[str, Any]) -> bool:
    # Voidable while funding is pending; once batched only a refund gives money back.
    return payment.get("funding_status") not in (None, "pending")


def amount_from(transaction: Mapping[str, Any]) -> Decimal | None:
    """The transaction's amount, None when it has none; an unreadable one makes the outcome unknown."""
    if transaction.get("amount") is None:
        return None
    return answered_amount(transaction["amount"], "Payload")


def id_from(transaction: Mapping[str, Any]) -> str:
    """The transaction's id; an answer without a usable one cannot be referenced, so the outcome of
    what it answers is unknown."""
    value = transaction.get("id")
    if isinstance(value, str) and PayloadGateway.is_transaction_id(value):
        return value
    raise OutcomeUnknown(
        "Payload answered without a usable transaction id", code="unreadable_response", http_status=200
    )


def result_from(transaction: Mapping[str, Any], action: Action, amount: Decimal | None = None) -> GatewayResult:
    status = str(transaction.get("status") or "")
    return GatewayResult(
        transaction_id=id_from(transaction),
        action=action,
        code=str(transaction.get("status_code") or status),
        message=str(transaction.get("status_message") or status),
        http_status=200,
        amount=amount if amount is not None else amount_from(transaction),
        last_four=last_four_from(transaction),
    )


def last_four_from(transaction: Mapping[str, Any]) -> str | None:
    """The card's last four digits from the transaction's masked card (`xxxxxxxxxxxx4242`): for the
    audit line of a sale made with a payment method id."""
    method = transaction.get("payment_method")
    card = method.get("card") if isinstance(method, dict) else None
    number = str(card.get("card_number") or "") if isinstance(card, dict) else ""
    return number[-4:] if len(number) >= 4 and number[-4:].isascii() and number[-4:].isdigit() else None


def declined_from(transaction: Mapping[str, Any], http_status: int) -> Declined:
    code = str(transaction.get("status_code") or "declined")
    return Declined(
        str(transaction.get("status_message") or f"declined: {code}"),
        code=code,
        http_status=http_status,
        standard=PayloadGateway.standard_errors.get(code, StandardError.DECLINED),
        transaction_id=transaction.get("id"),
    )


def error_message_from(error: Mapping[str, Any], status: int) -> str:
    parts = [str(error.get("error_type") or f"HTTP {status}")]
    if error.get("error_description"):
        parts.append(str(error["error_description"]))
    if isinstance(error.get("details"), dict) and error["details"]:
        parts.append(", ".join(f"{key}: {value}" for key, value in error["details"].items()))
    return "Payload refused the request: " + "; ".join(parts)
