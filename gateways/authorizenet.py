"""Authorize.Net: the JSON API (`createTransactionRequest` and the Transaction Details API), spoken
directly over the shared HTTP pool. No vendor SDK: its configuration is module-global.

Wire facts (more-gateways reference, part 1): one URL for every call, the root key names the
operation; the credentials travel in the body (`merchantAuthentication`), never in a header. JSON
keys are checked against the schema's sequence, so every body is built in schema order (a wrong
order is E00003). Answers start with a UTF-8 byte-order mark and come with HTTP 200 whatever the
outcome: `messages.resultCode` says whether the request was accepted, and for a transaction
`transactionResponse.responseCode` says what happened to it: 1 approved, 2 declined, 3 error, 4 held
for review (authorised, but it settles only once someone at the merchant approves it).

Our reference: `refId` and `invoiceNumber` take 20 characters, too few for our order ids, so each
operation sends a reference derived from the merchant account and the order id (`short_reference`):
the same on every retry, letters only (no run of digits a processor could mask as a card number).

There is no look-up by our reference: an unknown outcome is found in the unsettled list by
`invoiceNumber`, then in the settled batches of the last days. Those lists, and the details of one
transaction (the card's last four digits a refund needs), are the Transaction Details API, which a
merchant must enable; an account without it answers E00011, which is reported as that account's
configuration error. `duplicateWindow` is set on sales and refunds: a resend of ours that the look-up
missed is then answered as a duplicate carrying the original's id, and the original is adopted.
"""

from __future__ import annotations

import hashlib
import logging
import re
import string
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from gateways.base import (
    BillingAddress,
    CardToken,
    CredentialField,
    Gateway,
    GatewayResult,
    PaymentStatus,
    SaleRequest,
)
from gateways.cards import answered_amount, whole_cents
from gateways.errors import (
    AlreadyVoided,
    CredentialsRejected,
    Declined,
    GatewayError,
    GatewayMisconfigured,
    GatewayUnreachable,
    NotRefundable,
    OutcomeUnknown,
    RequestRejected,
    StandardError,
    TransactionNotFound,
)
from gateways.http import scrub_transcript

log = logging.getLogger(__name__)

Body = dict[str, Any]

REFERENCE_LENGTH = 20
"""`refId` and `order.invoiceNumber` allow 20 characters, no symbols."""
REFERENCE_PREFIX = "BV"
"""Marks our invoice numbers in the merchant's own reports."""
ORDER_ID_FIELD = "orderId"
"""The merchant-defined field (`userFields`) that carries our whole order id."""
APPROVED_TEXT = "This transaction has been approved."
"""Authorize.Net's text for responseCode 1: what a payment found by a look-up is reported with."""
DUPLICATE_WINDOW_SECONDS = 28800
"""The longest window Authorize.Net allows (8 hours). Every invoice number we send is unique to one
operation of one merchant, so only a resend of that same operation can match: a legitimate purchase
never collides, and the longer the window, the longer a resend that the look-up missed (a list
that lags, a settled batch past the look-back) is answered with the original instead of charging
again. The idempotency store stays the first guard."""
LOOKBACK_DAYS = 7
"""Settled batches searched for an unknown outcome: a charge settles the night after it is made,
and unknown outcomes are settled (by a retry or the reconciler) within hours."""
PAGE_SIZE = 1000
"""The largest page the list calls return."""
MAX_PAGES = 20
"""A list longer than this many pages is not searched to its end: the look-up answers unknown
rather than "not found"."""
HELD_FOR_REVIEW_OPTION = "heldForReview"
"""The merchant secret's optional field choosing the held-for-review policy: `accept` answers a held
payment as approved; anything else (or nothing) voids it and answers a decline."""

_STATUS_WORDS = {
    "live": frozenset({
        "authorizedpendingcapture", "capturedpendingsettlement", "settledsuccessfully", "fdspendingreview",
        "fdsauthorizedpendingreview", "approvedreview", "underreview", "pendingfinalsettlement",
        "pendingsettlement", "updatingsettlement", "authorizedpendingrelease", "couldnotvoid",
    }),
    "dead": frozenset({"declined", "voided", "expired", "failedreview", "generalerror", "settlementerror"}),
}
LIVE_STATUSES = _STATUS_WORDS["live"]
"""A payment in one of these exists: money is held, captured or settled (`capturedPendingSettlement`
is a success, not "processing": Hyperswitch mistook it in production)."""
DEAD_STATUSES = _STATUS_WORDS["dead"]
"""A payment in one of these charged nothing (or no longer does)."""
HELD_STATUSES = frozenset({"fdspendingreview", "fdsauthorizedpendingreview", "underreview"})
VOIDABLE_STATUSES = frozenset({
    "authorizedpendingcapture", "capturedpendingsettlement", "fdspendingreview", "fdsauthorizedpendingreview",
    "approvedreview", "underreview",
})
"""Not yet in a settlement batch: a void gives the whole amount back."""
REFUND_STATUSES = frozenset({"refundpendingsettlement", "refundsettledsuccessfully"})
PAYMENT_TYPES = frozenset({
    "authcapturetransaction", "authonlytransaction", "captureonlytransaction", "priorauthcapturetransaction",
})

