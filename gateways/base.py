"""The gateway interface: what every gateway file implements, returns and raises.

Gateways know nothing of Azure, of the monolith's HTTP contract or of logging policy. They receive
plain request objects with `Decimal` money, speak their own wire, and either return a
`GatewayResult` or raise one of the `GatewayError` subclasses below. The flow in `shared/` decides
what each of those means for the caller.
"""

from __future__ import annotations

import enum
import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from gateways.http import HttpPool
    from shared.settings import Settings


CENT = Decimal("0.01")


def luhn_valid(digits: str) -> bool:
    """The card-number checksum; also how a digit run in text is recognised as a card number."""
    if not (digits.isascii() and digits.isdigit()) or len(digits) < 2:
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


_DIGITS = re.compile(r"\d+")  # any script's decimal digits: a card number in Arabic-Indic digits is one too
CARD_DIGITS = range(13, 20)


def redact_card_numbers(text: str, replacement: str = "[card number removed]") -> str:
    """`text` with every card number replaced: 13 to 19 digits that pass Luhn, written in one run or
    in groups joined by anything that is neither a letter nor a digit (spaces, dashes, dots,
    slashes, underscores, commas, line breaks, in any number), as people type them.

    Within a longer chain of numbers ("room 12, 4242 4242 4242 4242") each span of whole groups is
    tried, so a card next to other numbers is still found. A group longer than 19 digits is not a
    card. Digits that fail Luhn are left: every issued card number passes it, and removing every
    13-19 digit span would also remove the dates, phone numbers and references in free text that
    operations read (a mistyped card number is refused by the contract and the gateway anyway).
    """
    groups = list(_DIGITS.finditer(text))
    spans: list[tuple[int, int]] = []
    start = 0
    for index in range(1, len(groups) + 1):
        if index == len(groups) or not _separator(text[groups[index - 1].end() : groups[index].start()]):
            spans.extend(_card_spans(groups[start:index]))
            start = index
    for begin, end in reversed(_merged(spans)):
        text = text[:begin] + replacement + text[end:]
    return text


def _separator(between: str) -> bool:
    return not any(char.isalnum() for char in between)


def _card_spans(chain: list[re.Match[str]]) -> list[tuple[int, int]]:
    found = []
    for first in range(len(chain)):
        digits = ""
        for last in range(first, len(chain)):
            digits += "".join(str(int(char)) for char in chain[last].group())
            if len(digits) > CARD_DIGITS.stop - 1:
                break
            if len(digits) in CARD_DIGITS and luhn_valid(digits):
                found.append((chain[first].start(), chain[last].end()))
    return found


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for begin, end in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((begin, end))
    return merged


def whole_cents(amount: Decimal) -> Decimal:
    """`amount` with exactly two places; anything but a positive whole number of cents is refused
    before it can reach a gateway's wire."""
    try:
        exact = amount.is_finite() and amount > 0 and amount == amount.quantize(CENT)
    except InvalidOperation:
        exact = False
    if not exact:
        raise RequestRejected(f"amount {amount} is not a positive amount in cents", code="amount")
    return amount.quantize(CENT)


def answered_amount(value: object, gateway: str) -> Decimal:
    """An amount from a gateway's answer, to the cent. One that is not a finite decimal (NaN, a
    word, a list) means the answer is malformed: the gateway may have acted, so the outcome is
    unknown, never a plain failure."""
    try:
        amount = Decimal(str(value))
        if amount.is_finite():
            return amount.quantize(CENT)
    except (InvalidOperation, ValueError):
        pass
    raise OutcomeUnknown(f"{gateway} answered with an unreadable amount", code="unreadable_response", http_status=200)


class StandardError(enum.StrEnum):
    """The small closed set every gateway's own codes map into (the raw code travels alongside)."""

    DECLINED = "declined"
    INVALID_CARD = "invalid_card"
    EXPIRED_CARD = "expired_card"
    CVV_MISMATCH = "cvv_mismatch"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    PROCESSING_ERROR = "processing_error"
    CONFIG_ERROR = "config_error"
    PARTIAL_APPROVAL = "partial_approval"
    """The gateway approved less than asked (a prepaid card); the service voided it."""


@dataclass(frozen=True)
class CredentialField:
    """One credential a gateway type needs: a row's FieldN/DisplayOrderN in the monolith's table."""

    name: str
    label: str
    display_order: int
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, repr=False)
class Card:
    number: str
    exp_month: int
    exp_year: int
    cvv: str

    @property
    def last_four(self) -> str:
        return self.number[-4:]

    def __repr__(self) -> str:
        # PCI: a Card may end up in a traceback or a debugger; only the last four digits may show.
        return f"Card(last_four={self.last_four!r})"


