"""The one place that decides which HTTP status and envelope each failure gets.

V1's rule stays: a failure answers with a 4xx, and a 5xx only ever means a fault of this service
(credentials it cannot load, an outcome it cannot know, a bug). Gateway answers keep the gateway's
own code in `statusCode` and the standard code in `errorCode`.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import ClassVar

from gateways.errors import (
    CredentialsRejected,
    Declined,
    GatewayError,
    GatewayMisconfigured,
    GatewayUnreachable,
    NotRefundable,
    OutcomeUnknown,
    RequestRejected,
    TransactionNotFound,
)

RETRY_AFTER_SECONDS = "5"

OUTCOME_UNKNOWN_DETAIL = (
    "The gateway may have carried out this request but its answer was lost, so the outcome is not "
    "known. Retry with the same transactionId (or Idempotency-Key) to learn it; do not start a new "
    "payment, which could charge the card twice."
)

INTERNAL_ERROR_DETAIL = (
    "The payment service failed unexpectedly. Retry with the same transactionId (or Idempotency-Key): "
    "the retry answers with this request's outcome and never charges twice."
)


class ServiceError(Exception):
    """A request this service refuses or cannot serve; the message is safe to show and log."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, detail: str, *, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


class IncompleteRequest(ServiceError):
    status, code = 400, "incomplete_request"


class InvalidRequest(ServiceError):
    status, code = 422, "validation_error"


class NotATransactionId(ServiceError):
    """A refund names an id that cannot be one of this gateway's transactions (its shape is wrong):
    there is no such payment there, and the id never reaches the gateway's URL."""

    status, code = 404, "transaction_not_found"


class CredentialsNotAllowed(ServiceError):
    status, code = 400, "credentials_not_allowed"


class UnknownGatewayType(ServiceError):
    status, code = 400, "unknown_gateway_type"


class GatewayTypeMismatch(ServiceError):
    status, code = 400, "gateway_type_mismatch"


class CurrencyMismatch(ServiceError):
    """The request's currency is not the merchant account's: Payload would charge the account's."""

    status, code = 422, "currency_mismatch"


class MerchantAccountNotConfigured(ServiceError):
    """No secret is stored for the account: it is not set up here, and no retry changes that until an
    operator stores one. A 503 would have the monolith retry it forever."""

    status, code = 400, "merchant_account_not_configured"


class InvalidRequestCredentials(ServiceError):
    """Credentials sent in the body (ALLOW_REQUEST_CREDENTIALS) lack a field or the gateway refused
    them: the caller's to fix, so not retryable, and no reason to re-read our own."""

    status, code = 400, "invalid_request_credentials"


class CredentialsUnavailable(ServiceError):
    """Key Vault (or the credentials file) cannot be read just now: this service's fault, retryable."""

    status, code = 503, "credentials_unavailable"


class CredentialsMalformed(CredentialsUnavailable):
    """The account's stored secret exists but cannot be used (not JSON, no gatewayTypeId, a field
    missing). Our configuration, not the caller's: 503, so the caller's retry works once operations
    fix the secret, with its own code so they can tell it from an outage."""

    code = "credentials_malformed"


class RequestInProgress(ServiceError):
    status, code = 409, "request_in_progress"


class IdempotencyKeyReused(ServiceError):
    status, code = 422, "idempotency_key_reused"


class StorageUnavailable(ServiceError):
    """The idempotency store refused or did not answer in time before any gateway call."""

    status, code = 503, "storage_unavailable"


# The reconciler's stored answers, replayed to a retry of a request whose outcome it settled. Final
# answers that nothing was (or is still) charged, like a decline: 400, not 409, which callers read
# as "retry shortly".
class VoidedByReconciliation(ServiceError):
    status, code = 400, "voided_by_reconciliation"


class RefundedByReconciliation(ServiceError):
    status, code = 400, "refunded_by_reconciliation"


class NeedsAttention(ServiceError):
    """The outcome stayed unknown through every reconciliation attempt; an operator settles it."""

    status, code = 502, "needs_attention"


