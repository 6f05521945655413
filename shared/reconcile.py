"""End every outcome that stayed unknown: nobody retried it, so the LMS recorded a failure.

Each run (the `ReconcileUnknown` timer) takes every record left `unknown` past
RECONCILE_AFTER_SECONDS, and every `in_progress` one older than the lease (its instance died
mid-call), and asks the gateway by our order id what happened:

- a payment: no charge found means nothing was charged, and the key is released so a retry charges
  afresh. A charge found is reversed in full: voided while it can be, refunded (linked to the
  charge) once it has settled. A retry is then told `voided_by_reconciliation` or
  `refunded_by_reconciliation`.
- a refund: found by its own order id means it was made, and a retry gets its success; not found
  means nothing was refunded, and the key is released.

The step that acts (the reversal, with its own order id) is written to the record before the gateway
call, so a run that dies halfway is resumed by the next one, which looks the reversal up before
acting again. A record that still cannot be settled after RECONCILE_MAX_ATTEMPTS runs (or at once, if
its gateway cannot look anything up) moves to the terminal `needs_attention` state with an ERROR
audit line for operators. One record's failure never stops the others, and the purge of records past
the retention always runs.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gateways.base import Gateway, GatewayResult, RefundRequest
from gateways.cards import redact_card_numbers
from gateways.errors import AlreadyVoided, GatewayError
from shared import audit
from shared.errors import (
    Answer,
    NeedsAttention,
    RefundedByReconciliation,
    ServiceError,
    VoidedByReconciliation,
    approved,
    from_service_error,
    where,
)
from shared.flow import PaymentService
from shared.idempotency import IdempotencyStore, Record, State
from shared.refunds import refund_or_void
from shared.settings import Settings

logger = logging.getLogger("paymentgateway.reconcile")


class Decision(enum.StrEnum):
    VOIDED = "reconciled_voided"
    REFUNDED = "reconciled_refunded"
    NOTHING_CHARGED = "reconciled_nothing_charged"
    REFUND_FOUND = "reconciled_refund_found"
    NOTHING_REFUNDED = "reconciled_nothing_refunded"
    STILL_UNKNOWN = "reconcile_still_unknown"
    NEEDS_ATTENTION = "reconcile_needs_attention"


@dataclass(frozen=True)
class Outcome:
    scope: str
    decision: Decision
    transaction_id: str | None = None
    """The void's or refund's id (or the reversed charge's, when the void's own id is not known)."""
    reason: str | None = None


REVERSAL_REQUESTED = "reversal_requested"
"""The step written before the reversal's gateway call: the charge's id and the reversal's order id."""

GATEWAY_CALLS_PER_RECORD = 4
"""At most: find the reversal, find the charge, then the refund's own look-up and its void or refund."""
PURGE_RESERVE_SECONDS = 30.0

VOIDED_DETAIL = (
    "The earlier attempt's outcome was unknown and nobody retried it in time, so {who} voided the "
    "charge before it settled: the card was not charged. Start a new payment if one is still wanted."
)
REFUNDED_DETAIL = (
    "The earlier attempt's outcome was unknown and nobody retried it in time. Its charge had already "
    "settled, so {who} refunded it in full (refund {refund_id}): the card was charged and refunded "
    "the same amount. Start a new payment if one is still wanted."
)
REFUND_FOUND_DETAIL = (
    "Refund approved. The answer to the earlier attempt was lost; {who} found the refund at the "
    "gateway (refund {refund_id})."
)
NEEDS_ATTENTION_DETAIL = (
    "The earlier attempt's outcome is still unknown: reconciliation could not settle it. Operations "
    "have been alerted and will settle it by hand. Do not repeat this {operation} with a new "
    "transactionId until they have."
)


def reversal_order_id(order_id: str) -> str:
    """Our order id for the void or refund that reverses the charge made with `order_id`. Derived
    from it, so a resumed run looks up the same reversal; the trailing letter keeps every digit run
    as short as it was (a gateway may mask long Luhn-valid runs)."""
    return order_id + "R"


