"""What a gateway raises when it did not do what was asked. A leaf: imports nothing of ours.

Messages carry gateway codes and texts, never card data or credentials (the gateway interface
scrubs echoes before an error leaves a gateway operation)."""

from __future__ import annotations

import enum


class StandardError(enum.StrEnum):
    """The small closed set every gateway's own codes map into (the raw code travels alongside)."""

    DECLINED = "declined"
    INVALID_CARD = "invalid_card"
    EXPIRED_CARD = "expired_card"
    CVV_MISMATCH = "cvv_mismatch"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    PROCESSING_ERROR = "processing_error"
    CONFIG_ERROR = "config_error"
    PARTIAL_APPROVAL = "partial_approval"
    """The gateway approved less than asked (a prepaid card); the service voided it."""
    HELD_FOR_REVIEW = "held_for_review"
    """The gateway's fraud filters held the sale for review (authorized, settled only once someone
    approves it); by default the service voided it."""


class GatewayError(Exception):
    """A gateway did not do what was asked. Messages carry gateway codes and texts, never card data."""

    standard: StandardError = StandardError.PROCESSING_ERROR

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        http_status: int | None = None,
        standard: StandardError | None = None,
        transaction_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.transaction_id = transaction_id
        if standard is not None:
            self.standard = standard


class Declined(GatewayError):
    """The gateway or the issuer refused the card; nothing was charged."""

    standard = StandardError.DECLINED


class RequestRejected(GatewayError):
    """The gateway refused the request as malformed or not allowed; nothing was done."""


class CredentialsRejected(GatewayError):
    """The gateway did not accept the merchant's credentials (HTTP 401/403); nothing was done."""

    standard = StandardError.CONFIG_ERROR


class GatewayMisconfigured(GatewayError):
    """The gateway (or a proxy on the way) says the endpoint we called does not exist or cannot be
    called so: a wrong base URL, method or content type, a proxy wanting credentials. Our
    configuration, not the caller's request; nothing was done, and a retry once it is fixed must
    reach the gateway rather than replay this answer."""

    standard = StandardError.CONFIG_ERROR


class TransactionNotFound(GatewayError):
    """The referenced transaction does not exist for this merchant."""


class NotRefundable(GatewayError):
    """The original payment's state forbids this refund now (already voided, partial before
    settlement, ...). Nothing was done; the caller may try again later or differently."""


class AlreadyVoided(NotRefundable):
    """The payment has been voided already: nothing is left to refund."""


class GatewayUnreachable(GatewayError):
    """The request never reached the gateway (connection refused, DNS): safe to retry."""


class OutcomeUnknown(GatewayError):
    """The request may have reached the gateway and been carried out, but no usable answer came
    back (read timeout, dropped connection, a 5xx, a gateway's own "retry" answer). Never a plain failure:
    the payment must be looked up before anything is retried."""