APPROVED, DECLINED, ERROR, HELD = "1", "2", "3", "4"
DUPLICATE = "11"
TRANSACTION_NOT_FOUND = "16"
NOT_SETTLED = "54"
CREDITS_EXCEED_DEBIT = "55"
ALREADY_ACTIONED = frozenset({"310", "311"})
"""Already voided / already captured: failures even under responseCode 1 (ActiveMerchant)."""
SYSTEM_VOID_FAILED = frozenset({"120", "121", "122", "152"})
"""The gateway timed out (or failed) and its own void of the authorisation failed: a hold may stand."""
STANDARD_ERRORS: Mapping[str, StandardError] = {
    # responseCode + reason code, ActiveMerchant's STANDARD_ERROR_CODE_MAPPING.
    "22": StandardError.DECLINED, "23": StandardError.DECLINED,
    "2315": StandardError.INVALID_CARD, "36": StandardError.INVALID_CARD, "237": StandardError.INVALID_CARD,
    "2316": StandardError.EXPIRED_CARD, "37": StandardError.EXPIRED_CARD,
    "2317": StandardError.EXPIRED_CARD, "38": StandardError.EXPIRED_CARD,
    "244": StandardError.CVV_MISMATCH, "378": StandardError.CVV_MISMATCH,
    "235": StandardError.PROCESSING_ERROR, "3153": StandardError.PROCESSING_ERROR,
    "300": StandardError.CONFIG_ERROR, "384": StandardError.CONFIG_ERROR,
}
CREDENTIAL_ERRORS = frozenset({"E00007", "E00008", "E00010", "E00124"})
"""Authentication failed, the account or API user is inactive, no permission to call the API, an
invalid access token: the stored credentials are wrong for this account."""
DETAILS_API_OFF = "E00011"
TEST_MODE = "E00009"
RECORD_NOT_FOUND = "E00040"
MAINTENANCE = "E00104"
SYSTEM_ERROR = "E00001"
INVALID_TOKEN = "E00114"  # noqa: S105 (an error code, not a secret)
"""Invalid OTS Token: an Accept.js nonce that is malformed, expired or already used."""
OPAQUE_TOKEN = "authorizenet_opaque"  # noqa: S105 (a token kind, not a secret)
DEFAULT_DESCRIPTOR = "COMMON.ACCEPT.INAPP.PAYMENT"