def reconcile_unknown(service: PaymentService, now: float) -> list[Outcome]:
    settings = service.settings
    store = service.idempotency
    started = time.monotonic()
    budget = _taking_budget(settings)
    outcomes: list[Outcome] = []
    taken = 0
    with service.telemetry.reconcile_run() as run:
        try:
            for record in _due(store, settings, now):
                if taken and time.monotonic() - started > budget:
                    # One record can take GATEWAY_CALLS_PER_RECORD gateway timeouts; the run must end
                    # (and purge) before the host's functionTimeout stops it.
                    logger.warning(
                        "reconciliation run out of time after %d records; the rest wait for the next run", taken
                    )
                    break
                taken += 1
                outcome = _reconcile_one(service, record)
                if outcome is not None:
                    outcomes.append(outcome)
        except Exception as error:  # noqa: BLE001 - the listing failed: what was settled stays, the purge still runs
            logger.error("reconciliation could not list the unknown records: %s", _reason(error))
        finally:
            _purge(store, now - settings.idempotency_retention_hours * 3600)
            run.finished(taken)
    return outcomes


def _due(store: IdempotencyStore, settings: Settings, now: float) -> Iterator[Record]:
    yield from store.in_state(State.UNKNOWN, now - settings.reconcile_after_seconds)
    # An in-progress record is reconciled only once its lease is over: until then its request (or
    # another reconciliation run) may still be acting.
    stale = now - max(settings.idempotency_lease_seconds, settings.reconcile_after_seconds)
    yield from store.in_state(State.IN_PROGRESS, stale)


def _taking_budget(settings: Settings) -> float:
    per_call = settings.gateway_connect_timeout_seconds + settings.gateway_timeout_seconds
    per_record = GATEWAY_CALLS_PER_RECORD * per_call
    return max(0.0, settings.function_timeout_seconds - per_record - PURGE_RESERVE_SECONDS)


def _purge(store: IdempotencyStore, updated_before: float) -> None:
    try:
        removed = store.purge(updated_before)
    except Exception as error:  # noqa: BLE001 - logged; the next run purges again
        logger.error("purging idempotency records past retention failed: %s", _reason(error))
        return
    if removed:
        logger.info("purged %d idempotency records past retention", removed)


class _Lost(Exception):
    """Another instance changed the record since this run read it: it is theirs now."""


class _Unusable(Exception):
    """The record lacks what reconciliation needs (a record written by a broken or older release)."""


class _Reconciliation:
    """One record being reconciled: its latest version, saved before each step."""

    def __init__(self, service: PaymentService, record: Record) -> None:
        self.service = service
        self.record = record
        context = record.context
        try:
            self.operation = str(context["operation"])
            self.order_id = str(context["orderId"])
            self.merchant = int(context["merchantAccountId"])
            self.gateway_type = int(context["gatewayTypeId"])
        except (KeyError, TypeError, ValueError):
            raise _Unusable("the record lacks its operation, order id, merchant account or gateway type") from None
        if self.operation not in ("payment", "refund"):
            raise _Unusable(f"the record's operation {self.operation!r} is neither payment nor refund")

    @property
    def progress(self) -> dict[str, Any]:
        return self.record.reconciliation

    def gateway(self) -> Gateway:
        factory = self.service.factory
        return factory.create(factory.gateway_class(self.gateway_type), self.merchant)[0]

    def save(self, **changes: Any) -> None:
        saved = self.service.idempotency.transition(self.record, **changes)
        if saved is None:
            raise _Lost
        self.record = saved

    def finish(self, state: State, answer: Answer, **progress: Any) -> None:
        self.save(state=state, status=answer.status, body=answer.body, reconciliation={**self.progress, **progress})

    def release(self) -> None:
        self.service.idempotency.release(self.record)


