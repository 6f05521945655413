"""Telemetry beside the audit line: a span per call and per gateway or store call, and the metrics
ops alert on (docs/telemetry.md names them all).

This module is the API the flow, the reconciler and `shared/runtime.py` call. `Telemetry` itself
does nothing: it is what runs when no exporter is configured, and it imports no OpenTelemetry
module, so an unconfigured process pays nothing. `build` returns the OpenTelemetry-backed subclass
(`shared/telemetry_otel.py`, imported only then) when APPLICATIONINSIGHTS_CONNECTION_STRING or
OTEL_EXPORTER_OTLP_ENDPOINT is set.

What reaches telemetry is labels from closed sets and numbers: never a card number, CVV, expiry,
token, credential, URL path, order id, idempotency key or exception message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateways.errors import StandardError
from gateways.registry import gateway_type
from shared.errors import GATEWAY_FAILURE_CODES, UNKNOWN_STATUS, is_fault

if TYPE_CHECKING:
    from gateways.http import Observer
    from shared.contract import Detail
    from shared.credentials import CredentialStore, MerchantAccount
    from shared.idempotency import IdempotencyStore

UNKNOWN_GATEWAY = "unknown"

DECLINE_CODES = frozenset(code.value for code in StandardError) - {
    StandardError.PROCESSING_ERROR.value,
    StandardError.CONFIG_ERROR.value,
}
"""The standard `errorCode`s that mean the card or its holder was refused."""
CONFLICT_CODES = frozenset({"request_in_progress", "idempotency_key_reused"})
REVERSED_CODES = frozenset({"voided_by_reconciliation", "refunded_by_reconciliation"})


def error_code(detail: Detail) -> str | None:
    """A failed answer's code from this service's closed sets: its `statusCode` when this service
    chose it, else its standard `errorCode` (a gateway's own codes are open-ended)."""
    if detail.success:
        return None
    if detail.errorCode is None or detail.statusCode in GATEWAY_FAILURE_CODES:
        return detail.statusCode
    return detail.errorCode


def outcome(status: int, detail: Detail) -> str:
    """The call's outcome for the `outcome` attribute (docs/telemetry.md lists the values)."""
    if detail.success:
        return "approved"
    code = error_code(detail)
    if status == UNKNOWN_STATUS:
        return "unknown"
    if is_fault(status):
        return "error"
    if code in CONFLICT_CODES:
        return "conflict"
    if code in REVERSED_CODES:
        return "reversed"
    if code in DECLINE_CODES:
        return "declined"
    return "rejected"


def gateway_name(type_id: object) -> str:
    """The registry name of a gateway type id (`unknown` for none or an unregistered one)."""
    try:
        cls = gateway_type(int(type_id))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return UNKNOWN_GATEWAY
    return cls.name if cls is not None else UNKNOWN_GATEWAY


class Call:
    """One call's telemetry. This base records nothing (telemetry off)."""

    def identify(
        self, *, gateway_type_id: int | None = None, merchant_account_id: int | None = None, gateway: str | None = None
    ) -> None:
        """What the call is about, as soon as it is known."""

    def unknown(self, reason: str | None) -> None:
        """Why the outcome is unknown (the gateway error's code), should the call be answered
        `outcome_unknown`."""

    def conflict(self, reason: str) -> None:
        """`key_reused`, `in_progress` or `reconciling`."""

    def replayed(self) -> None:
        """The answer is a stored one."""

    def credentials_rejected(self) -> None:
        """The gateway refused the merchant's stored credentials."""

    def answered(self, status: int, detail: Detail) -> None:
        """The answer the caller gets."""


class Run:
    """One reconciliation run's telemetry. This base records nothing."""

    def finished(self, records: int) -> None:
        """The run took `records` records."""


NO_CALL = Call()
NO_RUN = Run()


class Telemetry:
    """Telemetry off: every method does nothing and every wrapper returns what it was given."""

    enabled = False

    def call(self, operation: str) -> contextlib.AbstractContextManager[Call]:
        return contextlib.nullcontext(NO_CALL)

    def reconcile_run(self) -> contextlib.AbstractContextManager[Run]:
        return contextlib.nullcontext(NO_RUN)

    def reconciled(self, *, operation: str, gateway_type_id: object, decision: str) -> None:
        """The reconciler decided `decision` about one record."""

    def http_observer(self) -> Observer | None:
        """What `HttpPool` tells of each gateway request (None: nothing to tell)."""
        return None

    def observe_store(self, store: IdempotencyStore, name: str) -> IdempotencyStore:
        return store

    def observe_credential_reads(
        self, load: Callable[[int], MerchantAccount], source: str
    ) -> Callable[[int], MerchantAccount]:
        """`load` (one read of the credential source per call), timed and counted."""
        return load

    def observe_credentials(self, store: CredentialStore, source: str) -> CredentialStore:
        """A store without a cache (the local file), every read timed and counted."""
        return store

    def shutdown(self) -> None:
        """Export what is pending and stop (tests, the bench)."""


OFF = Telemetry()

