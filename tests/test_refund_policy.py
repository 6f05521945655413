"""`refund_or_void`, the one refund policy, over a table of payment statuses: which primitive it
calls (and with what), or what it refuses before any write. The gateways' own files are held to
carrying none of it."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateways.base import Gateway, GatewayContext, GatewayResult, PaymentStatus, RefundRequest, SaleRequest
from gateways.errors import AlreadyVoided, GatewayError, NotRefundable, RequestRejected, TransactionNotFound
from shared.refunds import refund_or_void

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ("ProcessPayment", "ProcessRefund", "ReconcileUnknown", "Health")
PAYMENT = "pay_1"

UNSETTLED = PaymentStatus(
    transaction_id=PAYMENT, is_payment=True, amount=Decimal("20.00"), currency="USD",
    settled=False, voided=False, voidable=True, refundable=False, state="Queued",
)
AUTHORIZED = replace(UNSETTLED, voidable_in_part=True, state="Authorized")
SETTLED = replace(UNSETTLED, settled=True, voidable=False, refundable=True, state="Settled")
VOIDED = replace(UNSETTLED, voided=True, voidable=False, state="Voided")


@dataclass
class Call:
    name: str
    args: tuple[Any, ...]


@dataclass
class StatusGateway(Gateway):
    """Answers `payment_status` with a set status and records every primitive called."""

    status: PaymentStatus | None = None
    void_amount: Decimal | None = None
    calls: list[Call] = field(default_factory=list)

    type_id = 9001
    name = "PolicyTest"
    credential_fields = ()

    def __post_init__(self) -> None:
        super().__init__({}, GatewayContext(1, ""))

    def charge(self, sale: SaleRequest) -> GatewayResult:
        raise AssertionError("the refund policy never charges")

    def payment_status(self, payment_id: str) -> PaymentStatus:
        self.calls.append(Call("payment_status", (payment_id,)))
        if self.status is None:
            raise TransactionNotFound("no such transaction", code="29")
        return self.status

    def void(self, payment_id: str, amount: Decimal | None = None) -> GatewayResult:
        self.calls.append(Call("void", (payment_id, amount)))
        return GatewayResult("void_1", "void", "00", "Approval", 200, self.void_amount or amount)

    def refund(
        self, payment_id: str, amount: Decimal | None, order_id: str, comment: str | None = None
    ) -> GatewayResult:
        self.calls.append(Call("refund", (payment_id, amount, order_id, comment)))
        return GatewayResult("refund_1", "refund", "00", "Approval", 200, amount)

    def find_payment(self, order_id: str) -> GatewayResult | None:
        raise AssertionError("the refund policy never looks up by order id")

    def find_refund(self, order_id: str) -> GatewayResult | None:
        raise AssertionError("the refund policy never looks up by order id")

    def verify_credentials(self) -> None:
        raise AssertionError("the refund policy never verifies credentials")

    @staticmethod
    def scrub(transcript: str) -> str:
        return transcript


def ask(amount: str | None) -> RefundRequest:
    return RefundRequest(
        payment_id=PAYMENT, amount=None if amount is None else Decimal(amount), order_id="BVRREFUND", comment="why"
    )


def writes(gateway: StatusGateway) -> list[Call]:
    return [call for call in gateway.calls if call.name != "payment_status"]


CARRIED_OUT = [
    # (case, status, amount asked, the one write expected)
    ("full before settlement: a void", UNSETTLED, None, Call("void", (PAYMENT, None))),
    ("the whole amount named: a void", UNSETTLED, "20.00", Call("void", (PAYMENT, None))),
    ("part of an uncaptured authorization: a partial void", AUTHORIZED, "5.00",
     Call("void", (PAYMENT, Decimal("5.00")))),
    ("full after settlement: a refund of all", SETTLED, None, Call("refund", (PAYMENT, None, "BVRREFUND", "why"))),
    ("part after settlement: a partial refund", SETTLED, "5.00",
     Call("refund", (PAYMENT, Decimal("5.00"), "BVRREFUND", "why"))),
    ("the rest after a partial refund", replace(SETTLED, refunded=Decimal("15.00")), "5.00",
     Call("refund", (PAYMENT, Decimal("5.00"), "BVRREFUND", "why"))),
    ("part before settlement where the gateway refunds unsettled payments",
     replace(UNSETTLED, refundable=True), "5.00", Call("refund", (PAYMENT, Decimal("5.00"), "BVRREFUND", "why"))),
    # A void would give back the whole payment, 5.00 of which was refunded already.
    ("all that is left of a partly refunded, voidable payment",
     replace(UNSETTLED, refundable=True, refunded=Decimal("5.00")), None,
     Call("refund", (PAYMENT, None, "BVRREFUND", "why"))),
    ("all that is left of a partly refunded authorization: a partial void of the rest",
     replace(AUTHORIZED, refunded=Decimal("5.00")), None, Call("void", (PAYMENT, Decimal("15.00")))),
    ("a gateway that does not say the amount: a whole void", replace(UNSETTLED, amount=None), None,
     Call("void", (PAYMENT, None))),
]


@pytest.mark.parametrize(
    ("status", "amount", "expected"), [c[1:] for c in CARRIED_OUT], ids=[c[0] for c in CARRIED_OUT]
)
def test_the_policy_calls_one_primitive(status: PaymentStatus, amount: str | None, expected: Call) -> None:
    gateway = StatusGateway(status)

    result = refund_or_void(gateway, ask(amount))

    assert gateway.calls == [Call("payment_status", (PAYMENT,)), expected]
    assert result.action == expected.name


REFUSED: list[tuple[str, PaymentStatus, str | None, type[GatewayError], str, str]] = [
    # (case, status, amount asked, error, code, words in the message)
    ("not a payment (a refund's id)", replace(SETTLED, is_payment=False, amount=Decimal("-5.00")), None,
     RequestRejected, "not_a_payment", "not a payment"),
    ("already voided", VOIDED, None, AlreadyVoided, "voided", "already voided"),
    ("already voided, whatever the amount", VOIDED, "50.00", AlreadyVoided, "voided", "already voided"),
    ("more than was paid", SETTLED, "20.01", RequestRejected, "amount_too_large", "exceeds the payment's 20.00"),
    ("more than was paid, before settlement", UNSETTLED, "25.00", RequestRejected, "amount_too_large", "exceeds"),
    ("more than is left after earlier refunds", replace(SETTLED, refunded=Decimal("15.00")), "5.01",
     RequestRejected, "amount_too_large", "exceeds the 5.00 left"),
    ("part before settlement, where only a whole void is possible", UNSETTLED, "5.00",
     NotRefundable, "partial_before_settlement", "only after the payment settles"),
    ("neither voidable nor refundable", replace(SETTLED, refundable=False, state="Declined"), None,
     NotRefundable, "Declined", "neither voided nor refunded now (status: Declined)"),
    ("neither, and the gateway names no state", replace(SETTLED, refundable=False, state=""), "1.00",
     NotRefundable, "not_refundable", "status: unknown"),
]


@pytest.mark.parametrize(
    ("status", "amount", "error", "code", "words"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_the_policy_refuses_before_any_write(
    status: PaymentStatus, amount: str | None, error: type[GatewayError], code: str, words: str
) -> None:
    gateway = StatusGateway(status)

    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")) as refused:
        refund_or_void(gateway, ask(amount))

    assert type(refused.value) is error
    assert refused.value.code == code
    assert writes(gateway) == []


def test_an_unknown_payment_is_not_found_and_nothing_is_written() -> None:
    gateway = StatusGateway(None)
    with pytest.raises(TransactionNotFound):
        refund_or_void(gateway, ask(None))
    assert writes(gateway) == []


def test_a_whole_void_answered_without_an_amount_reports_the_payments() -> None:
    voided = refund_or_void(StatusGateway(UNSETTLED), ask(None))
    assert voided.amount == Decimal("20.00")
    voided = refund_or_void(StatusGateway(UNSETTLED, void_amount=Decimal("19.00")), ask(None))
    assert voided.amount == Decimal("19.00"), "what the gateway says it voided wins"


POLICY_CODES = ("not_a_payment", "amount_too_large", "partial_before_settlement")


def test_the_policy_lives_once() -> None:
    """Its refusals are decided in shared/refunds.py only: no gateway carries a copy of the policy."""
    sources = [path for top in ("gateways", "shared", "tools") for path in (ROOT / top).rglob("*.py")]
    for code in POLICY_CODES:
        found = [str(path.relative_to(ROOT)) for path in sources if f'"{code}"' in path.read_text()]
        assert found == ["shared/refunds.py"], (code, found)


GIVING_BACK = ("payment_status", "void", "refund")
"""The primitives the policy chooses between, and the status it chooses by."""
CALLERS_ALLOWED = {"shared/refunds.py": set(GIVING_BACK), "shared/approval.py": {"void"}}
"""The policy; and `approved_in_full`, which voids a partial approval it refuses (not a refund)."""


def primitive_calls(path: Path) -> set[str]:
    """The names in GIVING_BACK that `path` calls as a method (`gateway.void(...)`, `target.refund(...)`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute) and node.func.attr in GIVING_BACK}


def test_only_the_policy_calls_the_primitives_it_chooses_between() -> None:
    """A second path to the money (the reconciler voiding on its own when the status says voidable,
    the flow refunding straight away when an amount is named) would pass every behaviour test while
    it agrees with the policy, and drift from it later."""
    service = [path for top in ("shared", "tools", "bench", *FUNCTIONS) for path in (ROOT / top).rglob("*.py")]
    calls = {str(path.relative_to(ROOT)): primitive_calls(path) for path in service}
    assert {path: names for path, names in calls.items() if names - CALLERS_ALLOWED.get(path, set())} == {}
    assert calls["shared/refunds.py"] == set(GIVING_BACK)


def test_the_primitive_check_sees_a_call(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text("def f(gateway):\n    return gateway.void(1) or gateway.charge(2)\n")
    assert primitive_calls(tmp_path / "mine.py") == {"void"}
