"""The operator CLI for records reconciliation escalated, end to end on the simulator."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from gateways.simulator import LEDGER, SimulatorGateway
from shared import runtime
from shared.flow import Operation, PaymentService, order_id_for
from shared.idempotency import Record, State
from shared.reconcile import Decision, reconcile_unknown
from tests.support import SIMULATOR_ACCOUNT, install_service, new_meta, pay, payment_body
from tools import reconcile as tool


@pytest.fixture
def escalated(simulator_service: PaymentService, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], str]:
    """A payment whose charge exists but could not be looked up: in needs_attention after one attempt."""
    install_service(simulator_service.settings.model_copy(update=dict(reconcile_max_attempts=1)),
                    idempotency=simulator_service.idempotency)
    meta = new_meta()
    assert pay(payment_body(account="4999006200620062"), meta).status == 502

    def unreachable(gateway: SimulatorGateway, order_id: str) -> Any:
        raise TimeoutError("the gateway did not answer")

    with monkeypatch.context() as patch:
        patch.setattr(SimulatorGateway, "find_payment", unreachable)
        (outcome,) = reconcile_unknown(runtime.service(), now=time.time() + 601)
    assert outcome.decision is Decision.NEEDS_ATTENTION
    return meta, f"payment:{SIMULATOR_ACCOUNT}:{meta['transactionId']}"


def run(*argv: str) -> int:
    return tool.main(list(argv), store=runtime.service().idempotency)


def test_list_and_show_name_the_record_and_why(escalated: tuple[dict[str, Any], str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    meta, scope = escalated
    assert run("list") == tool.OK
    (line,) = capsys.readouterr().out.splitlines()
    order = order_id_for(Operation.PAYMENT, meta["transactionId"])
    assert line.startswith(f"{scope}\tpayment\taccount {SIMULATOR_ACCOUNT}\torder {order}\tattempts 1\t")
    assert "\tunexpected TimeoutError at test_reconcile_tool.py:" in line
    assert run("list", "--state", "unknown") == tool.OK
    assert capsys.readouterr().out == ""

    assert run("show", scope) == tool.OK
    shown = json.loads(capsys.readouterr().out)
    assert shown["state"] == "needs_attention" and shown["answer"]["detail"]["statusCode"] == "needs_attention"
    assert shown["reconciliation"]["attempts"] == 1


def test_operator_voids_by_hand_and_resolves(escalated: tuple[dict[str, Any], str]) -> None:
    meta, scope = escalated
    charge = LEDGER.by_order(SIMULATOR_ACCOUNT, order_id_for(Operation.PAYMENT, meta["transactionId"]))
    assert charge is not None
    charge.voided = True  # the operator voids it in the gateway's portal

    assert run("resolve", scope, "--voided") == tool.REFUSED  # the record never learned the charge's id
    assert run("resolve", scope, "--voided", "--payment-id", charge.transaction_id) == tool.OK
    retried = pay(payment_body(account="4999006200620062"), meta)
    assert (retried.status, retried.detail["statusCode"]) == (400, "voided_by_reconciliation")
    assert retried.detail["paymentTransactionId"] == charge.transaction_id
    assert "an operator voided the charge" in retried.detail["responseDetail"]
    assert run("resolve", scope, "--voided", "--payment-id", "x") == tool.REFUSED  # completed: not ours


def test_operator_retries_once_the_cause_is_fixed(escalated: tuple[dict[str, Any], str]) -> None:
    meta, scope = escalated
    assert run("retry", scope) == tool.OK
    record = runtime.service().idempotency.get(scope)
    assert record is not None and record.state is State.UNKNOWN and record.reconciliation["attempts"] == 0
    assert [o.decision for o in reconcile_unknown(runtime.service(), now=time.time() + 601)] == [Decision.VOIDED]
    assert pay(payment_body(account="4999006200620062"), meta).detail["statusCode"] == "voided_by_reconciliation"


def test_nothing_charged_forgets_the_key_and_refund_options_must_fit(escalated: tuple[dict[str, Any], str]) -> None:
    _, scope = escalated
    assert run("resolve", scope, "--nothing-refunded") == tool.REFUSED
    assert run("resolve", scope, "--nothing-charged") == tool.OK
    assert runtime.service().idempotency.get(scope) is None
    assert run("show", scope) == tool.REFUSED
    assert run("retry", scope) == tool.REFUSED


def test_a_refund_is_resolved_with_its_refund_id(simulator_service: PaymentService) -> None:
    store = simulator_service.idempotency
    now = time.time()
    scope = f"refund:{SIMULATOR_ACCOUNT}:{uuid.uuid4()}"
    context = {"operation": "refund", "merchantAccountId": SIMULATOR_ACCOUNT, "gatewayTypeId": 900, "orderId": "BVRx"}
    assert store.claim(Record(scope, "fp", State.NEEDS_ATTENTION, now, now, 502, "{}", context))[0]
    assert run("resolve", scope, "--voided") == tool.REFUSED
    assert run("resolve", scope, "--refunded", "sim_refund_1") == tool.OK
    record = store.get(scope)
    assert record is not None and record.state is State.COMPLETED and record.status == 200
    detail = json.loads(record.body or "{}")["detail"]
    assert detail["paymentTransactionId"] == "sim_refund_1" and detail["success"] is True


def test_usage_and_settings_errors_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tool.main(["resolve", "payment:1:k"]) == tool.ERROR  # no outcome given
    monkeypatch.setenv("IDEMPOTENCY_STORE", "table")
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    monkeypatch.delenv("AzureWebJobsStorage__tableServiceUri", raising=False)
    assert tool.main(["list"]) == tool.ERROR
