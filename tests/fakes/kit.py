"""The fake kit: what every stateful fake gateway shares, so that a gateway's fake only translates its
wire to ledger operations and back.

    class AcmeFake(KitFake):
        settles = frozenset({APPROVED})            # which statuses a settle moves to settled

        def handle(self, request: RecordedRequest) -> Reply:   # the wire, nothing else
            if request.basic_auth != (...):
                self.refuse_credentials()
                return Reply(401)
            try:
                txn = self.ledger.pay(merchant, amount, "USD", order_id, card=number)
            except Refused as refusal:             # refusal.reason: see Refused
                return Reply(400, {...})
            return Reply(200, {"id": txn.id, ...})

`Ledger` (thread-safe, one per fake unless shared) holds payments and refunds per merchant as
`Txn`: amount (what was approved) and `requested` (what was asked: a partial approval approves
less), currency, order id, status (`AUTHORIZED` held uncaptured, `APPROVED`, `PENDING` not final
yet, `DECLINED`, `VOIDED`), `settled`, and a refund's link to its payment. It enforces what the
references say real gateways do: a void only before settlement (in part only while `AUTHORIZED`); a
refund only after, linked to a live payment, never above what is left of it (a voided refund gives
its amount back); a declined or voided payment is nothing to void or refund; order ids may repeat
(`by_order`), and `charged_twice` names those with more than one live payment. A refusal raises
`Refused(reason)`; the fake answers it as its gateway would. `ledger.on_settle` hooks run per txn
settled. `Txn.data` keeps the fake's own fields (codes, auth codes, what was sent).

`KitFake` is a `FakeServer` (recorded requests, faults; `_server.py`) over a ledger: `transactions`
(id -> the fake's own view of each, `view`), `live_charges(merchant)`, `settle(id)`,
`settle_all()`, `auth_failures` (count them with `refuse_credentials()`), `approve_up_to` {card:
amount} (a partial approval, `approved_amount`), and the faults `slow`, `drop`, `http429`,
`http500`, `http4xx`, `echo`, malformed answers (`set_fault`). A fake overrides what its wire
shapes: `handle`, `view`, `new_id` (or just `id_prefix`), `error_reply` (its error body for the
status faults and 500), `echo_reply`. `parse_amount`, `dig` and `Record` help read and show JSON.

Each gateway's fake module `tests/fakes/<gateway module name>.py` exports `PROFILE`, a `Profile`:
what the conformance suite (`tests/conformance/`) needs to run that gateway, through the service,
against its fake:

    PROFILE = Profile(
        start=lambda: AcmeFake(merchants={"m-1": "secret-1"}),  # a new fake serving one merchant
        merchant="m-1",                # that merchant's key in the ledger (optional if it is the only one)
        credentials={"merchantId": "m-1", "apiKey": "secret-1"},   # its account's stored credentials
        wrong_credentials={"merchantId": "m-1", "apiKey": "revoked"},  # the same merchant, refused
        approving=TestCard("4111111111111111"),                # a card (and amount) that approves,
        approved={"statusCode": "00", "responseMessage": "Approved"},  # and its envelope's gateway fields
        declining=TestCard("4000000000000002"),                # one that declines, and its envelope's
        declined={"statusCode": "05", "errorCode": "declined", "responseMessage": "Do not honor",
                  "gatewayHttpStatusCode": 200},
        sale="POST /v1/sales$",                # regex on the fake's request_line ("METHOD /path") of the sale
    )
    # `declined` without gatewayHttpStatusCode means 200. Optional: voided={...} (a void's
    # statusCode and responseMessage, if not `approved`'s), refused_status=401 (the HTTP status of a
    # credentials refusal), currency="USD" (the account's), settle=lambda fake, payment_id: ...
    # (default fake.settle)

The suite aims the kit's faults at `sale`: `http429` (rate limited), `http500`, `drop` (the sale
carried out, its answer lost). It records the scrub transcript itself, through the gateway's own
`HttpPool(transcript=...)` against the fake, and checks `scrub` leaves no card number, CVV, expiry
or credential in it. Run one gateway's cases with `pytest tests/conformance -k <module name>`.
`tests/test_add_a_gateway.py` holds a complete minimal gateway and its fake on this kit.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from tests.fakes._server import FakeServer, Reply

AUTHORIZED, APPROVED, PENDING, DECLINED, VOIDED = "authorized", "approved", "pending", "declined", "voided"
LIVE = frozenset({AUTHORIZED, APPROVED, PENDING})
"""A payment in one of these may take money: it counts as a charge."""
Kind = Literal["payment", "refund"]
CENT = Decimal("0.01")


class Refused(Exception):
    """The ledger refuses an operation; `reason` is one of: not_found (no such id for this merchant),
    not_a_payment (a refund named where a payment is needed), declined, voided, settled (a void after
    settlement), not_settled (a refund before), captured (a capture of what is not held), amount (not
    above zero, or more than the payment or what is left of it), partial (a partial void of what is
    no longer `AUTHORIZED`)."""

    def __init__(self, reason: str, txn: Txn | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.txn = txn


@dataclass
class Txn:
    id: str
    merchant: str
    kind: Kind
    amount: Decimal
    """What was approved (and is left after a partial void)."""
    currency: str
    order_id: str | None
    status: str
    requested: Decimal
    """What was asked: more than `amount` after a partial approval."""
    settled: bool = False
    card: str = ""
    """The card's last four digits: a fake never keeps a whole number."""
    payment_id: str | None = None
    """A refund's payment."""
    refunds: list[str] = field(default_factory=list)
    refunded: Decimal = Decimal(0)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.kind == "payment" and self.status in LIVE

    @property
    def voidable(self) -> bool:
        # A refund is a transaction of its own and, like a sale, voidable until it settles.
        return self.status in LIVE and not self.settled

    @property
    def refundable(self) -> bool:
        return self.live and self.settled and self.refunded < self.amount

    @property
    def key(self) -> tuple[str, str]:
        """(merchant, id): what the ledger's operations take."""
        return self.merchant, self.id

    @property
    def left(self) -> Decimal:
        return self.amount - self.refunded

    def copy(self) -> Txn:
        return replace(self, refunds=list(self.refunds), data=dict(self.data))


