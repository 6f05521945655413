"""The gateway interface: what every gateway file implements, returns and raises.

Gateways know nothing of Azure, of the monolith's HTTP contract or of logging policy. They receive
plain request objects with `Decimal` money, speak their own wire, and either return a
`GatewayResult` or raise one of the `GatewayError` subclasses below. The flow in `shared/` decides
what each of those means for the caller.
"""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from gateways.cards import redact_card_numbers
from gateways.errors import GatewayError, RequestRejected

if TYPE_CHECKING:
    from gateways.http import HttpPool


@dataclass(frozen=True)
class CredentialField:
    """One credential a gateway type needs: a row's FieldN/DisplayOrderN in the monolith's table."""

    name: str
    label: str
    display_order: int
    aliases: tuple[str, ...] = ()
    required: bool = True
    """False for a per-merchant option an account may leave out, kept in the secret beside the
    credentials (a held-for-review policy, say); the gateway's default applies without it."""


@dataclass(frozen=True)
class SandboxCards:
    """Two of the cards a gateway's test environment publishes: one it approves, one it declines
    (what `tools.smoke` charges, then refunds, on a deployment that calls the gateway's `test_url`)."""

    approve: str
    decline: str


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


@dataclass(frozen=True, repr=False)
class CardToken:
    """A card as a gateway's browser tokenizer handed it over: the card was typed into the gateway's
    own iframe, and the monolith sends us this instead of the number. A secret for as long as it
    lives (a CardSecure token charges the card again; a one-time nonce charges it once): never
    logged, stored or echoed, like a card number."""

    kind: str
    """What made it, one of the contract's token types; each gateway declares the kinds it takes
    (`token_kinds`)."""
    value: str
    descriptor: str | None = None
    """The tokenizer's name for the value's format (Accept.js `dataDescriptor`); None otherwise."""
    exp_month: int | None = None
    """The card's expiry, for kinds whose gateway needs it beside the token (CardSecure)."""
    exp_year: int | None = None

    def __repr__(self) -> str:
        # The value is a secret: a token in a traceback or a debugger shows only its kind.
        return f"CardToken(kind={self.kind!r})"


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
    unknown outcome can be looked up later. Never Luhn-valid (a gateway may mask such order ids as
    card numbers, and then could never find them)."""
    amount: Decimal
    currency: str
    """ISO 4217 alphabetic code, e.g. USD."""
    card: Card | None = None
    token: CardToken | None = None
    """Exactly one of `card` and `token` is set."""
    billing: BillingAddress = field(default_factory=BillingAddress)
    comment: str | None = None

    def __post_init__(self) -> None:
        if (self.card is None) == (self.token is None):
            raise ValueError("a sale carries either a card or a card token, exactly one")


def require_card(sale: SaleRequest, gateway: str) -> Card:
    """The sale's card, for a gateway (or a path of one) that takes card numbers only. The flow
    refuses a token a gateway does not accept before any call; this is the gateway's own guard."""
    if sale.card is None:
        raise RequestRejected(f"{gateway} takes card numbers here, not a card token", code="token_not_accepted")
    return sale.card


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
Environment = Literal["test", "live"]
"""Which of its URLs a gateway is called at: its sandbox (`test_url`) or production (`live_url`)."""


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
    last_four: str | None = None
    """The card's last four digits as the gateway tells them, for a sale made with a token (the
    audit line's masked card); None when the answer does not say."""


@dataclass(frozen=True)
class PaymentStatus:
    """What a gateway says about one of its transactions, read-only: enough for `refund_or_void`
    (in `shared/`) to decide, the same way for every gateway, whether to void, refund or refuse."""

    transaction_id: str
    is_payment: bool
    """False: a refund, a credit, anything that is not a sale (refunding it would undo a refund)."""
    amount: Decimal | None
    """What was charged; None when the gateway does not say."""
    currency: str | None
    settled: bool
    voided: bool
    voidable: bool
    """A void now gives the whole amount back."""
    refundable: bool
    """A refund linked to the payment is possible now."""
    voidable_in_part: bool = False
    """A void may name a smaller amount (at some gateways: a sale authorized and not yet captured)."""
    refunded: Decimal = Decimal(0)
    """What has been refunded already, when the gateway tells."""
    state: str = ""
    """The gateway's own word for the transaction's state, for messages."""


