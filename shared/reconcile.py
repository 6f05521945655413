"""Resolve payments whose outcome stayed unknown: nobody retried them, so the LMS recorded a failure.

For each such payment past the deadline the reconciler asks the gateway, by our order id, whether
the charge exists; if it does it is voided, so no learner pays for a payment the LMS thinks failed.
Payments left `in_progress` by an instance that died mid-call are treated the same way. Each
decision is one audit line. Refunds of unknown outcome are left for the monolith's retry, which
looks the refund up by its order id (and sees an already voided payment as its own void) before
acting again; an unknown refund costs no learner money.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

from gateways.base import GatewayError, GatewayResult
from shared import audit
from shared.contract import Detail
from shared.errors import ServiceError
from shared.flow import Answer, PaymentService
from shared.idempotency import Record, State

logger = logging.getLogger("paymentgateway.reconcile")


class Decision(enum.StrEnum):
    VOIDED = "reconciled_voided"
    NOTHING_CHARGED = "reconciled_nothing_charged"
    STILL_UNKNOWN = "reconcile_still_unknown"


@dataclass(frozen=True)
class Outcome:
    scope: str
    decision: Decision
    void_id: str | None = None


VOIDED_DETAIL = (
    "The earlier attempt's outcome was unknown and nobody retried it, so reconciliation voided the "
    "charge; the card was not charged. Start a new payment if one is still wanted."
)


def reconcile_unknown(service: PaymentService, now: float) -> list[Outcome]:
    settings = service.settings
    store = service.idempotency
    due = [
        *store.in_state(State.UNKNOWN, now - settings.reconcile_after_seconds),
        *store.in_state(
            State.IN_PROGRESS, now - max(settings.idempotency_lease_seconds, settings.reconcile_after_seconds)
        ),
    ]
    outcomes = []
    for record in due:
        if record.context.get("operation") != "payment":
            continue
        # Taking the record over first means a retry arriving now gets 409 instead of racing us.
        taken = store.transition(record, state=State.IN_PROGRESS)
        if taken is None:
            continue
        outcome = _resolve(service, taken)
        _audit(taken, outcome)
        outcomes.append(outcome)
    removed = store.purge(now - settings.idempotency_retention_hours * 3600)
    if removed:
        logger.info("purged %d completed idempotency records past retention", removed)
    return outcomes


def _resolve(service: PaymentService, record: Record) -> Outcome:
    context = record.context
    store = service.idempotency
    try:
        cls = service.factory.gateway_class(int(context["gatewayTypeId"]))
        gateway, _ = service.factory.create(cls, int(context["merchantAccountId"]))
        voided: GatewayResult | None = gateway.cancel_payment(str(context["orderId"]))
    except (GatewayError, ServiceError, NotImplementedError) as error:
        logger.warning("reconciliation of %s could not finish: %s", record.scope, type(error).__name__)
        store.transition(record, state=State.UNKNOWN)
        return Outcome(record.scope, Decision.STILL_UNKNOWN)
    if voided is None:
        # Never charged: forget the key so the monolith's retry can charge afresh.
        store.release(record)
        return Outcome(record.scope, Decision.NOTHING_CHARGED)
    answer = Answer(
        409,
        Detail(
            success=False,
            statusCode="voided_by_reconciliation",
            gatewayHttpStatusCode=voided.http_status,
            responseMessage=voided.message,
            responseDetail=VOIDED_DETAIL,
            paymentTransactionId=voided.transaction_id,
            merchantAccountId=int(context["merchantAccountId"]),
        ),
    )
    store.transition(record, state=State.COMPLETED, status=answer.status, body=answer.body)
    return Outcome(record.scope, Decision.VOIDED, voided.transaction_id)


def _audit(record: Record, outcome: Outcome) -> None:
    context: dict[str, Any] = record.context
    audit.write(
        meta={key: context.get(key) for key in ("transactionId", "universityId", "userId")},
        success=outcome.decision is not Decision.STILL_UNKNOWN,
        data={
            "gatewayTypeId": context.get("gatewayTypeId"),
            "merchantAccountId": context.get("merchantAccountId"),
            "userId": context.get("userId"),
            "status": outcome.decision.value,
            "paymentTransactionId": outcome.void_id,
            "amount": context.get("amount"),
            "currencyType": context.get("currencyType"),
        },
    )