class AuthorizeNetGateway(Gateway):
    type_id = 3
    name = "Authorize.Net"
    credential_fields = (
        CredentialField("apiLoginId", "API Login ID", 1),
        CredentialField("transactionKey", "Transaction Key", 2),
        CredentialField(HELD_FOR_REVIEW_OPTION, "Held For Review", 3, required=False),
    )
    currencies: ClassVar[frozenset[str]] = frozenset({"USD", "CAD", "GBP", "EUR"})
    """The processor fixes each account's currency and the wire carries none (ActiveMerchant sends
    none either): the flow refuses a request in another currency than the account's."""
    test_url = "https://apitest.authorize.net/xml/v1/request.api"
    live_url = "https://api2.authorize.net/xml/v1/request.api"
    url_setting = "AUTHORIZENET_URL"
    token_kinds: ClassVar[frozenset[str]] = frozenset({OPAQUE_TOKEN})
    """Accept.js opaque data: the browser sends the card to Authorize.Net and hands us a one-time
    nonce (more-gateways reference §5.3)."""
    transaction_id_pattern = re.compile(r"[1-9][0-9]{0,19}")
    """`transId` is a numeric string; 0 is what an account in test mode answers for a transaction
    it did not store."""
    SECRET_FIELDS = ("name", "transactionKey", "cardNumber", "cardCode", "expirationDate", "dataValue")
    """What `scrub` removes: the API login id (`name`, our only field of that name) and key, the card
    number, CVV and expiry, and an Accept.js nonce."""

    @property
    def accepts_held_payments(self) -> bool:
        return self.credentials.get(HELD_FOR_REVIEW_OPTION, "").strip().lower() == "accept"

    def reference(self, order_id: str) -> str:
        return short_reference(self.context.merchant_account_id, order_id)

    def charge(self, sale: SaleRequest) -> GatewayResult:
        reference = self.reference(sale.order_id)
        transaction = new_transaction("authCaptureTransaction")
        add_amount(transaction, sale.amount)
        add_payment(transaction, sale)
        add_order(transaction, reference, sale.comment)
        add_bill_to(transaction, sale.billing)
        add_duplicate_window(transaction)
        add_order_id(transaction, sale.order_id)
        try:
            answer = self._transact(transaction, reference)
        except RequestRejected as error:
            if sale.token is None or error.code != INVALID_TOKEN:
                raise
            return self._token_refused(sale, error)
        return self._sale_outcome(answer, sale.amount)

    def payment_status(self, payment_id: str) -> PaymentStatus:
        return status_from(self._details(payment_id))

    def void(self, payment_id: str, amount: Decimal | None = None) -> GatewayResult:
        if amount is not None:
            # A void is always for the whole amount; the policy asks for part of one only from a
            # gateway whose status says voidable_in_part, which this one never does.
            raise NotRefundable(
                "Authorize.Net voids only whole payments; refund the part after settlement",
                code="whole_void_only",
            )
        transaction = new_transaction("voidTransaction")
        transaction["refTransId"] = check_transaction_id(payment_id)
        answer = self._transact(transaction, None)
        return self._void_outcome(answer, payment_id)

    def refund(
        self, payment_id: str, amount: Decimal | None, order_id: str, comment: str | None = None
    ) -> GatewayResult:
        details = self._details(payment_id)
        whole = amount_of(details)
        asked = whole if amount is None else amount
        if asked is None:
            raise OutcomeUnknown(f"Authorize.Net reported no amount for payment {payment_id}", code="no_amount")
        reference = self.reference(order_id)
        transaction = new_transaction("refundTransaction")
        add_amount(transaction, asked)
        # A refund names the card by its last four digits and a masked expiry (the details give them).
        transaction["payment"] = {"creditCard": {"cardNumber": last_four_of(details), "expirationDate": "XXXX"}}
        transaction["refTransId"] = check_transaction_id(payment_id)
        add_order(transaction, reference, comment)
        add_duplicate_window(transaction)
        add_order_id(transaction, order_id)
        answer = self._transact(transaction, reference)
        if reason_of(answer) == NOT_SETTLED and response_code_of(answer) != APPROVED:
            return self._refund_unsettled(payment_id, asked, whole, answer)
        return self._refund_outcome(answer, asked)

    def find_payment(self, order_id: str) -> GatewayResult | None:
        reference = self.reference(order_id)
        found = [s for s in self._summaries_for(reference) if is_payment_summary(s)]
        live = [s for s in found if status_word(s) in LIVE_STATUSES]
        unclear = [s for s in found if status_word(s) not in LIVE_STATUSES | DEAD_STATUSES]
        if unclear and not live:
            # A status we do not know: the charge may exist. Never "not found".
            raise OutcomeUnknown(
                f"Authorize.Net holds transaction {unclear[0].get('transId')} for this order in status "
                f"{unclear[0].get('transactionStatus')!r}, which this service does not know",
                code="unknown_status",
                transaction_id=str(unclear[0].get("transId") or "") or None,
            )
        if not live:
            return None
        if len(live) > 1:
            log.warning("Authorize.Net holds %d live payments for invoice %s; using the newest", len(live), reference)
        summary = live[0]
        transaction_id = check_answered_id(summary.get("transId"))
        if status_word(summary) in HELD_STATUSES and not self.accepts_held_payments:
            # The first attempt's answer was lost before our policy could void the hold: void it
            # now. Nothing then stands; a resend meets the duplicate check and is told the original
            # was held (see _adopt), so the caller hears the same decline the first attempt would have.
            self._void_held(transaction_id)
            return None
        held = held_code(summary)
        return GatewayResult(
            transaction_id=transaction_id,
            action="sale",
            code=held or APPROVED,
            message=f"held for review ({summary.get('transactionStatus')}); accepted as this merchant chose"
            if held else APPROVED_TEXT,
            http_status=200,
            amount=summary_amount(summary),
            last_four=masked_last_four(summary.get("accountNumber")),
        )

    def find_refund(self, order_id: str) -> GatewayResult | None:
        reference = self.reference(order_id)
        done = [s for s in self._summaries_for(reference) if status_word(s) in REFUND_STATUSES]
        if not done:
            return None
        summary = done[0]
        return GatewayResult(
            transaction_id=check_answered_id(summary.get("transId")),
            action="refund",
            code=APPROVED,
            message=APPROVED_TEXT,
            http_status=200,
            amount=summary_amount(summary),
        )

    def verify_credentials(self) -> None:
        # Neither call charges anyone: authenticateTestRequest checks the login and key; a one-row
        # unsettled list checks that the Transaction Details API (look-ups, refunds) is enabled.
        self._commit("authenticateTestRequest", {})
        self._commit("getUnsettledTransactionListRequest", list_request(limit=1, page=1))

    @staticmethod
    def scrub(transcript: str) -> str:
        return scrub_transcript(transcript, json_fields=AuthorizeNetGateway.SECRET_FIELDS)

    def _sale_outcome(self, answer: Body, asked: Decimal) -> GatewayResult:
        code, reason = response_code_of(answer), reason_of(answer)
        if code == ERROR and reason == DUPLICATE:
            return self._adopt(answer, asked)
        if code == HELD:
            return self._held(answer, asked)
        approved = approved_transaction(answer, "sale")
        return result_from(approved, "sale", approved_amount(approved, asked))

    def _token_refused(self, sale: SaleRequest, error: RequestRejected) -> GatewayResult:
        """The nonce is one-time: refused as used, it may have been used by an earlier attempt of
        this very sale whose answer was lost. Only the look-up can tell; the nonce is never sent
        again by us, and a payment found is this sale's."""
        found = self.find_payment(sale.order_id)
        if found is not None:
            return found
        raise RequestRejected(
            f"Authorize.Net refused the Accept.js token as invalid, expired or already used ({error.message}), "
            "and no payment under this order exists: nothing was charged; the card must be entered again",
            code="token_rejected",
            http_status=error.http_status,
        )

    def _held(self, answer: Body, asked: Decimal) -> GatewayResult:
        transaction_id = check_answered_id(answer.get("transId"))
        if self.accepts_held_payments:
            return GatewayResult(
                transaction_id=transaction_id,
                action="sale",
                code="held_for_review",
                message=f"held for review by the merchant's fraud filters (reason {reason_of(answer)}); "
                "accepted as this merchant chose: it settles once the merchant approves it",
                http_status=200,
                amount=asked,
                last_four=masked_last_four(answer.get("accountNumber")),
            )
        self._void_held(transaction_id)
        raise held_decline(transaction_id, reason_of(answer))

    def _void_held(self, transaction_id: str) -> None:
        try:
            self.void(transaction_id)
        except AlreadyVoided:
            return
        except GatewayError as error:
            raise OutcomeUnknown(
                f"Authorize.Net held payment {transaction_id} for review and voiding it failed "
                f"({error.message}): it settles if the merchant approves it",
                code="held_for_review_not_voided",
                transaction_id=transaction_id,
            ) from None

    def _adopt(self, answer: Body, asked: Decimal) -> GatewayResult:
        """A duplicate of one of our own earlier requests: the answer names the original, whose
        outcome becomes this request's. Without its id nothing can be said."""
        original = answer.get("transId")
        if not isinstance(original, str) or not self.is_transaction_id(original):
            raise OutcomeUnknown(
                "Authorize.Net answered that an identical transaction was already submitted, without "
                "naming it: the earlier attempt may have charged",
                code="duplicate",
                http_status=200,
            )
        details = self._details(original)
        word = status_word(details)
        held = str(details.get("responseCode")) == HELD
        if word in LIVE_STATUSES:
            if word in HELD_STATUSES and not self.accepts_held_payments:
                self._void_held(original)
                raise held_decline(original, str(details.get("responseReasonCode") or ""))
            return GatewayResult(
                transaction_id=original,
                action="sale",
                code="held_for_review" if word in HELD_STATUSES else str(details.get("responseReasonCode") or "1"),
                message=f"the original of this request: {details.get('responseReasonDescription') or word}",
                http_status=200,
                amount=amount_of(details) or asked,
                last_four=masked_last_four(card_number_of(details)),
            )
        if word == "voided" and held:
            raise held_decline(original, str(details.get("responseReasonCode") or ""))
        if word in DEAD_STATUSES:
            raise Declined(
                f"the original of this request was {details.get('transactionStatus')}: "
                f"{details.get('responseReasonDescription') or 'nothing was charged'}",
                code=str(details.get("responseReasonCode") or word),
                http_status=200,
                transaction_id=original,
            )
        raise OutcomeUnknown(
            f"the original of this request, {original}, is in status {details.get('transactionStatus')!r}",
            code="unknown_status",
            http_status=200,
            transaction_id=original,
        )

    def _void_outcome(self, answer: Body, payment_id: str) -> GatewayResult:
        reason = reason_of(answer)
        if reason == "310":
            raise AlreadyVoided("payment already voided", code=reason, http_status=200, transaction_id=payment_id)
        if response_code_of(answer) == APPROVED and reason not in ALREADY_ACTIONED:
            return result_from(answer, "void", None, transaction_id=payment_id)
        if reason == TRANSACTION_NOT_FOUND:
            # A void looks among unsettled transactions only: a payment that settled meanwhile is
            # "not found" too (the policy asked payment_status first, which knows every payment).
            raise NotRefundable(
                f"payment {payment_id} cannot be voided: it is not among the unsettled transactions "
                f"({text_of(answer)}); once settled it can be refunded",
                code=reason, http_status=200, transaction_id=payment_id,
            )
        raise transaction_error(answer, refused=NotRefundable)

    def _refund_outcome(self, answer: Body, asked: Decimal) -> GatewayResult:
        code, reason = response_code_of(answer), reason_of(answer)
        if code == ERROR and reason == DUPLICATE:
            return self._adopt_refund(answer)
        if code == APPROVED and reason not in ALREADY_ACTIONED:
            return result_from(approved_transaction(answer, "refund"), "refund", asked)
        if reason == CREDITS_EXCEED_DEBIT:
            # The payment's details do not say what was refunded already, so the gateway is the
            # one to refuse a refund above what is left.
            raise RequestRejected(
                f"refund amount {asked} exceeds what is left of the payment: {text_of(answer)}",
                code=reason,
                http_status=200,
            )
        if reason == TRANSACTION_NOT_FOUND:
            raise TransactionNotFound(text_of(answer), code=reason, http_status=200)
        raise transaction_error(answer, refused=NotRefundable)

    def _adopt_refund(self, answer: Body) -> GatewayResult:
        original = answer.get("transId")
        if not isinstance(original, str) or not self.is_transaction_id(original):
            raise OutcomeUnknown(
                "Authorize.Net answered that an identical refund was already submitted, without naming it",
                code="duplicate",
                http_status=200,
            )
        details = self._details(original)
        if status_word(details) in REFUND_STATUSES:
            return GatewayResult(
                transaction_id=original,
                action="refund",
                code=APPROVED,
                message=APPROVED_TEXT,
                http_status=200,
                amount=amount_of(details),
            )
        raise NotRefundable(
            f"the original of this refund request is {details.get('transactionStatus')}",
            code=str(details.get("responseReasonCode") or status_word(details)),
            http_status=200,
            transaction_id=original,
        )

    def _refund_unsettled(
        self, payment_id: str, asked: Decimal, whole: Decimal | None, answer: Body
    ) -> GatewayResult:
        """Reason 54 ("does not meet the criteria for issuing a credit"). The payment may have left
        the settlement batch it was in, or never been in one: when it is still unsettled a void
        gives the money back (ActiveMerchant's force_full_refund_if_unsettled); otherwise 54 means
        settled too long ago, or not a card payment."""
        status = status_from(self._details(payment_id))
        if not status.voidable:
            raise transaction_error(answer, refused=NotRefundable)
        if whole is None or asked != whole:
            raise NotRefundable(
                "the payment has not settled yet: refund it in full now (a void), or in part after settlement",
                code=NOT_SETTLED,
                http_status=200,
            )
        return self.void(payment_id)

    def _details(self, transaction_id: str) -> Body:
        body = self._commit("getTransactionDetailsRequest", {"transId": check_transaction_id(transaction_id)})
        transaction = body.get("transaction")
        if not isinstance(transaction, dict) or transaction.get("transId") != transaction_id:
            raise OutcomeUnknown(
                "Authorize.Net answered getTransactionDetails with an unreadable body",
                code="unreadable_response",
                http_status=200,
            )
        return transaction

    def _summaries_for(self, reference: str) -> list[Body]:
        """Every transaction whose invoice number is `reference`: unsettled ones, then those in the
        settled batches of the last LOOKBACK_DAYS, newest first."""
        found = [s for s in self._unsettled() if s.get("invoiceNumber") == reference]
        if found:
            return found
        for batch_id in self._recent_batches():
            found += [s for s in self._batch(batch_id) if s.get("invoiceNumber") == reference]
        return found

    def _unsettled(self) -> Iterator[Body]:
        yield from self._pages("getUnsettledTransactionListRequest", {})

    def _batch(self, batch_id: str) -> Iterator[Body]:
        yield from self._pages("getTransactionListRequest", {"batchId": batch_id})

    def _pages(self, root: str, head: Body) -> Iterator[Body]:
        for page in range(1, MAX_PAGES + 1):
            body = self._commit(root, {**head, **list_request(limit=PAGE_SIZE, page=page)})
            summaries = summaries_from(body)
            yield from summaries
            if len(summaries) < PAGE_SIZE:
                return
        raise OutcomeUnknown(
            f"Authorize.Net lists more than {MAX_PAGES * PAGE_SIZE} transactions; the look-up stopped "
            "before the end, so the earlier attempt may exist",
            code="lookup_truncated",
        )

    def _recent_batches(self) -> list[str]:
        now = datetime.now(UTC)
        body = self._commit("getSettledBatchListRequest", {
            "firstSettlementDate": wire_time(now - timedelta(days=LOOKBACK_DAYS)),
            "lastSettlementDate": wire_time(now),
        })
        batches = body.get("batchList", [])
        if not isinstance(batches, list) or not all(isinstance(b, dict) and b.get("batchId") for b in batches):
            raise OutcomeUnknown(
                "Authorize.Net answered getSettledBatchList with an unreadable body",
                code="unreadable_response",
                http_status=200,
            )
        newest_first = sorted(batches, key=lambda b: str(b.get("settlementTimeUTC") or ""), reverse=True)
        return [str(b["batchId"]) for b in newest_first]

    def _transact(self, transaction: Body, reference: str | None) -> Body:
        """One createTransactionRequest; returns its `transactionResponse` (whatever its code)."""
        head: Body = {} if reference is None else {"refId": reference}
        body = self._commit("createTransactionRequest", {**head, "transactionRequest": transaction}, transaction=True)
        answer = body.get("transactionResponse")
        if not isinstance(answer, dict) or not answer.get("responseCode"):
            raise OutcomeUnknown(
                "Authorize.Net answered a transaction without a transaction response",
                code="unreadable_response",
                http_status=200,
            )
        return answer

    def _commit(self, root: str, request: Body, *, transaction: bool = False) -> Body:
        """Send one API request and return its body once `messages` accepts it. With `transaction`,
        a refusal that carries a transaction response (a decline is `resultCode` Error too) is
        returned for the caller to read."""
        authentication = {"name": self.credentials["apiLoginId"], "transactionKey": self.credentials["transactionKey"]}
        document = {root: {"merchantAuthentication": authentication, **request}}
        reply = self.http.send(
            "POST", self.context.base_url, auth=None, json=document, gateway=self.name, endpoint=root,
            url_setting=self.url_setting,
        )
        if reply.status != 200 or not isinstance(reply.json, dict):
            # The status is not the outcome (ActiveMerchant ignores it); an answer we cannot read
            # may hide a transaction that was carried out.
            raise OutcomeUnknown(
                f"Authorize.Net answered HTTP {reply.status} with an unreadable body",
                code="unreadable_response",
                http_status=reply.status,
            )
        body: Body = reply.json
        result = result_code_of(body)
        if result == "Ok":
            return body
        if result == "Error":
            answer = body.get("transactionResponse")
            if transaction and isinstance(answer, dict) and answer.get("responseCode"):
                return body
            raise api_error(body, root)
        raise OutcomeUnknown(
            "Authorize.Net answered without a result code", code="unreadable_response", http_status=200
        )


