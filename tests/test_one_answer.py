"""One answer type from a gateway's result to the V1 envelope, and one place that decides every
status (`shared/errors.py`): a second mapping, a literal status elsewhere or a second answer type
would fail here."""

from __future__ import annotations

import ast
import typing
from http import HTTPStatus
from pathlib import Path

import pytest

from shared import errors
from shared.errors import Answer
from shared.flow import PaymentService, unserved
from shared.reconcile import Decision, needs_attention_answer, refund_found_answer, reversal_answer

ROOT = Path(__file__).resolve().parent.parent
HTTP_STATUSES = {status.value for status in HTTPStatus if status.value >= 200}
"""1xx are left out: no answer of ours is one, and 100 is a common bound for other things."""
SERVED_CODE = ["shared", "ProcessPayment", "ProcessRefund", "ReconcileUnknown", "Health"]
"""The deployed code (tools/smoke.py's `Answer` is a client's reading of a response, not ours)."""


def sources(*tops: str) -> list[Path]:
    return [path for top in tops for path in sorted((ROOT / top).rglob("*.py"))]


def test_every_http_status_in_shared_comes_from_errors() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.value}"
        for path in sources("shared")
        if path.name != "errors.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and type(node.value) is int and node.value in HTTP_STATUSES
    ]
    assert found == [], "statuses are decided in shared/errors.py; use its names there"


def test_answers_are_built_only_in_errors() -> None:
    built = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in sources(*SERVED_CODE)
        if path != ROOT / "shared" / "errors.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and _called_name(node.func) == "Answer"
    ]
    assert built == []


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def test_the_flow_answers_with_the_one_answer_type() -> None:
    assert typing.get_type_hints(PaymentService.handle)["return"] is Answer
    assert typing.get_type_hints(unserved)["return"] is Answer
    internal = unserved({"BVMeta": '{"transactionId": "x"}'})
    assert (internal.status, internal.detail.statusCode) == (errors.INTERNAL_ERROR_STATUS, "internal_error")
    assert internal.headers["BVMeta"] == '{"transactionId": "x"}'


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (reversal_answer(Decision.VOIDED, 7, "p1", None), errors.VoidedByReconciliation),
        (reversal_answer(Decision.REFUNDED, 7, "p1", "r1"), errors.RefundedByReconciliation),
    ],
)
def test_the_reconcilers_answers_take_their_status_from_errors(
    answer: Answer, error: type[errors.ServiceError]
) -> None:
    assert (answer.status, answer.detail.statusCode) == (error.status, error.code)
    assert answer.detail.paymentTransactionId == "p1"


def test_the_reconcilers_other_answers_too() -> None:
    from gateways.base import GatewayResult
    from shared.idempotency import Record, State

    found = refund_found_answer(GatewayResult("r1", "refund", "00", "Approval", 200), 7)
    assert (found.status, found.detail.success) == (errors.OK_STATUS, True)
    record = Record("payment:7:k", "f", State.UNKNOWN, 0.0, 0.0, context={"merchantAccountId": 7})
    stuck = needs_attention_answer(record)
    assert (stuck.status, stuck.detail.statusCode) == (errors.NeedsAttention.status, "needs_attention")


def test_changing_an_answers_detail_redacts_a_gateways_text_again() -> None:
    answer = reversal_answer(Decision.VOIDED, 7, "p1", None).with_detail(responseMessage="card 4242424242424242")
    assert "4242424242424242" not in answer.body
