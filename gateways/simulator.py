"""The built-in simulator gateway (type 900): a stateful stand-in for local runs and tests.

Refused unless ENABLE_SIMULATOR=true; never on in Azure. Magic card numbers (all Luhn-valid):

| card             | result                                                              |
|------------------|---------------------------------------------------------------------|
| 4000000000000002 | declined, card_declined                                             |
| 4000000000009995 | declined, insufficient_funds                                        |
| 4000000000000069 | declined, expired_card                                              |
| 4000000000000127 | declined, incorrect_cvc                                             |
| 4999006200620062 | charged, but the answer is lost: OutcomeUnknown (a gateway timeout) |
| 4000000000003063 | a prepaid card with 10.00 left: more is approved for 10.00 only     |
| any other        | approved                                                            |

It takes every card-token kind the contract defines, so that local runs and the contract tests can
send any: a token sale is approved, and a CardSecure-shaped token's last four digits are the card's.

A full refund of an unsettled payment voids it; anything else is a refund, up to what remains.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from decimal import Decimal

from gateways.base import Action, Gateway, GatewayResult, PaymentStatus, SaleRequest, SandboxCards
from gateways.errors import AlreadyVoided, Declined, OutcomeUnknown, RequestRejected, StandardError, TransactionNotFound
from gateways.http import scrub_transcript

DECLINES: dict[str, tuple[str, str, StandardError]] = {
    "4000000000000002": ("card_declined", "Card declined", StandardError.DECLINED),
    "4000000000009995": ("insufficient_funds", "Insufficient funds", StandardError.INSUFFICIENT_FUNDS),
    "4000000000000069": ("expired_card", "Card expired", StandardError.EXPIRED_CARD),
    "4000000000000127": ("incorrect_cvc", "CVV mismatch", StandardError.CVV_MISMATCH),
}
TIMEOUT_CARD = "4999006200620062"
PARTIAL_CARD = "4000000000003063"
PARTIAL_BALANCE = Decimal("10.00")


@dataclass
class SimulatedPayment:
    transaction_id: str
    merchant_account_id: int
    order_id: str
    amount: Decimal
    settled: bool = False
    voided: bool = False
    refunded: Decimal = Decimal("0")
    refunds: list[str] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return not self.voided


class SimulatorLedger:
    """The simulator's 'gateway side': deliberate process-wide state, locked and bounded, and
    partitioned by merchant account so one merchant never sees another's payments."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self._lock = threading.Lock()
        self._max_entries = max_entries
        self._payments: OrderedDict[str, SimulatedPayment] = OrderedDict()
        self._by_order: dict[tuple[int, str], SimulatedPayment] = {}
        self._refunds_by_order: OrderedDict[tuple[int, str], tuple[str, Decimal]] = OrderedDict()

    def add(self, payment: SimulatedPayment) -> None:
        with self._lock:
            self._payments[payment.transaction_id] = payment
            self._by_order[(payment.merchant_account_id, payment.order_id)] = payment
            while len(self._payments) > self._max_entries:
                _, evicted = self._payments.popitem(last=False)
                if self._by_order.get((evicted.merchant_account_id, evicted.order_id)) is evicted:
                    del self._by_order[(evicted.merchant_account_id, evicted.order_id)]

    def add_refund(self, merchant_account_id: int, order_id: str, refund_id: str, amount: Decimal) -> None:
        """Called with `lock` held, inside the refund's own critical section."""
        self._refunds_by_order[(merchant_account_id, order_id)] = (refund_id, amount)
        while len(self._refunds_by_order) > self._max_entries:
            self._refunds_by_order.popitem(last=False)

    def refund_by_order(self, merchant_account_id: int, order_id: str) -> tuple[str, Decimal] | None:
        with self._lock:
            return self._refunds_by_order.get((merchant_account_id, order_id))

    def get(self, merchant_account_id: int, transaction_id: str) -> SimulatedPayment | None:
        with self._lock:
            payment = self._payments.get(transaction_id)
        return payment if payment and payment.merchant_account_id == merchant_account_id else None

    def by_order(self, merchant_account_id: int, order_id: str) -> SimulatedPayment | None:
        with self._lock:
            return self._by_order.get((merchant_account_id, order_id))

    def payments(self, merchant_account_id: int) -> list[SimulatedPayment]:
        with self._lock:
            return [p for p in self._payments.values() if p.merchant_account_id == merchant_account_id]

    def settle_all(self) -> None:
        with self._lock:
            for payment in self._payments.values():
                payment.settled = True

    @property
    def lock(self) -> threading.Lock:
        return self._lock


LEDGER = SimulatorLedger()


_NO_DIGITS = str.maketrans("0123456789", "ghijklmnop")


def _new_id() -> str:
    # Letters only: random hex now and then holds a Luhn-valid run of 13+ digits, which reads as a
    # card number to anything that looks for one (log scrubbers, the tests' leak guard).
    return "sim_" + uuid.uuid4().hex[:20].translate(_NO_DIGITS)