def short_reference(merchant_account_id: int, order_id: str) -> str:
    """Our 20-character reference for `order_id` at this merchant account: deterministic (a retry
    derives the same and finds the first attempt), scoped by merchant account (two accounts sharing
    one gateway login cannot collide), and letters only: never a digit run a processor would mask
    as a card number, never a symbol `invoiceNumber` refuses. 18 letters keep 84 bits."""
    digest = hashlib.sha256(f"{merchant_account_id}|{order_id}".encode()).digest()
    value = int.from_bytes(digest, "big")
    letters = []
    for _ in range(REFERENCE_LENGTH - len(REFERENCE_PREFIX)):
        value, index = divmod(value, 26)
        letters.append(string.ascii_uppercase[index])
    return REFERENCE_PREFIX + "".join(letters)


def new_transaction(kind: str) -> Body:
    # Keys are added in the schema's sequence: transactionType, amount, payment, refTransId, order,
    # customer, billTo, transactionSettings (transactionRequestType in AnetApiSchema.xsd).
    return {"transactionType": kind}


def add_amount(transaction: Body, amount: Decimal) -> None:
    # A string with exactly two places: up to 15 digits, a decimal point, no currency sign.
    transaction["amount"] = format(whole_cents(amount), "f")


def add_payment(transaction: Body, sale: SaleRequest) -> None:
    if sale.token is not None:
        transaction["payment"] = {"opaqueData": opaque_data(sale.token)}
        return
    card = sale.card
    assert card is not None  # a SaleRequest carries a card or a token
    transaction["payment"] = {
        "creditCard": {
            "cardNumber": card.number,
            "expirationDate": f"{card.exp_year:04d}-{card.exp_month:02d}",
            "cardCode": card.cvv,
        }
    }


