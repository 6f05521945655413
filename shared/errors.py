"""The one place that decides which HTTP status and envelope every answer gets: a gateway's
result, each failure (the 500 included) and the reconciler's stored answers.

There is one answer type, `Answer` (status, envelope, headers), from a gateway's result to the
response the function writes; it is built only here. V1's rule stays: a failure answers with a
4xx, and a 5xx only ever means a fault of this service (credentials it cannot load, an outcome it
cannot know, a bug). Gateway answers keep the gateway's own code in `statusCode` and the standard
code in `errorCode`.
"""

from __future__ import annotations

import functools
import traceback
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from gateways.base import GatewayResult
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
from shared.contract import Detail, Envelope

OK_STATUS = 200
INTERNAL_ERROR_STATUS = 500
UNKNOWN_STATUS = 502
"""Outcome unknown, and the reconciler's `needs_attention`: the gateway may have acted."""
UNAVAILABLE_STATUS = 503
"""Retry later: nothing was done (storage, credentials, the gateway out of reach)."""
RETRY_AFTER_SECONDS = "5"

SUCCESS_DETAIL = {
    "sale": "Payment approved",
    "void": "Payment voided before settlement; the card will not be charged",
    "refund": "Refund approved",
}

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

    status: ClassVar[int] = INTERNAL_ERROR_STATUS
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


class TokenNotAccepted(ServiceError):
    """The card token's type is not one the account's gateway takes: refused before any call, naming
    the types it does take."""

    status, code = 422, "token_not_accepted"


class CardNumberNotAccepted(ServiceError):
    """A card number for a gateway that takes only card tokens: refused before any call."""

    status, code = 422, "card_number_not_accepted"


class CredentialsNotAllowed(ServiceError):
    status, code = 400, "credentials_not_allowed"


class UnknownGatewayType(ServiceError):
    status, code = 400, "unknown_gateway_type"


class GatewayTypeMismatch(ServiceError):
    status, code = 400, "gateway_type_mismatch"


class CurrencyMismatch(ServiceError):
    """The request's currency is not the merchant account's: a gateway that takes no currency on the
    wire would charge the account's."""

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

    status, code = UNAVAILABLE_STATUS, "credentials_unavailable"


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

    status, code = UNAVAILABLE_STATUS, "storage_unavailable"


# The reconciler's stored answers, replayed to a retry of a request whose outcome it settled. Final
# answers that nothing was (or is still) charged, like a decline: 400, not 409, which callers read
# as "retry shortly".
class VoidedByReconciliation(ServiceError):
    status, code = 400, "voided_by_reconciliation"


class RefundedByReconciliation(ServiceError):
    status, code = 400, "refunded_by_reconciliation"


class NeedsAttention(ServiceError):
    """The outcome stayed unknown through every reconciliation attempt; an operator settles it."""

    status, code = UNKNOWN_STATUS, "needs_attention"


def where(error: BaseException) -> str:
    """Where `error` was raised, innermost frame first (file:line): what to log of an unexpected
    exception, whose message or locals could hold request data."""
    frames = traceback.extract_tb(error.__traceback__)
    return " <- ".join(f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}" for frame in reversed(frames))


def is_fault(status: int) -> bool:
    """Whether `status` says the fault is this service's (a 5xx), not the request's."""
    return status >= INTERNAL_ERROR_STATUS


@dataclass(frozen=True)
class Answer:
    """What a call is answered: the HTTP status, the V1 envelope's `detail`, and headers."""

    status: int
    detail: Detail
    headers: dict[str, str] = field(default_factory=dict)
    masked_card: str | None = None
    """For the audit line of a sale made with a card token: the card as the gateway's answer told it.
    Never part of the envelope."""

    @functools.cached_property
    def body(self) -> str:
        return Envelope(detail=self.detail).to_json()

    def with_detail(self, **changes: Any) -> Answer:
        """The same answer with some of its `detail` changed; the status stays what it was decided to
        be. Validated again, so a gateway's text put in is redacted like any other."""
        detail = Detail.model_validate({**self.detail.model_dump(), **changes})
        return replace(self, detail=detail)

    def with_headers(self, headers: dict[str, str]) -> Answer:
        return replace(self, headers={**self.headers, **headers})


def approved(result: GatewayResult, merchant_account_id: int) -> Answer:
    return Answer(
        OK_STATUS,
        Detail(
            success=True,
            statusCode=result.code,
            gatewayHttpStatusCode=result.http_status,
            responseMessage=result.message,
            responseDetail=SUCCESS_DETAIL[result.action],
            paymentTransactionId=result.transaction_id,
            merchantAccountId=merchant_account_id,
        ),
        masked_card=_masked_last_four(result.last_four),
    )


