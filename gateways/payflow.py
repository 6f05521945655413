"""PayPal Payflow Pro: name-value pairs over HTTPS (gateway reference, more-gateways.md part 2).

Wire facts: one URL for everything, `POST /` with `Content-Type: text/namevalue`; `TRXTYPE` names the
operation (S sale, V void, C credit, I inquiry). Values are not URL-encoded: a value holding `&` or
`=` (or anything but letters, digits and `._-`) goes length-tagged, `NAME[5]=a&b=c`, and so does
the password always. Every answer is HTTP 200 with `RESULT=<n>&PNREF=...&RESPMSG=...`: 0 approved,
126 held by the fraud filters for review, timeouts (104 and kin) an unknown outcome, the rest
declines or errors whose `RESPMSG` we keep.

Idempotency (§2.6): `X-VPS-REQUEST-ID` is derived from our order id (a sale, a credit) or the
payment's PNREF (a void), never random as ActiveMerchant's is, so that a retry is recognised: Payflow
answers it with the original answer and `DUPLICATE=1`, whatever the retry sent. Inquiries are the
exception: a read must see the present, and a reused id would replay an old answer.

`CUSTREF` (12 letters and digits) is our reference on every sale and credit, derived from our order
id; an inquiry by it finds the last transaction that carried it (§2.7), which is how an unknown
outcome is settled. A sale's starts with P and a credit's with R, which is how a status read tells a
credit from a payment (the inquiry answer has no transaction type) [INFERENCE].

Inquiry answers [OFFICIAL Payflow developer's guides, verbosity appendix; 3P PayPal SDK constants]:
`RESULT` is the inquiry's own, `ORIGRESULT` the original transaction's, `ORIGPNREF` its id,
`TRANSSTATE` its settlement state (6 pending, 7 settling, 8 settled, 1 and 11-16 failed; +100 and
+200 when Payflow got no acknowledgment, +1000 once voided), and with `VERBOSITY=HIGH` its `AMT`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import ClassVar

from gateways.base import (
    Action,
    BillingAddress,
    Card,
    CredentialField,
    Echoes,
    Gateway,
    GatewayContext,
    GatewayResult,
    PaymentStatus,
    SaleRequest,
    SandboxCards,
    require_card,
)
from gateways.cards import answered_amount, redact_card_numbers, whole_cents
from gateways.errors import (
    CredentialsRejected,
    Declined,
    GatewayError,
    NotRefundable,
    OutcomeUnknown,
    RequestRejected,
    StandardError,
    TransactionNotFound,
)
from gateways.http import FILTERED

log = logging.getLogger(__name__)

Response = Mapping[str, str]
Fields = list[tuple[str, str]]

APPROVED = 0
HELD_FOR_REVIEW = 126
VOIDED_INCREMENT = 1000
"""TRANSSTATE + 1000: the transaction was voided."""
NOT_FOUND = 19
"""Original transaction ID not found: an inquiry, void or credit naming nothing this vendor holds."""
VOID_TOO_LATE = 108
"""Void error: the transaction has settled (or is settling)."""
CREDIT_REFUSED = 105
"""Credit error: nothing (more) to credit on that transaction."""
CREDENTIALS_RESULTS = frozenset({1, 26})
"""User authentication failed; invalid vendor account."""
UNKNOWN_RESULTS = frozenset({103, 104, 150, 151, 1000})
"""Payflow or the processor could not tell the outcome in time (§4.2): never a plain failure."""
DECLINES: Mapping[int, StandardError] = {
    12: StandardError.DECLINED,
    13: StandardError.DECLINED,  # referral: the issuer wants a call, which an online sale cannot make
    23: StandardError.INVALID_CARD,
    24: StandardError.EXPIRED_CARD,
    50: StandardError.INSUFFICIENT_FUNDS,
    114: StandardError.CVV_MISMATCH,
    125: StandardError.DECLINED,  # declined by the merchant's fraud filters
    128: StandardError.DECLINED,  # declined by the merchant after a fraud review
}
"""Declines: the card was refused, nothing charged. Every other non-zero RESULT is an error."""
CONFIG_RESULTS = frozenset({2, 3, 5, 117})
"""Errors of the account's set-up, not of the request: tender, transaction type, merchant
information, a merchant rule (non-referenced credits are off by default)."""

PAYPAL_PARTNER = "PayPal"
HELD_CODE = "held_for_review"
"""The `statusCode` of a sale held for review: accepted (200) or voided (400, `errorCode` the same)."""
ACCEPT_HELD = "accept"
"""The value of the optional `heldForReview` credential that makes a sale held for review a success."""
MAX_FOLLOW_UPS = 3
CLIENT_TIMEOUT_MARGIN = 5
"""Seconds between `X-VPS-CLIENT-TIMEOUT` and our read timeout: Payflow must give up (104) first."""
SAFE_VALUE = re.compile(r"[A-Za-z0-9._-]*")
LENGTH_TAGGED = frozenset({"PWD"})
SECRET_NAMES = ("PARTNER", "VENDOR", "USER", "PWD", "ACCT", "CVV2", "EXPDATE")
"""What `scrub` removes: the four credentials and the card (an inquiry with VERBOSITY=HIGH answers
the expiry and the card's last digits too)."""
FIELD_LIMITS: Mapping[str, int] = {
    "BILLTOFIRSTNAME": 30, "BILLTOLASTNAME": 30, "BILLTOSTREET": 30, "BILLTOCITY": 20, "BILLTOSTATE": 10,
    "BILLTOZIP": 9, "BILLTOCOUNTRY": 2, "COMMENT1": 128, "COMMENT2": 128,
}
"""Free text is cut to the Payflow Pro developer's guide limits (the oldest, smallest ones)."""


class PayflowGateway(Gateway):
    type_id = 4
    name = "PayPal Payflow Pro"
    credential_fields = (
        CredentialField("partner", "Partner", 1),
        CredentialField("vendor", "Vendor", 2),
        CredentialField("user", "User", 3),
        CredentialField("password", "Password", 4),
        CredentialField("heldForReview", "Held For Review", 5, required=False),
    )
    currencies: ClassVar[frozenset[str]] = frozenset({"USD", "CAD", "EUR", "GBP"})
    test_url = "https://pilot-payflowpro.paypal.com"
    live_url = "https://payflowpro.paypal.com"
    url_setting = "PAYFLOW_URL"
    transaction_id_pattern = re.compile(r"[A-Za-z0-9]{12}")
    """PNREF: 12 case-sensitive letters and digits (§2.4)."""
    sandbox_cards = SandboxCards(approve="5105105105105100", decline="000000000000000")
    """The pilot approves any amount up to 1000.00 and answers RESULT 23 for that account (§2.9)."""

    def __init__(self, credentials: Mapping[str, str], context: GatewayContext) -> None:
        super().__init__(credentials, context)
        self.accept_held = credentials.get("heldForReview", "").strip().lower() == ACCEPT_HELD

    def charge(self, sale: SaleRequest) -> GatewayResult:
        fields = self.sale_request(sale)
        request_id = request_id_for(self.context.merchant_account_id, sale.order_id, "sale")
        response = self._transact(fields, request_id, "sale", recheck=lambda: self.find_payment(sale.order_id))
        if isinstance(response, GatewayResult):
            return response
        result = result_of(response)
        if result == HELD_FOR_REVIEW:
            return self._held(response, sale.amount)
        self._check(response, refused=Declined)
        return result_from(response, "sale", sale.amount)

    def sale_request(self, sale: SaleRequest) -> Fields:
        card = require_card(sale, self.name)  # Payflow Pro has no server-side card token (§5.5)
        fields = self._new_request("S")
        add_card(fields, card)
        add_money(fields, sale.amount, sale.currency, self.currencies)
        add_reference(fields, payment_ref(self.context.merchant_account_id, sale.order_id), sale.order_id)
        add_comment(fields, sale.comment)
        add_address(fields, sale.billing)
        return fields

    def payment_status(self, payment_id: str) -> PaymentStatus:
        response = self._inquire(("ORIGID", payment_id))
        if response is None:
            raise TransactionNotFound(f"Payflow has no transaction {payment_id} for this vendor", code=str(NOT_FOUND))
        return status_from(response, payment_id)

    def void(self, payment_id: str, amount: Decimal | None = None) -> GatewayResult:
        if amount is not None:
            # Payflow voids the whole transaction; the status never says voidable_in_part.
            raise RequestRejected("Payflow voids a transaction only in full", code="partial_void")
        fields = self._new_request("V")
        fields.append(("ORIGID", payment_id))
        request_id = request_id_for(self.context.merchant_account_id, payment_id, "void")
        response = self._transact(fields, request_id, "void")
        assert not isinstance(response, GatewayResult)
        self._check(response, refused=NotRefundable)
        # The void has a PNREF of its own, but what was voided is the payment: its id is the answer.
        return replace(result_from(response, "void", None), transaction_id=payment_id)

    def refund(
        self, payment_id: str, amount: Decimal | None, order_id: str, comment: str | None = None
    ) -> GatewayResult:
        fields = self._new_request("C")
        fields.append(("ORIGID", payment_id))
        if amount is not None:
            fields.append(("AMT", format_amount(amount)))  # without AMT, Payflow credits the whole rest
        add_reference(fields, refund_ref(self.context.merchant_account_id, order_id), order_id)
        add_comment(fields, comment)
        request_id = request_id_for(self.context.merchant_account_id, order_id, "refund")
        response = self._transact(fields, request_id, "refund", recheck=lambda: self.find_refund(order_id))
        if isinstance(response, GatewayResult):
            return response
        self._check(response, refused=NotRefundable)
        return result_from(response, "refund", amount if amount is not None else amount_of(response))

    def find_payment(self, order_id: str) -> GatewayResult | None:
        response = self._inquire(("CUSTREF", payment_ref(self.context.merchant_account_id, order_id)))
        if response is None:
            return None
        original = original_result_of(response)
        if transstate_of(response) >= VOIDED_INCREMENT or original not in (APPROVED, HELD_FOR_REVIEW):
            return None
        found = found_result(response, "sale")
        if original != HELD_FOR_REVIEW:
            return found
        if self.accept_held:
            return replace(found, code=HELD_CODE)
        # Ours to void: the sale would have voided it had its answer arrived.
        self.void(found.transaction_id)
        return None

    def find_refund(self, order_id: str) -> GatewayResult | None:
        response = self._inquire(("CUSTREF", refund_ref(self.context.merchant_account_id, order_id)))
        if response is None or transstate_of(response) >= VOIDED_INCREMENT:
            return None
        return found_result(response, "refund") if original_result_of(response) == APPROVED else None

    def verify_credentials(self) -> None:
        # An inquiry for a PNREF that cannot exist: read-only, and the answer tells whether Payflow
        # took the credentials (RESULT 1 or 26) or went on to look (19, not found).
        self._inquire(("ORIGID", "V00000000000"))

    def echoes(self, sale: SaleRequest | None = None) -> Echoes:
        # PayPal's own partner id, which most merchants have, is public (PayPal's guides print it)
        # and the first word of our name: removing it from texts would only mangle them. Any other
        # partner (a reseller's) is kept out of texts like every credential.
        echoes = super().echoes(sale)
        return Echoes(echoes.values - {PAYPAL_PARTNER}) if self.credentials["partner"] == PAYPAL_PARTNER else echoes

    @staticmethod
    def scrub(transcript: str) -> str:
        return redact_card_numbers(scrub_nvp(transcript, SECRET_NAMES), FILTERED)

    def _held(self, response: Response, asked: Decimal) -> GatewayResult:
        """A sale the fraud filters hold for review: authorized, but settled only once someone
        approves it. By default it is voided and answered as a decline (the learner is not enrolled
        on money that may never come); the merchant's `heldForReview: accept` takes it as paid."""
        held = result_from(response, "sale", asked)
        if self.accept_held:
            return replace(held, code=HELD_CODE)
        try:
            self.void(held.transaction_id)
        except GatewayError as error:
            raise OutcomeUnknown(
                f"Payflow held the sale for review and voiding it failed ({error.message}): the "
                "authorization may still stand",
                code="held_for_review_not_voided",
                transaction_id=held.transaction_id,
            ) from None
        raise Declined(
            f"Payflow's fraud filters held the sale for review (RESULT 126, {held.message}); it was "
            "voided and nothing was charged",
            code=HELD_CODE,
            http_status=200,
            standard=StandardError.HELD_FOR_REVIEW,
            transaction_id=held.transaction_id,
        )

    def _inquire(self, reference: tuple[str, str]) -> Response | None:
        """The inquiry's answer about the transaction `reference` names; None when Payflow holds
        none. Any other failure to look is unknown: never "nothing there"."""
        fields = self._new_request("I")
        fields += [reference, ("VERBOSITY", "HIGH")]
        response = self._post(fields, uuid.uuid4().hex, "inquiry")
        result = result_of(response)
        if result == NOT_FOUND:
            return None
        if result in CREDENTIALS_RESULTS:
            raise credentials_rejected(response)
        if result != APPROVED:
            raise OutcomeUnknown(
                f"Payflow could not look the transaction up: {message_from(response)}",
                code=str(result),
                http_status=200,
            )
        return response

    def _transact(
        self,
        fields: Fields,
        request_id: str,
        endpoint: str,
        recheck: Callable[[], GatewayResult | None] | None = None,
    ) -> Response | GatewayResult:
        """Send a money-moving request under its derived request id. Payflow keeps an id's first
        answer and replays it for good; when that answer is a timeout, Payflow recorded a failed
        transaction and PayPal's advice is to try again. So after a look-up (`recheck`) finds
        nothing, the request goes again under an id derived from that failed transaction's PNREF:
        deterministic, so every retry of ours takes the same path."""
        response = self._post(fields, request_id, endpoint)
        for _ in range(MAX_FOLLOW_UPS):
            if not (is_duplicate(response) and result_of(response) in UNKNOWN_RESULTS):
                break
            found = recheck() if recheck is not None else None
            if found is not None:
                return found
            request_id = follow_up_id(request_id, response.get("PNREF", ""))
            log.info("Payflow replayed a timeout for a %s; sending it again under a follow-up id", endpoint)
            response = self._post(fields, request_id, endpoint)
        return response

    def _check(self, response: Response, *, refused: type[GatewayError]) -> None:
        """Nothing when approved; otherwise the matching error is raised."""
        result = result_of(response)
        if result == APPROVED:
            return
        if result in CREDENTIALS_RESULTS:
            raise credentials_rejected(response)
        error, standard = error_for(result, refused)
        message = message_from(response)
        if error is OutcomeUnknown:
            message = f"Payflow could not tell the outcome: {message}"
        raise error(
            message, code=str(result), http_status=200, standard=standard,
            transaction_id=response.get("PNREF") or None,
        )

    def _new_request(self, trxtype: str) -> Fields:
        return [
            ("TRXTYPE", trxtype),
            ("TENDER", "C"),
            ("PARTNER", self.credentials["partner"]),
            ("VENDOR", self.credentials["vendor"]),
            ("USER", self.credentials["user"]),
            ("PWD", self.credentials["password"]),
        ]

    def _post(self, fields: Fields, request_id: str, endpoint: str) -> Response:
        headers = {
            "Content-Type": "text/namevalue",
            "Accept": "text/namevalue",
            "X-VPS-REQUEST-ID": request_id,
            "X-VPS-CLIENT-TIMEOUT": str(max(1, int(self.http.timeouts.read) - CLIENT_TIMEOUT_MARGIN)),
        }
        reply = self.http.send(
            "POST", self.context.base_url, auth=None, data=encode_nvp(fields), headers=headers, json_reply=False,
            gateway=self.name, endpoint=endpoint, url_setting=self.url_setting,
        )
        if reply.status >= 300:
            raise RequestRejected(f"Payflow refused the request (HTTP {reply.status})", code=str(reply.status),
                                  http_status=reply.status)
        return parse_nvp(reply.text)


def add_card(fields: Fields, card: Card) -> None:
    fields += [("ACCT", card.number), ("EXPDATE", f"{card.exp_month:02d}{card.exp_year % 100:02d}"),
               ("CVV2", card.cvv)]


def add_money(fields: Fields, amount: Decimal, currency: str, supported: frozenset[str]) -> None:
    if currency.upper() not in supported:
        raise RequestRejected(f"Payflow does not take {currency}", code="currency", standard=StandardError.CONFIG_ERROR)
    fields += [("AMT", format_amount(amount)), ("CURRENCY", currency.upper())]


def add_reference(fields: Fields, custref: str, order_id: str) -> None:
    """CUSTREF, derived from our order id, is what an inquiry finds the transaction by; the order
    id itself goes in COMMENT2, which PayPal Manager's reports show and search (`COMMENT1` is the
    LMS's comment), so operations can match a transaction to our record by eye."""
    fields += [("CUSTREF", custref), ("COMMENT2", free_text(order_id, FIELD_LIMITS["COMMENT2"]))]


def add_comment(fields: Fields, comment: str | None) -> None:
    if comment:
        fields.append(("COMMENT1", free_text(comment, FIELD_LIMITS["COMMENT1"])))


def add_address(fields: Fields, billing: BillingAddress) -> None:
    first, last = split_name(billing.name or "")
    text = {
        "BILLTOFIRSTNAME": first, "BILLTOLASTNAME": last, "BILLTOSTREET": billing.street,
        "BILLTOCITY": billing.city, "BILLTOSTATE": billing.state,
        "BILLTOZIP": re.sub(r"[\s-]", "", billing.postal_code or ""), "BILLTOCOUNTRY": billing.country,
    }
    fields += [(name, free_text(value, FIELD_LIMITS[name])) for name, value in text.items() if value]


def split_name(name: str) -> tuple[str, str]:
    """First and last name as ActiveMerchant splits them: the last word is the last name."""
    words = name.split()
    if len(words) < 2:
        return "", " ".join(words)
    return " ".join(words[:-1]), words[-1]


def free_text(value: str, limit: int) -> str:
    """ASCII only (a length tag counts characters Payflow must read as bytes), no control
    characters, cut to `limit`."""
    ascii_only = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return " ".join("".join(c if c.isprintable() else " " for c in ascii_only).split())[:limit].strip()


def format_amount(amount: Decimal) -> str:
    return format(whole_cents(amount), "f")


def short_ref(merchant_account_id: int, key: str, operation: str, length: int, lead: str = "R") -> str:
    """A reference derived from (merchant account, our key, operation): the same on every retry,
    apart across merchant accounts sharing a Payflow vendor and across operations (§4.1). A
    leading letter and base32 (A-Z, 2-7): never all digits, never a card number."""
    raw = f"{merchant_account_id}|{key}|{operation}".encode()
    body = base64.b32encode(hashlib.sha256(raw).digest()).decode().rstrip("=")
    return (lead + body)[:length]


def payment_ref(merchant_account_id: int, order_id: str) -> str:
    return short_ref(merchant_account_id, order_id, "sale", 12, lead="P")


def refund_ref(merchant_account_id: int, order_id: str) -> str:
    return short_ref(merchant_account_id, order_id, "refund", 12, lead="R")


def request_id_for(merchant_account_id: int, key: str, operation: str) -> str:
    return short_ref(merchant_account_id, key, operation, 32, lead="X")


def follow_up_id(request_id: str, failed_pnref: str) -> str:
    return short_ref(0, f"{request_id}|{failed_pnref}", "follow-up", 32, lead="X")


def encode_nvp(fields: Fields) -> str:
    """`NAME=value&...`, values raw (Payflow does not URL-decode); a value that is not a plain token,
    and the password always, goes length-tagged so that `&` or `=` inside it cannot end it."""
    parts = []
    for name, value in fields:
        if name in LENGTH_TAGGED or not SAFE_VALUE.fullmatch(value):
            parts.append(f"{name}[{len(value.encode())}]={value}")
        else:
            parts.append(f"{name}={value}")
    return "&".join(parts)


_NAME = re.compile(r"([A-Za-z0-9_]+)(?:\[(\d+)\])?=")


def parse_nvp(text: str) -> dict[str, str]:
    """An NVP answer as a dict: split on `&`, then the first `=`; a length-tagged value is read
    by its length, `&` and `=` included. Text that is not NVP gives what could be read (often
    nothing), which `result_of` then finds lacking."""
    values: dict[str, str] = {}
    position, text = 0, text.strip()
    while position < len(text):
        match = _NAME.match(text, position)
        if match is None:
            break
        name, length = match.group(1).upper(), match.group(2)
        start = match.end()
        end = start + int(length) if length is not None else _value_end(text, start)
        if end > len(text) or text[end : end + 1] not in ("", "&"):
            break  # a length tag that does not end at a separator: the rest cannot be trusted
        values[name] = text[start:end]
        position = end + 1
    return values


def _value_end(text: str, start: int) -> int:
    end = text.find("&", start)
    return len(text) if end < 0 else end


def result_of(response: Response) -> int:
    """RESULT as a number. An answer without one is not an answer: the outcome is unknown."""
    try:
        return int(response["RESULT"])
    except (KeyError, ValueError):
        raise OutcomeUnknown(
            "Payflow answered without a readable RESULT", code="unreadable_response", http_status=200
        ) from None


def original_result_of(response: Response) -> int:
    """An inquiry's ORIGRESULT: what the transaction it found came to."""
    try:
        return int(response["ORIGRESULT"])
    except (KeyError, ValueError):
        raise OutcomeUnknown(
            "Payflow answered an inquiry without a readable ORIGRESULT", code="unreadable_response", http_status=200
        ) from None


def transstate_of(response: Response) -> int:
    try:
        return int(response.get("TRANSSTATE", ""))
    except ValueError:
        raise OutcomeUnknown(
            "Payflow answered an inquiry without a readable TRANSSTATE", code="unreadable_response", http_status=200
        ) from None


def is_duplicate(response: Response) -> bool:
    return response.get("DUPLICATE") == "1"


def message_from(response: Response) -> str:
    return response.get("RESPMSG") or "no response message"


def amount_of(response: Response) -> Decimal | None:
    value = response.get("AMT")
    return None if not value else answered_amount(value, "Payflow")


def pnref_from(response: Response, field: str = "PNREF") -> str:
    """The answer's PNREF; without a usable one the transaction cannot be referenced, so an
    approval lacking it leaves the outcome unknown."""
    pnref = response.get(field, "")
    if PayflowGateway.is_transaction_id(pnref):
        return pnref
    raise OutcomeUnknown(f"Payflow answered without a usable {field}", code="unreadable_response", http_status=200)


def result_from(response: Response, action: Action, amount: Decimal | None) -> GatewayResult:
    return GatewayResult(
        transaction_id=pnref_from(response),
        action=action,
        code=str(result_of(response)),
        message=message_from(response),
        http_status=200,
        amount=amount,
    )


def found_result(response: Response, action: Action) -> GatewayResult:
    """The transaction an inquiry found, as the answer its own request would have had."""
    return GatewayResult(
        transaction_id=pnref_from(response, "ORIGPNREF"),
        action=action,
        code=str(original_result_of(response)),
        message=message_from(response),
        http_status=200,
        amount=amount_of(response),
    )


def error_for(result: int, refused: type[GatewayError]) -> tuple[type[GatewayError], StandardError | None]:
    """The error a non-zero RESULT means for a request whose refusal is `refused` (Declined for a
    sale, NotRefundable for a void or credit), with its standard code when the RESULT names one."""
    if result in UNKNOWN_RESULTS:
        return OutcomeUnknown, None
    if result == NOT_FOUND:
        return TransactionNotFound, None
    if result in DECLINES:
        return refused, DECLINES[result] if refused is Declined else None
    if result in (VOID_TOO_LATE, CREDIT_REFUSED):
        # A void or credit refused for the payment's state (settled, credited in full): nothing
        # was done, and the state may change.
        return NotRefundable, None
    return RequestRejected, StandardError.CONFIG_ERROR if result in CONFIG_RESULTS else None


def credentials_rejected(response: Response) -> CredentialsRejected:
    # Payflow refuses credentials inside an HTTP 200 (RESULT 1 or 26); said as every gateway says it.
    return CredentialsRejected(
        f"{PayflowGateway.name} did not accept the merchant's credentials",
        code=str(result_of(response)),
        http_status=200,
    )


@dataclass(frozen=True)
class _State:
    word: str
    settled: bool = False
    voidable: bool = False


TRANSSTATES: Mapping[int, _State] = {
    0: _State("succeeded"),
    1: _State("error"),
    3: _State("authorized", voidable=True),
    6: _State("settlement pending", voidable=True),
    7: _State("settlement in progress"),
    8: _State("settled", settled=True),
    9: _State("captured, settlement pending", voidable=True),
    10: _State("capture failed"),
    11: _State("failed to settle"),
    12: _State("unsettled: incorrect account information"),
    14: _State("batch failed settlement"),
    15: _State("settlement incomplete: charge back"),
    16: _State("merchant ACH settlement failed"),
}


def status_from(response: Response, payment_id: str) -> PaymentStatus:
    """An inquiry's answer about one PNREF as the kit's PaymentStatus."""
    transstate = transstate_of(response)
    voided = transstate >= VOIDED_INCREMENT
    unacknowledged, base = divmod(transstate % VOIDED_INCREMENT, 100)
    state = TRANSSTATES.get(base, _State(f"state {base}"))
    approved = original_result_of(response) in (APPROVED, HELD_FOR_REVIEW) and not voided
    word = "voided" if voided else state.word
    if original_result_of(response) == HELD_FOR_REVIEW and not voided:
        word = "held for review"
    # +100: Payflow never got its acknowledgment, and it will not settle; PayPal voids those by
    # hand. +200: in limbo between Payflow and the processor: neither void nor credit (§ verbosity).
    voidable = approved and (state.voidable if unacknowledged == 0 else unacknowledged == 1)
    if unacknowledged:
        word = f"{word} (not acknowledged)"
    return PaymentStatus(
        transaction_id=response.get("ORIGPNREF") or payment_id,
        is_payment=not is_credit(response),
        amount=amount_of(response),
        currency=response.get("CURRENCY") or None,
        settled=state.settled and not voided,
        voided=voided,
        voidable=voidable,
        refundable=approved and state.settled and unacknowledged == 0,
        state=word,
    )


def is_credit(response: Response) -> bool:
    """A credit, ours (CUSTREF from `refund_ref`) or anybody's when Payflow names the type."""
    return response.get("TRXTYPE") == "C" or refund_ref_shape(response.get("CUSTREF", ""))


def refund_ref_shape(custref: str) -> bool:
    return len(custref) == 12 and custref.startswith("R") and re.fullmatch(r"[A-Z2-7]{12}", custref) is not None


def scrub_nvp(transcript: str, names: tuple[str, ...]) -> str:
    """`transcript` with the values of `names` replaced by [FILTERED], tagged or not: a tagged value
    is replaced by its length, `&` and `=` inside it included."""
    pattern = re.compile(rf"(?:^|(?<=[&\s?]))({'|'.join(names)})(?:\[(\d+)\])?=", re.MULTILINE)
    out, position = [], 0
    for match in pattern.finditer(transcript):
        if match.start() < position:
            continue
        start = match.end()
        end = start + int(match.group(2)) if match.group(2) else _plain_end(transcript, start)
        out += [transcript[position:start], FILTERED]
        position = min(end, len(transcript))
    out.append(transcript[position:])
    return "".join(out)


def _plain_end(text: str, start: int) -> int:
    match = re.compile(r"[&\s]").search(text, start)
    return len(text) if match is None else match.start()