def opaque_data(token: CardToken) -> Body:
    if token.kind != OPAQUE_TOKEN:
        raise RequestRejected(
            f"Authorize.Net takes card tokens of kind {OPAQUE_TOKEN} only", code="token_not_accepted"
        )
    # Accept.js names the format of its nonce; the official sample sends the in-app descriptor.
    return {"dataDescriptor": token.descriptor or DEFAULT_DESCRIPTOR, "dataValue": token.value}


def add_order(transaction: Body, reference: str, comment: str | None) -> None:
    order: Body = {"invoiceNumber": reference}
    if comment:
        order["description"] = comment[:255]
    transaction["order"] = order


BILL_TO_LIMITS = {"firstName": 50, "lastName": 50, "address": 60, "city": 40, "state": 40, "zip": 20, "country": 60}
"""nameAndAddressType's limits: a longer value is E00003, so free text is cut to them."""


def add_bill_to(transaction: Body, billing: BillingAddress) -> None:
    first, _, last = (billing.name or "").strip().rpartition(" ")
    values = {
        "firstName": first or None,
        "lastName": last or None,
        "address": billing.street,
        "city": billing.city,
        "state": billing.state,
        "zip": billing.postal_code,
        "country": billing.country,
    }
    bill_to = {key: value.strip()[: BILL_TO_LIMITS[key]] for key, value in values.items() if value and value.strip()}
    if bill_to:
        transaction["billTo"] = bill_to