class Ledger:
    """Payments and refunds per merchant; every operation holds `lock` (an RLock: a fake may hold it
    across several operations)."""

    def __init__(self, new_id: Callable[[], str] | None = None, settles: frozenset[str] = frozenset({APPROVED})):
        counter = itertools.count(1)
        self.new_id = new_id or (lambda: f"txn{next(counter):06d}")
        self.settles = settles
        self.on_settle: list[Callable[[Txn], None]] = []
        self.lock = threading.RLock()
        self._txns: dict[str, Txn] = {}

    def __iter__(self) -> Iterator[Txn]:
        with self.lock:
            return iter([txn.copy() for txn in self._txns.values()])

    def get(self, txn_id: str) -> Txn | None:
        """The ledger's own entry (any merchant's): a fake checks `merchant` itself."""
        with self.lock:
            return self._txns.get(txn_id)

    def find(self, merchant: str, txn_id: str) -> Txn:
        txn = self.get(txn_id)
        if txn is None or txn.merchant != merchant:
            raise Refused("not_found")
        return txn

    def by_order(self, merchant: str | None, order_id: str) -> list[Txn]:
        with self.lock:
            return [t for t in self._txns.values() if t.order_id == order_id and merchant in (None, t.merchant)]

    def live_payments(self, merchant: str | None = None) -> list[Txn]:
        return [t for t in self if t.live and merchant in (None, t.merchant)]

    def charged_twice(self, merchant: str | None = None) -> dict[str, int]:
        """Order ids with more than one live payment, and how many."""
        counts: dict[str, int] = {}
        for txn in self.live_payments(merchant):
            counts[str(txn.order_id)] = counts.get(str(txn.order_id), 0) + 1
        return {order: n for order, n in counts.items() if n > 1}

    def pay(
        self,
        merchant: str,
        amount: Decimal,
        currency: str,
        order_id: str | None,
        *,
        card: str = "",
        status: str = APPROVED,
        approved: Decimal | None = None,
        **data: Any,
    ) -> Txn:
        """Record a payment (declined ones too: a gateway keeps them). `approved`: less than asked."""
        with self.lock:
            txn = Txn(self.new_id(), merchant, "payment", amount if approved is None else approved, currency,
                      order_id, status, amount, card=card[-4:], data=data)
            self._txns[txn.id] = txn
            return txn

    def capture(self, merchant: str, txn_id: str, amount: Decimal | None = None) -> Txn:
        """A held (`AUTHORIZED`) payment becomes a sale, for at most what was held."""
        with self.lock:
            txn = self._payment(merchant, txn_id)
            if txn.status != AUTHORIZED:
                raise Refused("captured", txn)
            if amount is not None and not Decimal(0) < amount <= txn.amount:
                raise Refused("amount", txn)
            txn.amount, txn.status = amount or txn.amount, APPROVED
            return txn

    def void(self, merchant: str, txn_id: str, amount: Decimal | None = None) -> tuple[Txn, Decimal]:
        """Void a payment or a refund before settlement, in full or (`AUTHORIZED` only) in part:
        (the txn, the amount voided)."""
        with self.lock:
            txn = self.find(merchant, txn_id)
            self._check_live(txn)
            if txn.settled:
                raise Refused("settled", txn)
            amount = txn.amount if amount is None else amount
            if not Decimal(0) < amount <= txn.amount:
                raise Refused("amount", txn)
            if amount < txn.amount:
                if txn.status != AUTHORIZED:
                    raise Refused("partial", txn)
                txn.amount -= amount
                return txn, amount
            txn.status = VOIDED
            payment = self._txns.get(txn.payment_id or "")
            if payment is not None:  # a voided refund gives the payment its refundable amount back
                payment.refunded -= amount
            return txn, amount

    def refund(
        self, merchant: str, payment_id: str, amount: Decimal | None, order_id: str | None, **data: Any
    ) -> Txn:
        """A refund linked to a settled live payment, for `amount` (None: all that is left)."""
        with self.lock:
            payment = self._payment(merchant, payment_id)
            self._check_live(payment)
            if not payment.settled:
                raise Refused("not_settled", payment)
            amount = payment.left if amount is None else amount
            if not Decimal(0) < amount <= payment.left:
                raise Refused("amount", payment)
            refund = Txn(self.new_id(), merchant, "refund", amount, payment.currency, order_id, APPROVED, amount,
                         card=payment.card, payment_id=payment.id, data=data)
            payment.refunded += amount
            payment.refunds.append(refund.id)
            self._txns[refund.id] = refund
            return refund

    def finish(self, txn_id: str, approved: bool, **data: Any) -> Txn:
        """A `PENDING` payment reaches its final status."""
        with self.lock:
            txn = self._txns[txn_id]
            if txn.status != PENDING:
                raise ValueError(f"{txn_id} is {txn.status}, not {PENDING}")
            txn.status = APPROVED if approved else DECLINED
            txn.data.update(data)
            return txn

    def settle(self, txn_id: str) -> None:
        with self.lock:
            txn = self._txns[txn_id]
            if txn.status in self.settles and not txn.settled:
                txn.settled = True
                for hook in self.on_settle:
                    hook(txn)

    def settle_all(self, merchant: str | None = None) -> None:
        with self.lock:
            for txn in list(self._txns.values()):
                if merchant in (None, txn.merchant):
                    self.settle(txn.id)

    def _payment(self, merchant: str, txn_id: str) -> Txn:
        txn = self.find(merchant, txn_id)
        if txn.kind != "payment":
            raise Refused("not_a_payment", txn)
        return txn

    @staticmethod
    def _check_live(txn: Txn) -> None:
        if txn.status == DECLINED:
            raise Refused("declined", txn)
        if txn.status == VOIDED:
            raise Refused("voided", txn)