def _masked_last_four(last_four: str | None) -> str | None:
    # A gateway's answer is not ours: only four ASCII digits are taken as the last four.
    if last_four is None or not (len(last_four) == 4 and last_four.isascii() and last_four.isdigit()):
        return None
    return "x" * 12 + last_four


def replayed(status: int, body: str) -> Answer:
    """A stored answer given again to a retry: the status and envelope decided the first time."""
    return Answer(status, Envelope.model_validate_json(body).detail, {"Idempotent-Replayed": "true"})


def _failed(
    status: int,
    code: str,
    message: str,
    detail: str,
    merchant_account_id: int | None,
    *,
    gateway_status: int | None = None,
    error_code: str | None = None,
    transaction_id: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    return Answer(
        status,
        Detail(
            success=False,
            statusCode=code,
            gatewayHttpStatusCode=gateway_status,
            responseMessage=message,
            responseDetail=detail,
            paymentTransactionId=transaction_id,
            merchantAccountId=merchant_account_id,
            errorCode=error_code,
            errors=errors,
        ),
        headers or {},
    )


def from_service_error(error: ServiceError, merchant_account_id: int | None = None) -> Answer:
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if error.status in (409, UNAVAILABLE_STATUS) else {}
    return _failed(
        error.status, error.code, error.detail, error.detail, merchant_account_id, errors=error.errors, headers=headers
    )


def from_store_fault(*, gateway_called: bool, merchant_account_id: int | None = None) -> Answer:
    """The idempotency store (or anything else of ours) failed. Before any gateway call nothing
    was sent: 503, retry. After one, the gateway may have acted and the outcome could not be
    recorded: never "nothing charged", always outcome unknown, which the retry (or the
    reconciler) settles."""
    if not gateway_called:
        return from_service_error(
            StorageUnavailable(
                "The payment service's storage is unavailable; nothing was sent to the gateway. "
                "Retry shortly with the same transactionId."
            ),
            merchant_account_id,
        )
    lost = OutcomeUnknown("the gateway was called but this service lost track of the outcome", code="unrecorded")
    return from_gateway_error(lost, merchant_account_id)


def internal_failure(merchant_account_id: int | None = None) -> Answer:
    """A fault of this service (a bug, settings it cannot load). The flow answers faults after a
    gateway call as outcome unknown, so this one says nothing about what was charged."""
    return _failed(
        INTERNAL_ERROR_STATUS, "internal_error", "internal error", INTERNAL_ERROR_DETAIL, merchant_account_id
    )


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
        return UNKNOWN_STATUS, "outcome_unknown", {}
    if isinstance(error, GatewayUnreachable):
        return UNAVAILABLE_STATUS, "gateway_unreachable", retry
    if isinstance(error, CredentialsRejected):
        # The stored credentials are wrong: security must rotate them. The caller did nothing wrong.
        return UNAVAILABLE_STATUS, "credentials_rejected", retry
    if isinstance(error, GatewayMisconfigured):
        # Our gateway URL (or proxy) is wrong: ops must fix it, then the caller's retry goes through.
        return UNAVAILABLE_STATUS, "gateway_misconfigured", retry
    if isinstance(error, NotRefundable):
        return 409, "not_refundable", {}
    if isinstance(error, TransactionNotFound):
        return 404, "transaction_not_found", {}
    if isinstance(error, Declined | RequestRejected):
        return 400, "declined" if isinstance(error, Declined) else "request_rejected", {}
    return 400, "gateway_error", {}


def from_gateway_error(error: GatewayError, merchant_account_id: int | None = None) -> Answer:
    status, fallback_code, headers = _gateway_status(error)
    # For outcomes this service decides (unknown, unreachable, credentials) the caller branches on
    # our code, so a gateway's own code (a timeout's 62, an HTTP 401) must not hide it.
    ours = isinstance(error, OutcomeUnknown | GatewayUnreachable | CredentialsRejected | GatewayMisconfigured)
    status_code = fallback_code if ours else (error.code or fallback_code)
    # A gateway's text is not ours: `Detail` redacts card numbers from it, in every envelope.
    return _failed(
        status,
        status_code,
        error.message,
        _gateway_failure_detail(error),
        merchant_account_id,
        gateway_status=error.http_status,
        error_code=str(error.standard),
        transaction_id=error.transaction_id,
        headers=headers,
    )


def _gateway_failure_detail(error: GatewayError) -> str:
    if isinstance(error, OutcomeUnknown):
        return OUTCOME_UNKNOWN_DETAIL
    return f"{type(error).__name__}: {error.message}" if error.message else type(error).__name__