def where(error: BaseException) -> str:
    """Where `error` was raised, innermost frame first (file:line): what to log of an unexpected
    exception, whose message or locals could hold request data."""
    frames = traceback.extract_tb(error.__traceback__)
    return " <- ".join(f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}" for frame in reversed(frames))


@dataclass(frozen=True)
class Failure:
    status: int
    status_code: str
    message: str
    detail: str
    gateway_status: int | None = None
    error_code: str | None = None
    transaction_id: str | None = None
    errors: list[dict[str, str]] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def from_service_error(error: ServiceError) -> Failure:
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if error.status in (409, 503) else {}
    return Failure(error.status, error.code, error.detail, error.detail, errors=error.errors, headers=headers)


def from_store_fault(*, gateway_called: bool) -> Failure:
    """The idempotency store (or anything else of ours) failed. Before any gateway call nothing
    was sent: 503, retry. After one, the gateway may have acted and the outcome could not be
    recorded: never "nothing charged", always outcome unknown, which the retry (or the
    reconciler) settles."""
    if not gateway_called:
        return from_service_error(
            StorageUnavailable(
                "The payment service's storage is unavailable; nothing was sent to the gateway. "
                "Retry shortly with the same transactionId."
            )
        )
    lost = OutcomeUnknown("the gateway was called but this service lost track of the outcome", code="unrecorded")
    return from_gateway_error(lost, OUTCOME_UNKNOWN_DETAIL)


def internal_failure() -> Failure:
    """A fault of this service (a bug, settings it cannot load). The flow answers faults after a
    gateway call as outcome unknown, so this one says nothing about what was charged."""
    return Failure(500, "internal_error", "internal error", INTERNAL_ERROR_DETAIL)


GATEWAY_FAILURE_CODES = frozenset({
    "outcome_unknown", "gateway_unreachable", "credentials_rejected", "gateway_misconfigured",
    "not_refundable", "transaction_not_found", "declined", "request_rejected", "gateway_error",
})
"""The `statusCode`s `_gateway_status` chooses for a gateway failure; any other `statusCode` beside an
`errorCode` is the gateway's own code."""


def _gateway_status(error: GatewayError) -> tuple[int, str, dict[str, str]]:
    """HTTP status, fallback statusCode and extra headers for a gateway failure."""
    retry = {"Retry-After": RETRY_AFTER_SECONDS}
    if isinstance(error, OutcomeUnknown):
        return 502, "outcome_unknown", {}
    if isinstance(error, GatewayUnreachable):
        return 503, "gateway_unreachable", retry
    if isinstance(error, CredentialsRejected):
        # The stored credentials are wrong: security must rotate them. The caller did nothing wrong.
        return 503, "credentials_rejected", retry
    if isinstance(error, GatewayMisconfigured):
        # Our gateway URL (or proxy) is wrong: ops must fix it, then the caller's retry goes through.
        return 503, "gateway_misconfigured", retry
    if isinstance(error, NotRefundable):
        return 409, "not_refundable", {}
    if isinstance(error, TransactionNotFound):
        return 404, "transaction_not_found", {}
    if isinstance(error, Declined | RequestRejected):
        return 400, "declined" if isinstance(error, Declined) else "request_rejected", {}
    return 400, "gateway_error", {}


def from_gateway_error(error: GatewayError, detail: str) -> Failure:
    status, fallback_code, headers = _gateway_status(error)
    # For outcomes this service decides (unknown, unreachable, credentials) the caller branches on
    # our code, so a gateway's own code (a timeout's 62, an HTTP 401) must not hide it.
    ours = isinstance(error, OutcomeUnknown | GatewayUnreachable | CredentialsRejected | GatewayMisconfigured)
    status_code = fallback_code if ours else (error.code or fallback_code)
    # A gateway's text is not ours: `Detail` redacts card numbers from it, in every envelope.
    return Failure(
        status=status,
        status_code=status_code,
        message=error.message,
        detail=detail,
        gateway_status=error.http_status,
        error_code=str(error.standard),
        transaction_id=error.transaction_id,
        headers=headers,
    )