def add_duplicate_window(transaction: Body) -> None:
    transaction["transactionSettings"] = {
        "setting": [{"settingName": "duplicateWindow", "settingValue": str(DUPLICATE_WINDOW_SECONDS)}]
    }


def add_order_id(transaction: Body, order_id: str) -> None:
    # Our whole order id rides along as a merchant-defined field: the merchant's own view of the
    # transaction then names the request it came from, which the 20-letter reference cannot.
    transaction["userFields"] = {"userField": [{"name": ORDER_ID_FIELD, "value": order_id}]}


def list_request(*, limit: int, page: int) -> Body:
    return {
        "sorting": {"orderBy": "submitTimeUTC", "orderDescending": "true"},
        "paging": {"limit": str(limit), "offset": str(page)},
    }


def wire_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def check_transaction_id(transaction_id: str) -> str:
    if not AuthorizeNetGateway.is_transaction_id(transaction_id):
        raise TransactionNotFound(f"{transaction_id!r} is not an Authorize.Net transaction id", code="transaction_id")
    return transaction_id


def check_answered_id(value: object) -> str:
    """An id from an answer; without a usable one the transaction cannot be referenced, so the
    outcome of what the answer reports is unknown. transId 0 is test mode: nothing was stored."""
    if value == "0":
        raise GatewayMisconfigured(
            "the Authorize.Net account is in Test Mode: it answered transaction id 0 and stores nothing; "
            "turn Test Mode off for this account",
            code="test_mode",
            http_status=200,
        )
    if isinstance(value, str) and AuthorizeNetGateway.is_transaction_id(value):
        return value
    raise OutcomeUnknown("Authorize.Net answered without a usable transaction id", code="unreadable_response",
                         http_status=200)


