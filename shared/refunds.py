"""Giving money back on a payment: the one void-or-refund policy, for every gateway.

A gateway reports a payment's status and carries out a void or a refund when told; which of them,
and whether at all, is decided here once (ActiveMerchant's separate `void` and `refund`, with
Hyperswitch's router choosing between them). The flow and the reconciler both call it.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from gateways.base import Gateway, GatewayResult, PaymentStatus, RefundRequest
from gateways.errors import AlreadyVoided, NotRefundable, RequestRejected


def refund_or_void(gateway: Gateway, request: RefundRequest) -> GatewayResult:
    """Give back `request.amount` of the payment (None: all that is left). A void while the payment
    can be voided, which reverses it before any money moves; a refund linked to it once it can be
    refunded. Refused, before any write, when the transaction is not a payment, is voided, has less
    left than asked, or can be neither voided nor refunded now."""
    status = gateway.payment_status(request.payment_id)
    amount = request.amount
    if not status.is_payment:
        # A refund is a transaction of its own, voidable until it settles: "refunding" it would
        # void it, and the learner's refund would be cancelled.
        raise RequestRejected(f"transaction {status.transaction_id} is not a payment", code="not_a_payment")
    if status.voided:
        raise AlreadyVoided("payment already voided", code="voided")
    left = _left(status)
    if amount is not None and left is not None and amount > left:
        raise RequestRejected(_too_large(amount, status), code="amount_too_large")
    # A void gives back the whole payment: right only while nothing of it has been refunded.
    whole = not status.refunded and (amount is None or amount == status.amount)
    part = amount if amount is not None else left
    if status.voidable:
        if whole:
            voided = gateway.void(status.transaction_id)
            # Some gateways answer a void with "0.00" or nothing; what it gave back is the payment.
            return voided if voided.amount is not None else replace(voided, amount=status.amount)
        if status.voidable_in_part and part is not None:
            return gateway.void(status.transaction_id, part)
        if not status.refundable:
            raise NotRefundable(
                "partial refunds are possible only after the payment settles; "
                "refund the full amount now (a void) or the part after settlement",
                code="partial_before_settlement",
            )
    if status.refundable:
        return gateway.refund(status.transaction_id, amount, request.order_id, request.comment)
    state = status.state or "unknown"
    raise NotRefundable(
        f"payment can be neither voided nor refunded now (status: {state})", code=status.state or "not_refundable"
    )


def _left(status: PaymentStatus) -> Decimal | None:
    return None if status.amount is None else status.amount - status.refunded


def _too_large(amount: Decimal, status: PaymentStatus) -> str:
    if status.refunded:
        return f"refund amount {amount} exceeds the {_left(status)} left of the payment's {status.amount}"
    return f"refund amount {amount} exceeds the payment's {status.amount}"
