"""The OpenTelemetry side of `shared/telemetry.py`, imported only when an exporter is configured.

Names and attributes are those of docs/telemetry.md. Spans never record exceptions (an exception's
message may quote a gateway's answer); a failed span carries the exception's type name only.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from gateways.http import GatewayCall, Observer
from shared.contract import SERVICE_NAME, Detail
from shared.credentials import AccountNotFound, CredentialStore, MalformedSecret, MerchantAccount
from shared.errors import INTERNAL_ERROR_STATUS, is_fault
from shared.idempotency import IdempotencyStore, Record, State
from shared.settings import Settings
from shared.telemetry import Call, Run, Telemetry, error_code, gateway_name, outcome

SCOPE = "paymentgateway"
METHODS = {"payment": "POST", "refund": "PATCH"}
"""Each function's one HTTP method (function.json): the exporter fills `requests.resultCode` only
for a span that names its method."""

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0)
"""Seconds; up to past the 40 s gateway read timeout."""

INSTRUMENTATIONS = ("azure_sdk", "django", "fastapi", "flask", "httpx", "httpx2", "psycopg2", "requests",
                    "urllib", "urllib3")
"""The distro's automatic instrumentations, all turned off: `requests`/`urllib3` would record every
gateway URL (a gateway's paths may carry the merchant id), `azure_sdk` every Key Vault secret name and
Table key. The HTTP layer's observer reports gateway calls instead, without paths."""


_configured: dict[tuple[str, str], OpenTelemetry] = {}
"""One telemetry per destination for the process's life: the distro sets the global providers, and a
second `configure_azure_monitor` (a service rebuilt after `runtime.install(None)`) would add a second
set of exporters. Bounded by the destinations a process is ever configured with (one or two)."""
_configure_lock = threading.Lock()


def configure(settings: Settings) -> OpenTelemetry:
    """Set up the exporter `settings` name (once per process) and return telemetry writing to it."""
    from opentelemetry.sdk.resources import Resource

    key = (settings.telemetry_exporter, settings.applicationinsights_connection_string
           or settings.otel_exporter_otlp_endpoint)
    with _configure_lock:
        if key not in _configured:
            resource = Resource.create({"service.name": SERVICE_NAME})
            if settings.telemetry_exporter == "azure_monitor":
                _configured[key] = _azure_monitor(settings, resource)
            else:
                _configured[key] = _otlp(settings, resource)
        return _configured[key]


def _azure_monitor(settings: Settings, resource: Any) -> OpenTelemetry:
    from azure.monitor.opentelemetry import configure_azure_monitor
    from opentelemetry import metrics, trace

    # The Functions host already sends every log record (the audit line included) to `traces`, so
    # the distro must not add its root-logger handler. Its `disable_logging` argument is overwritten
    # from this variable (azure-monitor-opentelemetry 1.8.11, `_default_disable_logging`), so the
    # variable is what turns it off; an operator who sets it otherwise gets the distro's log export.
    os.environ.setdefault("OTEL_LOGS_EXPORTER", "none")
    configure_azure_monitor(
        connection_string=settings.applicationinsights_connection_string,
        credential=_entra_credential(settings.applicationinsights_authentication_string),
        resource=resource,
        enable_live_metrics=False,
        enable_performance_counters=False,
        instrumentation_options={name: {"enabled": False} for name in INSTRUMENTATIONS},
    )
    return OpenTelemetry(trace.get_tracer_provider(), metrics.get_meter_provider(), settings.credential_source)


def _entra_credential(authentication_string: str) -> Any:
    """The credential APPLICATIONINSIGHTS_AUTHENTICATION_STRING asks for (`Authorization=AAD`, with
    `ClientId=` for a user-assigned identity), as the Functions host reads it: the component has
    local (key) authentication disabled, so without it nothing would be accepted."""
    parts = dict(part.split("=", 1) for part in authentication_string.split(";") if "=" in part)
    if parts.get("Authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    client_id = parts.get("ClientId") or None
    return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()


def _otlp(settings: Settings, resource: Any) -> OpenTelemetry:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    base = settings.otel_exporter_otlp_endpoint
    tracer_provider = SdkTracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{base}/v1/metrics"))
    meter_provider = SdkMeterProvider(resource=resource, metric_readers=[reader])
    return OpenTelemetry(tracer_provider, meter_provider, settings.credential_source)


class OpenTelemetry(Telemetry):
    enabled = True

    def __init__(self, tracer_provider: TracerProvider, meter_provider: MeterProvider, credential_source: str) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self.credential_source = credential_source
        self.tracer = tracer_provider.get_tracer(SCOPE)
        meter = meter_provider.get_meter(SCOPE)
        self.calls = meter.create_counter("paymentgateway.calls", unit="{call}", description="Calls answered")
        self.call_duration = meter.create_histogram(
            "paymentgateway.call.duration", unit="s", description="Whole calls, parse to answer",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.gateway_duration = meter.create_histogram(
            "paymentgateway.gateway.duration", unit="s", description="HTTP requests to gateways",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.unknowns = meter.create_counter(
            "paymentgateway.outcome.unknown", unit="{call}", description="Calls answered 502 outcome_unknown"
        )
        self.reconcile_actions = meter.create_counter(
            "paymentgateway.reconcile.actions", unit="{record}", description="Reconciler decisions"
        )
        self.needs_attention = meter.create_counter(
            "paymentgateway.reconcile.needs_attention", unit="{record}", description="Records moved to needs_attention"
        )
        self.replays = meter.create_counter(
            "paymentgateway.idempotency.replays", unit="{call}", description="Stored answers replayed"
        )
        self.conflicts = meter.create_counter(
            "paymentgateway.idempotency.conflicts", unit="{call}", description="Idempotency keys in use or reused"
        )
        self.credential_reads = meter.create_counter(
            "paymentgateway.credential.reads", unit="{read}", description="Reads of the credential source"
        )
        self.credential_failures = meter.create_counter(
            "paymentgateway.credential.failures", unit="{failure}", description="Credentials missing or refused"
        )
        self.store_duration = meter.create_histogram(
            "paymentgateway.store.duration", unit="s", description="Idempotency-store and credential-source calls",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )

    @contextlib.contextmanager
    def call(self, operation: str) -> Iterator[Call]:
        attributes = {"operation": operation, "http.request.method": METHODS.get(operation, "POST")}
        with self.tracer.start_as_current_span(
            operation, kind=SpanKind.SERVER, attributes=attributes, record_exception=False,
            set_status_on_exception=False,
        ) as span:
            call = _OtelCall(self, operation, span)
            try:
                yield call
            except BaseException as error:
                # The function answers 500 internal_error (shared/endpoint.py).
                call.failed(type(error).__name__)
                raise
            finally:
                call.finish()

    @contextlib.contextmanager
    def reconcile_run(self) -> Iterator[Run]:
        with self.tracer.start_as_current_span(
            "reconcile", kind=SpanKind.INTERNAL, record_exception=False, set_status_on_exception=False
        ) as span:
            run = _OtelRun(span)
            try:
                yield run
            except BaseException as error:
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                raise

    def reconciled(self, *, operation: str, gateway_type_id: object, decision: str) -> None:
        # From a stored record, which may be malformed: only the known values become labels.
        known = operation if operation in METHODS else "unknown"
        labels = {"operation": known, "gateway": gateway_name(gateway_type_id)}
        self.reconcile_actions.add(1, {**labels, "decision": decision})
        if decision == "reconcile_needs_attention":
            self.needs_attention.add(1, labels)

    def http_observer(self) -> Observer:
        return self.gateway_call

    def gateway_call(self, call: GatewayCall) -> None:
        attributes: dict[str, Any] = {
            "gateway": call.gateway,
            "gateway.endpoint": call.endpoint,
            "gateway.method": call.method,
            "outcome": call.outcome,
        }
        if call.status is not None:
            attributes["status_code"] = call.status
        self.gateway_duration.record(call.duration_s, attributes)
        span = self.tracer.start_span(
            f"gateway {call.endpoint}",
            kind=SpanKind.CLIENT,
            attributes={**attributes, "gateway.host": call.host, "peer.service": call.gateway},
            start_time=call.started_ns,
        )
        if call.outcome != "answered":
            span.set_status(Status(StatusCode.ERROR, call.outcome))
        span.end(end_time=call.started_ns + int(call.duration_s * 1e9))

    @contextlib.contextmanager
    def store_call(
        self, store: str, operation: str, span_name: str, extra: Mapping[str, Any] | None = None
    ) -> Iterator[None]:
        labels = {"store": store, "store.operation": operation}
        started = time.perf_counter()
        with self.tracer.start_as_current_span(
            span_name, kind=SpanKind.CLIENT, attributes={**labels, **(extra or {})}, record_exception=False,
            set_status_on_exception=False,
        ) as span:
            result = "ok"
            try:
                yield
            except BaseException as error:
                result = "error"
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                raise
            finally:
                span.set_attribute("outcome", result)
                self.store_duration.record(time.perf_counter() - started, {**labels, "outcome": result})

    def observe_store(self, store: IdempotencyStore, name: str) -> IdempotencyStore:
        return _ObservedStore(store, self, name)

    def observe_credential_reads(
        self, load: Callable[[int], MerchantAccount], source: str
    ) -> Callable[[int], MerchantAccount]:
        def read(merchant_account_id: int) -> MerchantAccount:
            result = "ok"
            try:
                with self.store_call(source, "read", "credentials read", {"merchant_account.id": merchant_account_id}):
                    return load(merchant_account_id)
            except AccountNotFound:
                result = "not_found"
                raise
            except MalformedSecret:
                result = "malformed"
                raise
            except Exception:
                result = "unavailable"
                raise
            finally:
                self.credential_reads.add(1, {"store": source, "outcome": result})
                if result != "ok":
                    self.credential_failures.add(1, {"store": source, "reason": result})

        return read

    def observe_credentials(self, store: CredentialStore, source: str) -> CredentialStore:
        return _ObservedCredentials(self.observe_credential_reads(store.get, source),
                                    self.observe_credential_reads(store.refresh, source))

    def shutdown(self) -> None:
        for provider in (self._tracer_provider, self._meter_provider):
            close = getattr(provider, "shutdown", None)
            if close is not None:
                close()


class _OtelCall(Call):
    def __init__(self, telemetry: OpenTelemetry, operation: str, span: Span) -> None:
        self.telemetry = telemetry
        self.operation = operation
        self.span = span
        self.started = time.perf_counter()
        self.gateway: str | None = None
        self.type_id: int | None = None
        self.status: int | None = None
        self.outcome: str | None = None
        self.code: str | None = None
        self.unknown_reason: str | None = None
        self.was_replayed = False

    def labels(self) -> dict[str, Any]:
        return {"operation": self.operation, "gateway": self.gateway or "unknown"}

    def identify(
        self, *, gateway_type_id: int | None = None, merchant_account_id: int | None = None, gateway: str | None = None
    ) -> None:
        if gateway_type_id is not None:
            self.span.set_attribute("gateway.type_id", gateway_type_id)
            self.type_id = gateway_type_id
            self.gateway = self.gateway or gateway_name(gateway_type_id)
        if merchant_account_id is not None:
            self.span.set_attribute("merchant_account.id", merchant_account_id)
        if gateway is not None:
            self.gateway = gateway

    def unknown(self, reason: str | None) -> None:
        self.unknown_reason = reason or "unknown"

    def conflict(self, reason: str) -> None:
        self.telemetry.conflicts.add(1, {**self.labels(), "reason": reason})

    def replayed(self) -> None:
        self.was_replayed = True
        self.telemetry.replays.add(1, self.labels())

    def credentials_rejected(self) -> None:
        store = self.telemetry.credential_source
        self.telemetry.credential_failures.add(1, {"store": store, "reason": "rejected_by_gateway"})

    def answered(self, status: int, detail: Detail) -> None:
        self.status, self.outcome, self.code = status, outcome(status, detail), error_code(detail)
        if self.code == "outcome_unknown":
            # An outcome the gateway call itself left unknown has its error's code; one made unknown
            # because the store could not record the gateway's answer has none.
            self.telemetry.unknowns.add(1, {**self.labels(), "reason": self.unknown_reason or "unrecorded"})

    def failed(self, error_type: str) -> None:
        self.status, self.outcome, self.code = INTERNAL_ERROR_STATUS, "error", "internal_error"
        self.span.set_status(Status(StatusCode.ERROR, error_type))

    def finish(self) -> None:
        labels = self.labels()
        attributes: dict[str, Any] = {**labels, "outcome": self.outcome or "error", "replayed": self.was_replayed}
        if self.status is not None:
            attributes["status_code"] = self.status
        if self.code is not None:
            attributes["error.code"] = self.code
        span = self.span
        span.set_attributes(attributes)
        if self.status is not None:
            span.set_attribute("http.response.status_code", self.status)
            if is_fault(self.status):
                span.set_status(Status(StatusCode.ERROR, self.code or "error"))
        counted = dict(attributes)
        if self.type_id is not None:
            counted["gateway.type_id"] = self.type_id
        self.telemetry.calls.add(1, counted)
        self.telemetry.call_duration.record(
            time.perf_counter() - self.started, {**labels, "outcome": attributes["outcome"]}
        )


class _OtelRun(Run):
    def __init__(self, span: Span) -> None:
        self.span = span

    def finished(self, records: int) -> None:
        self.span.set_attribute("records", records)


class _ObservedStore:
    """An IdempotencyStore whose every call is a `store <operation>` span and a latency point."""

    def __init__(self, inner: IdempotencyStore, telemetry: OpenTelemetry, name: str) -> None:
        self._inner = inner
        self._telemetry = telemetry
        self._name = name

    def _timed(self, operation: str) -> contextlib.AbstractContextManager[None]:
        return self._telemetry.store_call(self._name, operation, f"store {operation}")

    def claim(self, record: Record) -> tuple[bool, Record]:
        with self._timed("claim"):
            return self._inner.claim(record)

    def transition(self, current: Record, **changes: Any) -> Record | None:
        with self._timed("transition"):
            return self._inner.transition(current, **changes)

    def release(self, current: Record) -> None:
        with self._timed("release"):
            self._inner.release(current)

    def get(self, scope: str) -> Record | None:
        with self._timed("get"):
            return self._inner.get(scope)

    def in_state(self, state: State, updated_before: float) -> Iterator[Record]:
        # Read whole under the span: timing a generator would count the caller's work between items.
        with self._timed("in_state"):
            records = list(self._inner.in_state(state, updated_before))
        return iter(records)

    def purge(self, updated_before: float) -> int:
        with self._timed("purge"):
            return self._inner.purge(updated_before)


class _ObservedCredentials:
    """A credential store without a cache (the local file) whose every read is observed."""

    def __init__(self, get: Callable[[int], MerchantAccount], refresh: Callable[[int], MerchantAccount]) -> None:
        self._get = get
        self._refresh = refresh

    def get(self, merchant_account_id: int) -> MerchantAccount:
        return self._get(merchant_account_id)

    def refresh(self, merchant_account_id: int) -> MerchantAccount:
        return self._refresh(merchant_account_id)