def _reconcile_one(service: PaymentService, record: Record) -> Outcome | None:
    """One attempt at one record; whatever fails here (the store included) ends only this attempt."""
    try:
        attempts = int(record.reconciliation.get("attempts", 0)) + 1
        # Taking the record over first means a retry arriving now gets 409 instead of racing us.
        taken = service.idempotency.transition(
            record, state=State.IN_PROGRESS, reconciliation={**record.reconciliation, "attempts": attempts}
        )
        if taken is None:
            return None
        outcome = _attempt(service, taken)
    except _Lost:
        logger.warning("reconciliation of %s stopped: another instance changed the record", record.scope)
        return None
    except Exception as error:  # noqa: BLE001 - the store failed: the record is due again (after its lease)
        logger.error("reconciliation of %s failed in the store: %s", record.scope, _reason(error))
        return None
    _report(taken, outcome)
    service.telemetry.reconciled(
        operation=str(taken.context.get("operation")),
        gateway_type_id=taken.context.get("gatewayTypeId"),
        decision=outcome.decision.value,
    )
    return outcome


def _attempt(service: PaymentService, taken: Record) -> Outcome:
    run: _Reconciliation | None = None
    try:
        run = _Reconciliation(service, taken)
        return _settle_payment(run) if run.operation == "payment" else _settle_refund(run)
    except _Lost:
        raise
    except Exception as error:  # noqa: BLE001 - a gateway error, a malformed answer or a bug: this record only
        latest = run.record if run is not None else taken
        return _not_settled(service, latest, _reason(error), final=_cannot_ever_settle(error))


def _settle_payment(run: _Reconciliation) -> Outcome:
    gateway = run.gateway()
    progress = run.progress
    if progress.get("step") == REVERSAL_REQUESTED:
        # An earlier run may have reversed the charge and died before writing down the outcome.
        payment_id, reversal_id = str(progress["paymentId"]), str(progress["reversalOrderId"])
        refund = gateway.find_refund(reversal_id)
        if refund is not None:
            return _reversed(run, Decision.REFUNDED, payment_id, refund)
        if gateway.find_payment(run.order_id) is None:
            return _reversed(run, Decision.VOIDED, payment_id, None)
    else:
        charge = gateway.find_payment(run.order_id)
        if charge is None:
            # Never charged: forget the key so the monolith's retry can charge afresh.
            run.release()
            return Outcome(run.record.scope, Decision.NOTHING_CHARGED)
        payment_id, reversal_id = charge.transaction_id, reversal_order_id(run.order_id)
        step = {"step": REVERSAL_REQUESTED, "paymentId": payment_id, "reversalOrderId": reversal_id}
        run.save(reconciliation={**progress, **step})
    reversal = RefundRequest(
        payment_id=payment_id,
        amount=None,
        order_id=reversal_id,
        comment="Reversed by reconciliation: the LMS never learned this payment's outcome",
    )
    try:
        # Voided while it can be, refunded (linked to the charge) once it has settled.
        result = refund_or_void(gateway, reversal)
    except AlreadyVoided:
        return _reversed(run, Decision.VOIDED, payment_id, None)
    return _reversed(run, Decision.VOIDED if result.action == "void" else Decision.REFUNDED, payment_id, result)


def _reversed(run: _Reconciliation, decision: Decision, payment_id: str, result: GatewayResult | None) -> Outcome:
    reversal_id = result.transaction_id if result is not None else None
    answer = reversal_answer(decision, run.merchant, payment_id, reversal_id, result=result)
    run.finish(State.COMPLETED, answer, outcome=decision.value)
    return Outcome(run.record.scope, decision, reversal_id or payment_id)


def reversal_answer(
    decision: Decision,
    merchant: int | None,
    payment_id: str,
    reversal_id: str | None,
    *,
    result: GatewayResult | None = None,
    who: str = "reconciliation",
) -> Answer:
    """What a retry of a payment reversed after its outcome stayed unknown is told: `decision` is
    VOIDED or REFUNDED; `paymentTransactionId` is the reversed charge, the id the LMS would have got
    had the answer arrived."""
    if decision is Decision.VOIDED:
        answer = from_service_error(VoidedByReconciliation(VOIDED_DETAIL.format(who=who)), merchant)
    else:
        detail = REFUNDED_DETAIL.format(who=who, refund_id=reversal_id or "unknown")
        answer = from_service_error(RefundedByReconciliation(detail), merchant)
    if result is not None:
        answer = answer.with_detail(responseMessage=result.message, gatewayHttpStatusCode=result.http_status)
    return answer.with_detail(paymentTransactionId=payment_id)