class KitFake(FakeServer):
    """A `FakeServer` over a `Ledger` (see the module docstring)."""

    settles: frozenset[str] = frozenset({APPROVED})
    """Which statuses `settle` settles (a gateway may batch holds too)."""
    id_prefix = "txn_"

    def __init__(self, ledger: Ledger | None = None) -> None:
        super().__init__()
        self.numbers = itertools.count(1)
        """For `new_id`: a fake's ids count up, as gateways' do."""
        self.ledger = ledger or Ledger(self.new_id, self.settles)
        self.lock = self.ledger.lock  # one lock: the recorded requests and the ledger move together
        self.auth_failures = 0
        self.approve_up_to: dict[str, Decimal] = {}
        """{card number: amount}: a payment with that card is approved for at most that amount."""
        self.vault: dict[str, tuple[str, str]] = {}
        """A browser tokenizer's store: {token: (the merchant it was made for, the card it stands for)}."""

    def new_id(self) -> str:
        # Random too: ids from two fakes (two merchants, two gateways) must not collide.
        return f"{self.id_prefix}{next(self.numbers):04d}{secrets.token_hex(4)}"

    def server_error(self) -> Reply:
        return self.error_reply(500)  # in the gateway's own error shape

    def view(self, txn: Txn) -> Any:
        """How tests see one transaction (a gateway-specific record; the ledger's copy by default)."""
        return txn

    @property
    def transactions(self) -> dict[str, Any]:
        return {txn.id: self.view(txn) for txn in self.ledger}

    def live_charges(self, merchant: str | None = None) -> list[Any]:
        return [self.view(txn) for txn in self.ledger.live_payments(merchant)]

    def settle(self, txn_id: str) -> None:
        self.ledger.settle(txn_id)

    def settle_all(self) -> None:
        self.ledger.settle_all()

    def refuse_credentials(self) -> None:
        with self.lock:
            self.auth_failures += 1

    def save_card(self, merchant: str, number: str, prefix: str) -> str:
        """A token for `number`, as a gateway's browser tokenizer hands it to the page: random, and
        usable by `merchant` only (`saved_card`)."""
        with self.lock:
            self.vault[token := f"{prefix}{secrets.token_hex(10)}"] = (merchant, number)
        return token

    def saved_card(self, token: str, merchant: str) -> str | None:
        """The card `token` stands for, or None when it was never issued or belongs to another merchant."""
        owner, number = self.vault.get(token, ("", ""))
        return number if owner == merchant and number else None

    def approved_amount(self, card: str, amount: Decimal) -> Decimal | None:
        """What a payment with `card` is approved for when less than `amount` (`approve_up_to`)."""
        limit = self.approve_up_to.get(card)
        return min(amount, limit) if limit is not None else None


