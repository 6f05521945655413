"""CardConnect: the CardPointe Gateway REST API.

Wire facts (see the gateway reference, Part 1): HTTP Basic `username:password`, JSON bodies with
`merchid` in every body and every GET path, PUT or POST for writes. A sale is `auth` with
`capture: "Y"`. Answers are HTTP 200 with `respstat` A (approved), C (refused) or B (the gateway
could not tell: "retry", which for a sale means the outcome is unknown). Amounts are strings, and a
string without a decimal point means minor units, so we always send exactly two places.
Refunds must carry the original payment's merchid; CardPointe answers PPS 29 otherwise.
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
    Environment,
    Gateway,
    GatewayContext,
    GatewayResult,
    PaymentStatus,
    SaleRequest,
    SandboxCards,
)
from gateways.cards import answered_amount, luhn_valid, whole_cents
from gateways.errors import (
    Declined,
    GatewayError,
    NotRefundable,
    OutcomeUnknown,
    RequestRejected,
    StandardError,
    TransactionNotFound,
)
from gateways.http import FILTERED, gateway_url, scrub_transcript

log = logging.getLogger(__name__)

Body = dict[str, Any]
ORDER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:~-]{0,49}")


class CardConnectGateway(Gateway):
    type_id = 2
    name = "CardConnect"
    test_url = "https://fts-uat.cardconnect.com/cardconnect/rest"
    live_url = "https://fts.cardconnect.com/cardconnect/rest"
    """Production is really `https://<site>.cardconnect.com/...`, the site CardPointe gives each
    merchant (gateway reference §1.1): set CARDCONNECT_URL to it."""
    url_setting = "CARDCONNECT_URL"
    legacy_url_settings = ("CARDCONNECT_HOSTNAME",)
    sandbox_cards = SandboxCards(approve="4788250000121443", decline="4387751111111053")
    """UAT test cards (gateway reference §1.11)."""
    credential_fields = (
        CredentialField("username", "Login", 1, aliases=("login",)),
        CredentialField("password", "Password", 2),
        CredentialField("merchantId", "MerchantId", 3),
    )

    transaction_id_pattern = re.compile(r"[0-9]{1,14}")
    """`retref`: up to 14 digits, typically 12 (gateway reference §1.7)."""
    currencies: ClassVar[frozenset[str]] = frozenset({"USD", "CAD"})
    standard_errors: ClassVar[Mapping[tuple[str, str], StandardError]] = {
        # Keyed by (respproc, respcode): a code means something only with the processor that sent
        # it (FNOR 51 is a generic decline, not "insufficient funds"). Rows from the references:
        # PPS codes (CardPointe's response-codes page), FNOR codes (the UAT test cards and the
        # guides). Anything else is a plain decline, never a guessed reason.
        ("PPS", "11"): StandardError.INVALID_CARD,
        ("PPS", "14"): StandardError.CVV_MISMATCH,  # non-numeric CVV
        ("PPS", "16"): StandardError.EXPIRED_CARD,
        ("PPS", "32"): StandardError.CONFIG_ERROR,  # wrong currency for the merchant
        ("PPS", "37"): StandardError.CVV_MISMATCH,
        ("FNOR", "NU"): StandardError.INSUFFICIENT_FUNDS,
        ("FNOR", "54"): StandardError.EXPIRED_CARD,  # wrong expiration
        ("FNOR", "C2"): StandardError.CVV_MISMATCH,
    }
    field_limits: ClassVar[Mapping[str, int]] = {"name": 30, "address": 30, "city": 30, "region": 20}
    """Free-text address fields (OpenAPI `authRequest`) are cut to these lengths; the postal code and
    country are codes, which are refused instead (a cut code is another code)."""
    TXN_NOT_FOUND = "29"
    SECRET_FIELDS = ("account", "cvv2", "expiry", "token", "username", "password", "merchid")
    token_kinds = frozenset({"cardsecure"})
    """A CardSecure token from the hosted iFrame tokenizer, sent in `account` with the expiry."""
    """What `scrub` removes. `merchid` is the secret's `merchantId`, a credential field: with the
    user and password it is what acts for the merchant, so transcripts treat it like them (as the
    accounts CLI does, and as turning urllib3's request logging off does for GET paths)."""
    MERCHID_IN_PATH = re.compile(r"(/(?:inquire|inquireByOrderid)/[^/\s?]+/|/inquireMerchant/)[^/\s?]+")

    def __init__(self, credentials: Mapping[str, str], context: GatewayContext) -> None:
        super().__init__(credentials, context)
        self.merchid = credentials["merchantId"]

    @classmethod
    def base_url(cls, environment: Environment, overrides: Mapping[str, str]) -> str:
        # V1 configured a bare host name, https and the REST path implied; CARDCONNECT_URL wins.
        host = (overrides.get("CARDCONNECT_HOSTNAME") or "").strip()
        if host and not (overrides.get(cls.url_setting) or "").strip():
            return f"https://{host}/cardconnect/rest"
        return super().base_url(environment, overrides)

    def charge(self, sale: SaleRequest) -> GatewayResult:
        post = self._new_request()
        add_order(post, sale.order_id)
        add_money(post, sale.amount, sale.currency, self.currencies)
        add_payment(post, sale)
        add_address(post, sale.billing)
        post["ecomind"] = "E"
        post["capture"] = "Y"
        add_comment(post, sale.comment)
        response = self._approved(self._commit("PUT", "auth", post), refused=Declined)
        return result_from(response, "sale", amount_or(response, sale.amount))

    def payment_status(self, payment_id: str) -> PaymentStatus:
        return status_from(self._inquire(payment_id))

    def void(self, payment_id: str, amount: Decimal | None = None) -> GatewayResult:
        post = self._new_request()
        add_reference(post, payment_id)
        if amount is not None:
            post["amount"] = format_amount(amount)
        response = self._approved(self._commit("PUT", "void", post), refused=NotRefundable)
        # A void's answer says "amount": "0.00" (gateway reference §1.12), not what was voided.
        return result_from(response, "void", amount)

    def refund(
        self, payment_id: str, amount: Decimal | None, order_id: str, comment: str | None = None
    ) -> GatewayResult:
        post = self._new_request()
        add_reference(post, payment_id)
        if amount is not None:
            post["amount"] = format_amount(amount)
        # The refund's own order id, so that looking up the sale's order id never finds the refund.
        add_order(post, order_id)
        response = self._approved(self._commit("PUT", "refund", post), refused=NotRefundable)
        return result_from(response, "refund", amount_or(response, amount))

    def find_payment(self, order_id: str) -> GatewayResult | None:
        live = [r for r in self._by_order_id(order_id) if is_live_sale(r)]
        if len(live) > 1:
            log.warning("CardConnect holds %d live payments for order %s; using the first", len(live), order_id)
        return result_from(live[0], "sale", amount_or(live[0], None)) if live else None

    def find_refund(self, order_id: str) -> GatewayResult | None:
        # A refund carries its own order id (see refund), so this finds only that refund.
        done = [r for r in self._by_order_id(order_id) if success_from(r)]
        if not done:
            return None
        amount = amount_or(done[0], None)
        return result_from(done[0], "refund", None if amount is None else abs(amount))

    def verify_credentials(self) -> None:
        # inquireMerchant reads the merchant's configuration: no card, no money.
        if not isinstance(self._commit("GET", ("inquireMerchant", self.merchid)), dict):
            raise RequestRejected("CardConnect answered inquireMerchant with an unexpected body", code="unreadable")

    @staticmethod
    def scrub(transcript: str) -> str:
        text = CardConnectGateway.MERCHID_IN_PATH.sub(rf"\g<1>{FILTERED}", transcript)
        return scrub_transcript(text, json_fields=CardConnectGateway.SECRET_FIELDS)

    def _by_order_id(self, order_id: str) -> list[Body]:
        check_order_id(order_id)
        response = self._commit("GET", ("inquireByOrderid", order_id, self.merchid, "1"))
        # One record, or a list when several transactions share the order id.
        records = response if isinstance(response, list) else [response]
        if not records or not all(isinstance(r, dict) and r.get("respstat") for r in records):
            # Not "nothing found": a charge may hide behind an answer we cannot read.
            raise OutcomeUnknown(
                "CardConnect answered inquireByOrderid with an unreadable body", code="unreadable_response",
                http_status=200,
            )
        return records

    def _inquire(self, retref: str) -> Body:
        response = self._commit("GET", ("inquire", retref, self.merchid))
        if not isinstance(response, dict):
            raise OutcomeUnknown("CardConnect answered inquire with an unexpected body", code="unreadable_response")
        if is_not_found(response):
            raise TransactionNotFound(
                f"CardConnect has no payment {retref} for this merchant", code=self.TXN_NOT_FOUND, http_status=200
            )
        return response

    def _new_request(self) -> Body:
        return {"merchid": self.merchid}

    def _commit(self, method: str, path: str | tuple[str, ...], body: Body | None = None) -> Any:
        """`path`: an endpoint, or an endpoint and its path arguments (each encoded whole)."""
        segments = (path,) if isinstance(path, str) else path
        url = gateway_url(self.context.base_url, *segments)
        # CardConnect answers an unknown transaction with HTTP 200 and PPS 29, so a 404 is a path it
        # does not serve (gateway reference §1.13): the pool's default, our base URL is wrong.
        reply = self.http.send(
            method, url, auth=(self.credentials["username"], self.credentials["password"]), json=body,
            gateway=self.name, endpoint=segments[0], url_setting=self.url_setting,
        )
        if reply.status >= 400:
            raise RequestRejected(
                error_message_from(reply.json, reply.status), code=str(reply.status), http_status=reply.status
            )
        return reply.json

    def _approved(self, response: Any, *, refused: type[GatewayError]) -> Body:
        """`response` if approved (respstat A); otherwise the matching error is raised."""
        if not isinstance(response, dict):
            raise OutcomeUnknown(
                "CardConnect answered with an unexpected body", code="unreadable_response", http_status=200
            )
        status = response.get("respstat")
        if status == "A":
            return response
        details: dict[str, Any] = {
            "code": code_from(response),
            "http_status": 200,
            "transaction_id": response.get("retref"),
        }
        if status == "C" and is_not_found(response):
            raise TransactionNotFound(message_from(response), **details)
        if status == "C":
            standard = standard_error_from(response) if refused is Declined else None
            raise refused(message_from(response), standard=standard, **details)
        # B ("retry"): the gateway could not reach the processor in time; the processor may still act.
        raise OutcomeUnknown(f"CardConnect could not tell the outcome: {message_from(response)}", **details)


def add_money(post: Body, amount: Decimal, currency: str, supported: frozenset[str]) -> None:
    if currency.upper() not in supported:
        raise RequestRejected(
            f"CardConnect does not take {currency}", code="currency", standard=StandardError.CONFIG_ERROR
        )
    post["amount"] = format_amount(amount)
    post["currency"] = currency.upper()


def add_payment(post: Body, sale: SaleRequest) -> None:
    """The card, or a CardSecure token where the card number goes (`account`) with the card's expiry
    beside it. A token is not a card number: it is sent as the monolith gave it, unchecked by Luhn."""
    if sale.card is not None:
        add_card(post, sale.card)
        return
    token = sale.token
    if token is None or token.kind != "cardsecure" or token.exp_month is None or token.exp_year is None:
        raise RequestRejected(
            "CardConnect takes a card or a CardSecure token with its expiry", code="token_not_accepted"
        )
    post["account"] = token.value
    post["expiry"] = expiry(token.exp_month, token.exp_year)


def add_card(post: Body, card: Card) -> None:
    post["account"] = card.number
    post["expiry"] = expiry(card.exp_month, card.exp_year)
    post["cvv2"] = card.cvv


def expiry(month: int, year: int) -> str:
    return f"{month:02d}{year % 100:02d}"


def add_address(post: Body, billing: BillingAddress) -> None:
    limits = CardConnectGateway.field_limits
    text = {"name": billing.name, "address": billing.street, "city": billing.city, "region": billing.state}
    post.update({key: value[: limits[key]].strip() for key, value in text.items() if value})
    if billing.country:
        if not (len(billing.country) == 2 and billing.country.isascii() and billing.country.isalpha()):
            raise RequestRejected(
                "CardConnect takes a 2-letter country code (ISO 3166-1 alpha-2, e.g. US) in country",
                code="country",
            )
        post["country"] = billing.country.upper()
    if billing.postal_code:
        # A US ZIP+4 goes without its dash ("5 or 9 digits"); CardPointe takes at most 9 characters.
        postal = re.sub(r"[\s-]", "", billing.postal_code).upper()
        if len(postal) > 9:
            raise RequestRejected("CardConnect takes a postal code of at most 9 characters in zip", code="postal")
        post["postal"] = postal


def add_order(post: Body, order_id: str) -> None:
    check_order_id(order_id)
    post["orderid"] = order_id


def add_comment(post: Body, comment: str | None) -> None:
    if comment:
        post["userfields"] = [{"comment": comment[:255]}]


def add_reference(post: Body, retref: str) -> None:
    post["retref"] = retref


def format_amount(amount: Decimal) -> str:
    """Dollars with exactly two places: a string without a point would be read as cents."""
    return format(whole_cents(amount), "f")


def check_order_id(order_id: str) -> None:
    if not ORDER_ID.fullmatch(order_id):
        raise RequestRejected("order id must be 1-50 letters, digits or ._:~-", code="orderid")
    if order_id.isdigit() and luhn_valid(order_id):
        # CardPointe masks a Luhn-valid orderid like a card number; it could never be looked up.
        raise RequestRejected("order id must not pass the Luhn check", code="orderid")


def status_from(record: Mapping[str, Any]) -> PaymentStatus:
    settlement = str(record.get("setlstat") or "")
    voidable = record.get("voidable") == "Y"
    return PaymentStatus(
        transaction_id=retref_from(record),
        # A refund has a retref of its own and is voidable until it settles: not a payment.
        is_payment=not is_credit(record),
        amount=amount_or(record, None),
        currency=str(record.get("currency") or "") or None,
        settled=settlement == "Accepted",
        voided=settlement == "Voided",
        voidable=voidable,
        refundable=record.get("refundable") == "Y",
        # An uncaptured authorization takes a partial void; once queued for capture only a whole one.
        voidable_in_part=voidable and settlement == "Authorized",
        state=settlement,
    )


def is_credit(record: Mapping[str, Any]) -> bool:
    # Inquiries show money going back to the card (a refund, a forced credit) as a negative amount.
    amount = amount_or(record, None)
    return amount is not None and amount < 0


def success_from(response: Mapping[str, Any]) -> bool:
    return response.get("respstat") == "A"


def message_from(response: Mapping[str, Any]) -> str:
    return str(response.get("resptext") or "no response text")


def code_from(response: Mapping[str, Any]) -> str:
    return str(response.get("respcode") or "")


def standard_error_from(response: Mapping[str, Any]) -> StandardError:
    key = (str(response.get("respproc") or "").upper(), code_from(response).upper())
    return CardConnectGateway.standard_errors.get(key, StandardError.DECLINED)


def is_not_found(response: Mapping[str, Any]) -> bool:
    return response.get("respstat") == "C" and code_from(response) == CardConnectGateway.TXN_NOT_FOUND


def is_live_sale(record: Mapping[str, Any]) -> bool:
    return (
        success_from(record)
        and not is_credit(record)
        and record.get("setlstat") not in ("Voided", "Declined", "Rejected")
    )


def amount_or(response: Mapping[str, Any], default: Decimal | None) -> Decimal | None:
    """The answer's amount; `default` when it has none. An unreadable one makes the outcome unknown."""
    if response.get("amount") in (None, ""):
        return default
    return answered_amount(response["amount"], "CardConnect")


def retref_from(response: Mapping[str, Any]) -> str:
    """The answer's retref; without a usable one the transaction cannot be referenced, so an
    approved answer lacking it leaves the outcome unknown."""
    retref = response.get("retref")
    if isinstance(retref, str) and CardConnectGateway.is_transaction_id(retref):
        return retref
    raise OutcomeUnknown("CardConnect answered without a usable retref", code="unreadable_response", http_status=200)


def result_from(response: Mapping[str, Any], action: Action, amount: Decimal | None) -> GatewayResult:
    return GatewayResult(
        transaction_id=retref_from(response),
        action=action,
        code=code_from(response),
        message=message_from(response),
        http_status=200,
        amount=amount,
        last_four=last_four_from(response),
    )


def last_four_from(response: Mapping[str, Any]) -> str | None:
    """The card's last four digits: an inquiry's `lastfour`, or the end of an all-digit CardSecure
    token (`token`, and `account` unless it is masked), which ends with the card's last four."""
    for key in ("lastfour", "token", "account"):
        value = str(response.get(key) or "")
        if len(value) >= 4 and value.isascii() and value.isdigit():
            return value[-4:]
    return None


def error_message_from(body: Any, status: int) -> str:
    if isinstance(body, dict):
        text = body.get("message") or body.get("error")
        if text:
            return f"CardConnect refused the request (HTTP {status}): {text}"
    return f"CardConnect refused the request (HTTP {status})"