@dataclass(frozen=True)
class BillingAddress:
    name: str | None = None
    street: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class SaleRequest:
    """A sale (authorize and capture in one step)."""

    order_id: str
    """Our reference, unique per payment and stable across retries; gateways send it so that an
    unknown outcome can be looked up later. Never Luhn-valid (CardConnect masks such order ids)."""
    amount: Decimal
    currency: str
    """ISO 4217 alphabetic code, e.g. USD."""
    card: Card
    billing: BillingAddress = field(default_factory=BillingAddress)
    comment: str | None = None


@dataclass(frozen=True)
class RefundRequest:
    """Give money back on an earlier payment: void it while it can be voided, refund otherwise."""

    payment_id: str
    amount: Decimal | None
    """None: the whole original amount."""
    order_id: str
    """Our reference for this refund, stable across retries."""
    currency: str | None = None
    comment: str | None = None


Action = Literal["sale", "void", "refund"]


@dataclass(frozen=True)
class GatewayResult:
    """A gateway's approved answer."""

    transaction_id: str
    """The gateway's id of what was done: the payment for a sale, the refund or void otherwise."""
    action: Action
    code: str
    message: str
    http_status: int | None
    amount: Decimal | None = None


class GatewayError(Exception):
    """A gateway did not do what was asked. Messages carry gateway codes and texts, never card data."""

    standard: StandardError = StandardError.PROCESSING_ERROR

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        http_status: int | None = None,
        standard: StandardError | None = None,
        transaction_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.transaction_id = transaction_id
        if standard is not None:
            self.standard = standard


class Declined(GatewayError):
    """The gateway or the issuer refused the card; nothing was charged."""

    standard = StandardError.DECLINED


class RequestRejected(GatewayError):
    """The gateway refused the request as malformed or not allowed; nothing was done."""


class CredentialsRejected(GatewayError):
    """The gateway did not accept the merchant's credentials (HTTP 401/403); nothing was done."""

    standard = StandardError.CONFIG_ERROR


class GatewayMisconfigured(GatewayError):
    """The gateway (or a proxy on the way) says the endpoint we called does not exist or cannot be
    called so: a wrong base URL, method or content type, a proxy wanting credentials. Our
    configuration, not the caller's request; nothing was done, and a retry once it is fixed must
    reach the gateway rather than replay this answer."""

    standard = StandardError.CONFIG_ERROR


class TransactionNotFound(GatewayError):
    """The referenced transaction does not exist for this merchant."""


class NotRefundable(GatewayError):
    """The original payment's state forbids this refund now (already voided, partial before
    settlement, ...). Nothing was done; the caller may try again later or differently."""


class AlreadyVoided(NotRefundable):
    """The payment has been voided already: nothing is left to refund."""


class GatewayUnreachable(GatewayError):
    """The request never reached the gateway (connection refused, DNS): safe to retry."""


class OutcomeUnknown(GatewayError):
    """The request may have reached the gateway and been carried out, but no usable answer came
    back (read timeout, dropped connection, a 5xx, CardConnect respstat B). Never a plain failure:
    the payment must be looked up before anything is retried."""


@dataclass(frozen=True)
class GatewayContext:
    """What a gateway instance gets besides its merchant's credentials."""

    merchant_account_id: int
    base_url: str
    http: HttpPool | None = None


ECHO_REMOVED = "[removed]"


@dataclass(frozen=True)
class Echoes:
    """The values one request sent a gateway that must never come back out of it: the card number,
    the CVV, the expiry as written on the wire, every credential. A gateway (or a proxy) that
    echoes them in a message or a code would put them into our response, the stored record and the
    log; every gateway text that leaves a gateway operation goes through here first."""

    values: frozenset[str]

    @functools.cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        if not self.values:
            return None
        # Whole values only (a CVV of 123 inside a retref is not an echo); longest first, so a value
        # containing another is removed whole.
        alternatives = "|".join(re.escape(value) for value in sorted(self.values, key=len, reverse=True))
        return re.compile(rf"(?<![0-9A-Za-z])(?:{alternatives})(?![0-9A-Za-z])")

    def scrub(self, text: str) -> str:
        text = redact_card_numbers(text)
        return self._pattern.sub(ECHO_REMOVED, text) if self._pattern is not None else text

    def result(self, result: GatewayResult) -> GatewayResult:
        return replace(result, code=self.scrub(result.code), message=self.scrub(result.message))

    def error(self, error: GatewayError) -> GatewayError:
        error.message = self.scrub(error.message)
        error.code = self.scrub(error.code)
        if error.transaction_id is not None:
            error.transaction_id = self.scrub(error.transaction_id)
        error.args = (error.message,)
        return error


def expiry_forms(card: Card) -> set[str]:
    """The ways gateways write an expiry (CardConnect MMYY, Payload MM/YY, and the other usual ones)."""
    month, year = f"{card.exp_month:02d}", card.exp_year
    short = f"{year % 100:02d}"
    return {month + short, f"{month}/{short}", f"{month}/{year}", f"{month}-{short}", f"{year}-{month}",
            f"{month}{year}", f"{year}{month}"}