@dataclass(frozen=True)
class GatewayContext:
    """What a gateway instance gets besides its merchant's credentials."""

    merchant_account_id: int
    base_url: str
    http: HttpPool | None = None


ECHO_REMOVED = "[removed]"


@dataclass(frozen=True)
class Echoes:
    """The values one request sent a gateway that must never come back out of it: the card number
    or the card token's value, the CVV, the expiry as written on the wire, every credential. A gateway (or a proxy) that
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

    def status(self, status: PaymentStatus) -> PaymentStatus:
        return replace(status, state=self.scrub(status.state))

    def error(self, error: GatewayError) -> GatewayError:
        error.message = self.scrub(error.message)
        error.code = self.scrub(error.code)
        if error.transaction_id is not None:
            error.transaction_id = self.scrub(error.transaction_id)
        error.args = (error.message,)
        return error


def expiry_forms(exp_month: int, exp_year: int) -> set[str]:
    """The ways gateways write an expiry (MMYY, MM/YY, and the other usual ones)."""
    month, year = f"{exp_month:02d}", exp_year
    short = f"{year % 100:02d}"
    return {month + short, f"{month}/{short}", f"{month}/{year}", f"{month}-{short}", f"{year}-{month}",
            f"{month}{year}", f"{year}{month}"}


def _scrubbing_echoes(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    def scrubbed(self: Gateway, *args: Any, **kwargs: Any) -> Any:
        sale = next((a for a in (*args, *kwargs.values()) if isinstance(a, SaleRequest)), None)
        echoes = self.echoes(sale)
        try:
            outcome = operation(self, *args, **kwargs)
        except GatewayError as error:
            echoes.error(error)
            raise
        if isinstance(outcome, GatewayResult):
            return echoes.result(outcome)
        return echoes.status(outcome) if isinstance(outcome, PaymentStatus) else outcome

    return scrubbed


class Gateway(ABC):
    """One gateway type. An instance serves exactly one merchant account's credentials."""

    OPERATIONS: ClassVar[tuple[str, ...]] = (
        "charge",
        "payment_status",
        "void",
        "refund",
        "find_payment",
        "find_refund",
        "verify_credentials",
    )
    """The primitives callers use. Each gateway's own definitions of them are wrapped (below) so that
    their results and errors never carry back what the request sent: one place for every gateway
    and every caller (the flow, the refund policy, the reconciler, the accounts CLI)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in Gateway.OPERATIONS:
            if name in vars(cls):
                setattr(cls, name, _scrubbing_echoes(vars(cls)[name]))

    type_id: ClassVar[int]
    name: ClassVar[str]
    credential_fields: ClassVar[tuple[CredentialField, ...]]
    test_url: ClassVar[str] = ""
    """The base URL outside production (GATEWAY_ENVIRONMENT=test); "" for a gateway called at no URL."""
    live_url: ClassVar[str] = ""
    url_setting: ClassVar[str] = ""
    """The app setting that overrides the URL (a merchant's own site, a proxy, a local fake)."""
    legacy_url_settings: ClassVar[tuple[str, ...]] = ()
    """Older settings that still configure the URL; the gateway's `base_url` reads them."""
    sandbox_cards: ClassVar[SandboxCards | None] = None
    """What `tools.smoke` pays with at this gateway; None: it refuses to run a full check there."""
    currencies: ClassVar[frozenset[str]] = frozenset({"USD"})
    """ISO 4217 codes the gateway can take at all; each merchant account takes one of them."""
    token_kinds: ClassVar[frozenset[str]] = frozenset()
    """The card-token kinds (`CardToken.kind`) this gateway charges; the flow refuses any other
    before a call, naming these."""
    accepts_cards: ClassVar[bool] = True
    """False for a token-only gateway (one whose accounts cannot send card numbers); the flow
    refuses a card number for it before a call."""
    transaction_id_pattern: ClassVar[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
    """The shape of this gateway's transaction ids. A refund naming anything else is refused before
    any call: an id goes into a URL path, where `.` or `..` would reach another endpoint. The
    default (no dots, no slashes) is for gateways that have not declared theirs."""

    def __init__(self, credentials: Mapping[str, str], context: GatewayContext) -> None:
        missing = [spec.name for spec in self.credential_fields if spec.required and not credentials.get(spec.name)]
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
    def url_settings(cls) -> tuple[str, ...]:
        """Every app setting this gateway's URL may come from."""
        return tuple(name for name in (cls.url_setting, *cls.legacy_url_settings) if name)

    @classmethod
    def base_url(cls, environment: Environment, overrides: Mapping[str, str]) -> str:
        """The URL this gateway is called at: its `url_setting` when set, else the environment's URL."""
        override = (overrides.get(cls.url_setting) or "").strip() if cls.url_setting else ""
        if override:
            return override.rstrip("/")
        return cls.live_url if environment == "live" else cls.test_url

    @classmethod
    def is_transaction_id(cls, value: str) -> bool:
        return cls.transaction_id_pattern.fullmatch(value) is not None

    @abstractmethod
    def charge(self, sale: SaleRequest) -> GatewayResult:
        """A sale: authorize and capture in one step (action "sale")."""

    @abstractmethod
    def payment_status(self, payment_id: str) -> PaymentStatus:
        """What the gateway says about `payment_id` now; TransactionNotFound when this merchant has
        no such transaction. Reads only."""

    @abstractmethod
    def void(self, payment_id: str, amount: Decimal | None = None) -> GatewayResult:
        """Void the payment (action "void"): the whole of it, or `amount` of it, which the caller
        passes only when the payment's status said `voidable_in_part`. No look-up of its own."""

    @abstractmethod
    def refund(
        self, payment_id: str, amount: Decimal | None, order_id: str, comment: str | None = None
    ) -> GatewayResult:
        """Refund the payment, linked to it, once it has settled (action "refund"): `amount`, or
        with None the whole amount left. `order_id` is our reference for this refund, which
        `find_refund` finds it by."""

    @abstractmethod
    def find_payment(self, order_id: str) -> GatewayResult | None:
        """The live (approved, not voided) payment made with `order_id`, or None if there is none.
        Settles an unknown outcome: an answer it cannot read raises OutcomeUnknown, never None."""

    @abstractmethod
    def find_refund(self, order_id: str) -> GatewayResult | None:
        """The approved refund (or void) made with our refund `order_id`, or None if there is none.
        Settles a refund whose answer was lost, so that a retry never refunds twice."""

    @abstractmethod
    def verify_credentials(self) -> None:
        """Check the merchant's credentials with a read-only call that charges nobody; raises
        CredentialsRejected when the gateway refuses them."""

    def echoes(self, sale: SaleRequest | None = None) -> Echoes:
        """What this gateway sends for a request (with `sale` for a sale): every credential value,
        the card's number, CVV and expiry, or the token's value and the expiry sent beside it.
        Values under 3 characters would match anywhere."""
        values = {str(value) for value in self.credentials.values()}
        if sale is not None and sale.card is not None:
            card = sale.card
            values |= {card.number, card.cvv, *expiry_forms(card.exp_month, card.exp_year)}
        if sale is not None and sale.token is not None:
            token = sale.token
            values.add(token.value)
            if token.exp_month is not None and token.exp_year is not None:
                values |= expiry_forms(token.exp_month, token.exp_year)
        return Echoes(frozenset(value for value in values if len(value) >= 3))

    @staticmethod
    @abstractmethod
    def scrub(transcript: str) -> str:
        """`transcript` with every card number, CVV, expiry and credential replaced by [FILTERED]."""