class SimulatorGateway(Gateway):
    type_id = 900
    name = "Simulator"
    sandbox_cards = SandboxCards(approve="4242424242424242", decline="4000000000000002")
    credential_fields = ()
    currencies = frozenset({"USD", "CAD", "GBP", "EUR"})
    transaction_id_pattern = re.compile(r"sim_[A-Za-z0-9]{1,60}")
    token_kinds = frozenset({"cardsecure", "payload_payment_method", "authorizenet_opaque", "stripe_payment_method"})

    ledger = LEDGER

    def charge(self, sale: SaleRequest) -> GatewayResult:
        number = sale.card.number if sale.card is not None else ""
        decline = DECLINES.get(number)
        if decline is not None:
            code, text, standard = decline
            raise Declined(text, code=code, http_status=200, standard=standard, transaction_id=_new_id())
        account = self.context.merchant_account_id
        existing = self.ledger.by_order(account, sale.order_id)
        if existing is not None and existing.live:
            # As at the real gateways that refuse them, order ids are unique per merchant.
            raise RequestRejected("duplicate order id", code="duplicate_order", http_status=200)
        approved = min(sale.amount, PARTIAL_BALANCE) if number == PARTIAL_CARD else sale.amount
        payment = SimulatedPayment(_new_id(), account, sale.order_id, approved)
        self.ledger.add(payment)
        if number == TIMEOUT_CARD:
            raise OutcomeUnknown("simulated gateway timeout after the charge was made", code="timeout")
        result = self._result(payment.transaction_id, "sale", approved)
        if sale.token is not None and sale.token.kind == "cardsecure" and sale.token.value.isdigit():
            result = replace(result, last_four=sale.token.value[-4:])
        return result

    def payment_status(self, payment_id: str) -> PaymentStatus:
        payment = self._payment(payment_id)
        with self.ledger.lock:
            return PaymentStatus(
                transaction_id=payment.transaction_id,
                is_payment=True,
                amount=payment.amount,
                currency=None,
                settled=payment.settled,
                voided=payment.voided,
                voidable=not payment.voided and not payment.settled,
                # Unlike most gateways, the simulator refunds before settlement too.
                refundable=not payment.voided and payment.refunded < payment.amount,
                refunded=payment.refunded,
                state="voided" if payment.voided else "settled" if payment.settled else "approved",
            )

    def void(self, payment_id: str, amount: Decimal | None = None) -> GatewayResult:
        if amount is not None:
            raise RequestRejected("the simulator voids whole payments only", code="partial_void", http_status=200)
        payment = self._payment(payment_id)
        with self.ledger.lock:
            if payment.voided:
                raise AlreadyVoided("payment already voided", code="voided", http_status=200)
            if payment.settled:
                raise RequestRejected("payment already settled; refund it instead", code="settled", http_status=200)
            payment.voided = True
        return self._result(_new_id(), "void", payment.amount)

    def refund(
        self, payment_id: str, amount: Decimal | None, order_id: str, comment: str | None = None
    ) -> GatewayResult:
        payment = self._payment(payment_id)
        with self.ledger.lock:
            if payment.voided:
                raise AlreadyVoided("payment already voided", code="voided", http_status=200)
            # The ledger's own rule, as a real gateway keeps it: never more back than was paid.
            remaining = payment.amount - payment.refunded
            amount = remaining if amount is None else amount
            if amount > remaining:
                raise RequestRejected(
                    f"refund exceeds the remaining {remaining}", code="amount_exceeds", http_status=200
                )
            refund_id = _new_id()
            payment.refunded += amount
            payment.refunds.append(refund_id)
            self.ledger.add_refund(self.context.merchant_account_id, order_id, refund_id, amount)
        return self._result(refund_id, "refund", amount)

    def find_refund(self, order_id: str) -> GatewayResult | None:
        found = self.ledger.refund_by_order(self.context.merchant_account_id, order_id)
        return None if found is None else self._result(found[0], "refund", found[1])

    def find_payment(self, order_id: str) -> GatewayResult | None:
        payment = self.ledger.by_order(self.context.merchant_account_id, order_id)
        if payment is None or not payment.live:
            return None
        return self._result(payment.transaction_id, "sale", payment.amount)

    def verify_credentials(self) -> None:
        """The simulator takes no credentials: there is nothing to refuse."""

    @staticmethod
    def scrub(transcript: str) -> str:
        # No wire of its own; card numbers are what a transcript of its callers could hold.
        return scrub_transcript(transcript)

    def _payment(self, payment_id: str) -> SimulatedPayment:
        payment = self.ledger.get(self.context.merchant_account_id, payment_id)
        if payment is None:
            raise TransactionNotFound("transaction not found", code="not_found", http_status=200)
        return payment

    @staticmethod
    def _result(transaction_id: str, action: Action, amount: Decimal) -> GatewayResult:
        return GatewayResult(
            transaction_id=transaction_id,
            action=action,
            code="approved",
            message="Approval",
            http_status=200,
            amount=amount,
        )
