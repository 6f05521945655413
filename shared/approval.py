"""An approval for another amount than the one asked is not a success.

A gateway may approve less than asked on merchants with partial authorization (the amount a prepaid
card had left): reported as paid, the LMS would record the full fee while the learner paid part of
it. The policy is the same for every gateway, so it lives here once.
"""

from __future__ import annotations

from decimal import Decimal

from gateways.base import Gateway, GatewayResult
from gateways.errors import Declined, GatewayError, OutcomeUnknown, StandardError


def approved_in_full(gateway: Gateway, result: GatewayResult, asked: Decimal) -> GatewayResult:
    """`result` when the gateway approved exactly `asked` (or did not say how much). Otherwise the
    approval is voided and answered as a decline; when the void fails or its outcome is unknown the
    approval may still stand, so the answer is unknown: never "nothing charged"."""
    if result.amount is None or result.amount == asked:
        return result
    approved = f"{result.amount:.2f} of the {asked:.2f} asked"
    try:
        gateway.void(result.transaction_id)
    except GatewayError as error:
        raise OutcomeUnknown(
            f"{gateway.name} approved only {approved}, and voiding that approval failed ({error.message}): "
            "the partial charge may still stand",
            code="partial_approval_not_voided",
            transaction_id=result.transaction_id,
        ) from None
    raise Declined(
        f"{gateway.name} approved only {approved} (a partial approval); the approval was voided "
        "and nothing was charged",
        code="partial_approval",
        http_status=result.http_status,
        standard=StandardError.PARTIAL_APPROVAL,
        transaction_id=result.transaction_id,
    )