def refund_found_answer(found: GatewayResult, merchant: int, *, who: str = "reconciliation") -> Answer:
    """What a retry of a refund whose answer was lost is told once the refund is known to exist."""
    detail = REFUND_FOUND_DETAIL.format(who=who, refund_id=found.transaction_id)
    return approved(found, merchant).with_detail(responseDetail=detail)


def needs_attention_answer(record: Record) -> Answer:
    operation = "refund" if record.context.get("operation") == "refund" else "payment"
    return from_service_error(NeedsAttention(NEEDS_ATTENTION_DETAIL.format(operation=operation)), _merchant(record))


def _settle_refund(run: _Reconciliation) -> Outcome:
    found = run.gateway().find_refund(run.order_id)
    if found is None:
        # Nothing refunded under this refund's order id: forget the key; a retry refunds afresh,
        # and sees "already voided" should the lost request have been a void.
        run.release()
        return Outcome(run.record.scope, Decision.NOTHING_REFUNDED)
    run.finish(State.COMPLETED, refund_found_answer(found, run.merchant), outcome=Decision.REFUND_FOUND.value)
    return Outcome(run.record.scope, Decision.REFUND_FOUND, found.transaction_id)


def _not_settled(service: PaymentService, record: Record, reason: str, *, final: bool) -> Outcome:
    attempts = int(record.reconciliation.get("attempts", 1))
    progress = {**record.reconciliation, "reason": reason}
    store = service.idempotency
    if final or attempts >= service.settings.reconcile_max_attempts:
        answer = needs_attention_answer(record)
        saved = store.transition(
            record, state=State.NEEDS_ATTENTION, status=answer.status, body=answer.body, reconciliation=progress
        )
        decision = Decision.NEEDS_ATTENTION
    else:
        saved = store.transition(record, state=State.UNKNOWN, reconciliation=progress)
        decision = Decision.STILL_UNKNOWN
    if saved is None:
        raise _Lost
    return Outcome(record.scope, decision, reason=reason)


def _cannot_ever_settle(error: Exception) -> bool:
    # A gateway that cannot look anything up, or a record without what is needed to ask: trying
    # again every five minutes would only delay the operator.
    return isinstance(error, NotImplementedError | _Unusable)


def _reason(error: BaseException) -> str:
    if isinstance(error, GatewayError):
        code = f" ({error.code})" if error.code else ""
        return redact_card_numbers(f"{type(error).__name__}{code}: {error.message}")
    if isinstance(error, ServiceError):
        return f"{type(error).__name__}: {error.detail}"
    if isinstance(error, NotImplementedError | _Unusable):
        return str(error)
    # Anything else may carry a gateway's text or request data: its type and where it happened only.
    return f"unexpected {type(error).__name__} at {where(error)}"


def _merchant(record: Record) -> int | None:
    try:
        return int(record.context["merchantAccountId"])
    except (KeyError, TypeError, ValueError):
        return None


def _report(record: Record, outcome: Outcome) -> None:
    context: dict[str, Any] = record.context
    attempts = record.reconciliation.get("attempts")
    if outcome.decision is Decision.STILL_UNKNOWN:
        logger.warning(
            "reconciliation attempt %s of %s for merchant account %s, order %s, did not settle it: %s",
            attempts, context.get("operation"), context.get("merchantAccountId"), context.get("orderId"),
            outcome.reason,
        )
        return
    audit.write(
        meta={key: context.get(key) for key in ("transactionId", "universityId", "userId")},
        success=outcome.decision is not Decision.NEEDS_ATTENTION,
        data={
            "gatewayTypeId": context.get("gatewayTypeId"),
            "merchantAccountId": context.get("merchantAccountId"),
            "userId": context.get("userId"),
            "status": outcome.decision.value,
            "paymentTransactionId": outcome.transaction_id,
            "amount": context.get("amount"),
            "currencyType": context.get("currencyType"),
            "orderId": context.get("orderId"),
            "operation": context.get("operation"),
            "attempts": attempts,
            "reason": outcome.reason,
        },
    )