class Record(dict[str, Any]):
    """A fake's view of one transaction: its wire fields, also read as attributes (`txn.status`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def parse_amount(value: Any) -> Decimal | None:
    """A decimal amount above zero in whole cents, or None."""
    try:
        amount = Decimal(str(value)).quantize(CENT)
    except (InvalidOperation, ValueError):
        return None
    return amount if amount > 0 else None


def dig(body: Any, *path: str | int) -> dict[str, Any]:
    """body[path...] when it is an object there, else {}: a fake reads what a client sent, whatever it is."""
    for key in path:
        if isinstance(key, int):
            body = body[key] if isinstance(body, list) and len(body) > key else None
        else:
            body = body.get(key) if isinstance(body, dict) else None
    return body if isinstance(body, dict) else {}


@dataclass(frozen=True)
class TestCard:
    """A card as the monolith sends it (`account`, `expDate` MMYY, `cvv2`) with an amount; or, for a
    gateway that takes browser tokens only, the token the monolith sends instead (`token`: the V1
    `token` object's type and value; `number`, `cvv` and `exp` are then not sent)."""

    __test__ = False  # not a pytest test class

    number: str = ""
    amount: Decimal = Decimal("25.00")
    cvv: str = "987"
    exp: str = "1239"
    token: tuple[str, str] | None = None


def _settle(fake: KitFake, payment_id: str) -> None:
    fake.settle(payment_id)


@dataclass(frozen=True, kw_only=True)
class Profile:
    """What the conformance suite needs from one gateway's fake (see the module docstring)."""

    start: Callable[[], KitFake]
    merchant: str = ""
    """The merchant's key in the fake's ledger; "" when the fake serves no other."""
    credentials: Mapping[str, str]
    wrong_credentials: Mapping[str, str]
    approving: TestCard
    approved: Mapping[str, Any]
    declining: TestCard
    declined: Mapping[str, Any]
    sale: str
    """A regex searched in the fake's `request_line` of each request ("METHOD /path" unless the fake
    appends what names the call on a one-URL API)."""
    voided: Mapping[str, Any] | None = None
    refused_status: int = 401
    """The HTTP status the gateway answers refused credentials with (some answer 200 and say so in
    the body)."""
    currency: str = "USD"
    settle: Callable[[KitFake, str], None] = _settle
    settles_at_once: bool = False
    """The gateway captures a sale for good at once and has no void (Stripe): money comes back only
    by a refund, whole or partial, at any time, so the suite expects refunds where others void."""