def _scrubbing_echoes(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    def scrubbed(self: Gateway, *args: Any, **kwargs: Any) -> Any:
        sale = next((a for a in (*args, *kwargs.values()) if isinstance(a, SaleRequest)), None)
        echoes = self.echoes(sale.card if sale is not None else None)
        try:
            outcome = operation(self, *args, **kwargs)
        except GatewayError as error:
            echoes.error(error)
            raise
        return echoes.result(outcome) if isinstance(outcome, GatewayResult) else outcome

    return scrubbed


class Gateway(ABC):
    """One gateway type. An instance serves exactly one merchant account's credentials."""

    OPERATIONS: ClassVar[tuple[str, ...]] = (
        "process_payment",
        "process_refund",
        "void_payment",
        "find_payment",
        "find_refund",
        "cancel_payment",
        "verify_credentials",
    )
    """The operations callers use. Each gateway's own definitions of them are wrapped (below) so that
    their results and errors never carry back what the request sent: one place for every gateway
    and every caller (the flow, the reconciler, the accounts CLI)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in Gateway.OPERATIONS:
            if name in vars(cls):
                setattr(cls, name, _scrubbing_echoes(vars(cls)[name]))

    type_id: ClassVar[int]
    name: ClassVar[str]
    credential_fields: ClassVar[tuple[CredentialField, ...]]
    currencies: ClassVar[frozenset[str]] = frozenset({"USD"})
    """ISO 4217 codes the gateway can take at all; each merchant account takes one of them."""
    transaction_id_pattern: ClassVar[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
    """The shape of this gateway's transaction ids. A refund naming anything else is refused before
    any call: an id goes into a URL path, where `.` or `..` would reach another endpoint. The
    default (no dots, no slashes) is for gateways that have not declared theirs."""

    def __init__(self, credentials: Mapping[str, str], context: GatewayContext) -> None:
        missing = [spec.name for spec in self.credential_fields if not credentials.get(spec.name)]
        if missing:
            raise ValueError(f"{self.name} credentials lack {', '.join(missing)}")
        self.credentials = credentials
        self.context = context

    @property
    def http(self) -> HttpPool:
        if self.context.http is None:
            raise ValueError(f"{self.name} needs an HttpPool in its GatewayContext")
        return self.context.http

    @classmethod
    def base_url(cls, settings: Settings) -> str:
        """The gateway's base URL from the settings; gateways without one return ''."""
        return ""

    @classmethod
    def is_transaction_id(cls, value: str) -> bool:
        return cls.transaction_id_pattern.fullmatch(value) is not None

    @abstractmethod
    def process_payment(self, sale: SaleRequest) -> GatewayResult: ...

    @abstractmethod
    def process_refund(self, refund: RefundRequest) -> GatewayResult: ...

    def void_payment(self, payment_id: str) -> GatewayResult:
        """Void the payment `payment_id` in full, as it stands (no look-up of what it should be)."""
        raise NotImplementedError(f"{self.name} cannot void payments")

    def find_payment(self, order_id: str) -> GatewayResult | None:
        """The live (approved, not voided) payment made with `order_id`, or None if there is none.
        Used to settle an unknown outcome; gateways that cannot look up by our reference raise."""
        raise NotImplementedError(f"{self.name} cannot look up payments by order id")

    def find_refund(self, order_id: str) -> GatewayResult | None:
        """The approved refund made with our refund `order_id`, or None if there is none. Used to
        settle a refund whose answer was lost, so that a retry never refunds twice."""
        raise NotImplementedError(f"{self.name} cannot look up refunds by order id")

    def cancel_payment(self, order_id: str) -> GatewayResult | None:
        """Void the payment made with `order_id` if one exists; None when there is none."""
        raise NotImplementedError(f"{self.name} cannot cancel payments by order id")

    def verify_credentials(self) -> None:
        """Check the merchant's credentials with a read-only call that charges nobody; raises
        CredentialsRejected when the gateway refuses them."""
        raise NotImplementedError(f"{self.name} cannot verify credentials")

    def echoes(self, card: Card | None = None) -> Echoes:
        """What this gateway sends for a request (with `card` for a sale): every credential value,
        and the card's number, CVV and expiry. Values under 3 characters would match anywhere."""
        values = {str(value) for value in self.credentials.values()}
        if card is not None:
            values |= {card.number, card.cvv, *expiry_forms(card)}
        return Echoes(frozenset(value for value in values if len(value) >= 3))

    @staticmethod
    def scrub(transcript: str) -> str:
        """`transcript` with every card number, CVV, expiry and credential replaced by [FILTERED]."""
        return transcript