def result_code_of(body: Mapping[str, Any]) -> str:
    messages = body.get("messages")
    return str(messages.get("resultCode") or "") if isinstance(messages, dict) else ""


def api_messages(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    messages = body.get("messages")
    listed = messages.get("message") if isinstance(messages, dict) else None
    return [m for m in listed if isinstance(m, dict)] if isinstance(listed, list) else []


def api_error(body: Mapping[str, Any], root: str) -> GatewayError:
    """The refusal of a whole request (`resultCode` Error, no transaction in it)."""
    first = (api_messages(body) or [{}])[0]
    code, text = str(first.get("code") or ""), str(first.get("text") or "no message")
    message = f"Authorize.Net refused {root}: {code} {text}".strip()
    if code in CREDENTIAL_ERRORS:
        return CredentialsRejected(
            "Authorize.Net did not accept the merchant's credentials", code=code, http_status=200
        )
    if code == DETAILS_API_OFF:
        return GatewayMisconfigured(
            "this merchant's Authorize.Net account has not enabled the Transaction Details API (E00011 "
            f"{text}): look-ups and refunds need it. The merchant turns it on under Account > Settings > "
            "Security Settings > Transaction Details API; nothing was done",
            code=code, http_status=200,
        )
    if code == TEST_MODE:
        return GatewayMisconfigured(
            f"the Authorize.Net account is in Test Mode ({code} {text}); turn Test Mode off", code=code,
            http_status=200,
        )
    if code == RECORD_NOT_FOUND:
        return TransactionNotFound(message, code=code, http_status=200)
    if code == MAINTENANCE:
        return GatewayUnreachable(f"{message}; nothing was done", code="maintenance", http_status=200)
    if code == SYSTEM_ERROR or not code:
        return OutcomeUnknown(message, code=code or "unreadable_response", http_status=200)
    return RequestRejected(message, code=code, http_status=200)


def response_code_of(answer: Mapping[str, Any]) -> str:
    return str(answer.get("responseCode") or "")


def _first(answer: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    entries = answer.get(key)
    if isinstance(entries, dict):  # a JSON rendering of a single-element XML list
        entries = [entries]
    if isinstance(entries, list) and entries and isinstance(entries[0], dict):
        return entries[0]
    return {}


def reason_of(answer: Mapping[str, Any]) -> str:
    """The reason code: `errors` on codes 2 and 3, `messages` on 1 and 4 (ActiveMerchant)."""
    error = _first(answer, "errors")
    if error.get("errorCode"):
        return str(error["errorCode"])
    return str(_first(answer, "messages").get("code") or "")


def text_of(answer: Mapping[str, Any]) -> str:
    error = _first(answer, "errors")
    if error.get("errorText"):
        return str(error["errorText"])
    return str(_first(answer, "messages").get("description") or "no response text")


def standard_error_of(answer: Mapping[str, Any]) -> StandardError:
    return STANDARD_ERRORS.get(response_code_of(answer) + reason_of(answer), StandardError.DECLINED)


def approved_transaction(answer: Body, action: str) -> Body:
    """`answer` if it approved; otherwise the matching error is raised."""
    code, reason = response_code_of(answer), reason_of(answer)
    if code == APPROVED and reason not in ALREADY_ACTIONED:
        check_answered_id(answer.get("transId"))
        return answer
    raise transaction_error(answer, refused=Declined if action == "sale" else NotRefundable)


def transaction_error(answer: Mapping[str, Any], *, refused: type[GatewayError]) -> GatewayError:
    code, reason = response_code_of(answer), reason_of(answer)
    details: dict[str, Any] = {"code": reason or code, "http_status": 200}
    transaction_id = answer.get("transId")
    if isinstance(transaction_id, str) and AuthorizeNetGateway.is_transaction_id(transaction_id):
        details["transaction_id"] = transaction_id
    if code == ERROR and reason in SYSTEM_VOID_FAILED:
        return OutcomeUnknown(
            f"Authorize.Net could not tell the outcome: {text_of(answer)} (reason {reason}: the gateway's "
            "own void of the authorisation failed, so a hold may stand)",
            **details,
        )
    if code == ERROR and reason == "13":  # the API login id is invalid or the account inactive
        return CredentialsRejected("Authorize.Net did not accept the merchant's credentials", **details)
    if code == DECLINED:
        return refused(text_of(answer), standard=standard_error_of(answer) if refused is Declined else None, **details)
    if code == ERROR:
        standard = STANDARD_ERRORS.get(code + reason, StandardError.PROCESSING_ERROR)
        if refused is Declined:
            return RequestRejected(text_of(answer), standard=standard, **details)
        return refused(text_of(answer), **details)
    if code == APPROVED:  # already voided or captured
        return refused(text_of(answer), **details)
    return OutcomeUnknown(f"Authorize.Net answered responseCode {code!r}: {text_of(answer)}", **details)


def held_decline(transaction_id: str, reason: str) -> Declined:
    return Declined(
        f"held for review by the merchant's fraud filters (reason {reason or 'unknown'}); the payment "
        "was voided and nothing will be charged",
        code="held_for_review",
        http_status=200,
        standard=StandardError.HELD_FOR_REVIEW,
        transaction_id=transaction_id,
    )


def approved_amount(answer: Mapping[str, Any], asked: Decimal) -> Decimal:
    """What was approved: the asked amount, unless a prepaid card approved less (only possible with
    partial authorisation, which we never ask for; the flow voids a partial approval)."""
    prepaid = answer.get("prePaidCard")
    if isinstance(prepaid, dict) and prepaid.get("approvedAmount") not in (None, ""):
        return answered_amount(prepaid["approvedAmount"], "Authorize.Net")
    return asked


def result_from(
    answer: Mapping[str, Any], action: str, amount: Decimal | None, *, transaction_id: str | None = None
) -> GatewayResult:
    return GatewayResult(
        transaction_id=transaction_id or check_answered_id(answer.get("transId")),
        action=action,  # type: ignore[arg-type]
        code=reason_of(answer) or response_code_of(answer),
        message=text_of(answer),
        http_status=200,
        amount=amount,
        last_four=masked_last_four(answer.get("accountNumber")),
    )


def masked_last_four(value: object) -> str | None:
    """The last four digits of a masked card ("XXXX1111"), as answers and lists give it."""
    digits = str(value or "")[-4:]
    return digits if len(digits) == 4 and digits.isdigit() else None


def status_word(record: Mapping[str, Any]) -> str:
    """A transaction's status in lower case: sandbox and production differ in case (Hyperswitch)."""
    return str(record.get("transactionStatus") or "").lower()


def held_code(summary: Mapping[str, Any]) -> str | None:
    return "held_for_review" if status_word(summary) in HELD_STATUSES else None


def is_payment_summary(summary: Mapping[str, Any]) -> bool:
    # Summaries carry no transaction type; refunds are told apart by their statuses.
    return status_word(summary) not in REFUND_STATUSES


def summaries_from(body: Mapping[str, Any]) -> list[Body]:
    transactions = body.get("transactions", [])
    if isinstance(transactions, dict):  # the XML shape: {"transaction": [...]}
        transactions = transactions.get("transaction", [])
    if isinstance(transactions, dict):
        transactions = [transactions]
    if not isinstance(transactions, list) or not all(isinstance(t, dict) and t.get("transId") for t in transactions):
        # Not "nothing found": a charge may hide behind an answer we cannot read.
        raise OutcomeUnknown(
            "Authorize.Net answered a transaction list with an unreadable body", code="unreadable_response",
            http_status=200,
        )
    return transactions


def summary_amount(summary: Mapping[str, Any]) -> Decimal | None:
    if summary.get("settleAmount") in (None, ""):
        return None
    return answered_amount(summary["settleAmount"], "Authorize.Net")


def amount_of(details: Mapping[str, Any]) -> Decimal | None:
    """What a transaction was for: its authorised amount (its settle amount is 0 once voided)."""
    for key in ("authAmount", "settleAmount"):
        if details.get(key) not in (None, ""):
            return answered_amount(details[key], "Authorize.Net")
    return None


def card_number_of(details: Mapping[str, Any]) -> str:
    """The masked card number ("XXXX1111") a transaction's details show."""
    payment = details.get("payment")
    card = payment.get("creditCard") if isinstance(payment, dict) else None
    return str(card.get("cardNumber") or "") if isinstance(card, dict) else ""


def last_four_of(details: Mapping[str, Any]) -> str:
    digits = masked_last_four(card_number_of(details))
    if digits is None:
        raise NotRefundable(
            "Authorize.Net shows no card number for this payment, which a refund needs; refund it in the "
            "Merchant Interface",
            code="no_card",
            http_status=200,
        )
    return digits


def status_from(details: Mapping[str, Any]) -> PaymentStatus:
    word = status_word(details)
    return PaymentStatus(
        transaction_id=str(details.get("transId")),
        is_payment=str(details.get("transactionType") or "").lower() in PAYMENT_TYPES,
        amount=amount_of(details),
        currency=None,
        settled=word == "settledsuccessfully",
        voided=word == "voided",
        voidable=word in VOIDABLE_STATUSES,
        refundable=word == "settledsuccessfully",
        state=str(details.get("transactionStatus") or ""),
    )
