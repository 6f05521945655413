"""Telemetry through OpenTelemetry, read back from the SDK's in-memory exporters.

The service runs against the stateful CardConnect and Payload fakes over real HTTP, so the gateway
spans come from the HTTP layer's observer exactly as in production. Names and attributes are those
docs/telemetry.md promises: alert rules and the workbook query them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateways.errors import GatewayError, StandardError
from shared import runtime
from shared.errors import GATEWAY_FAILURE_CODES, from_gateway_error
from shared.flow import PaymentService
from shared.idempotency import State, StoreUnavailable
from shared.reconcile import Decision, reconcile_unknown
from shared.runtime import build_telemetry
from shared.settings import Settings, SettingsError
from shared.telemetry import OFF
from shared.telemetry_otel import OpenTelemetry, _entra_credential
from tests.conftest import LeakGuard
from tests.fakes import CardConnectFake, PayloadFake
from tests.support import make_settings, new_meta, pay, refund, refund_body, write_credentials
from tests.test_flow_gateways import (
    CC_ACCOUNT,
    CC_CREDENTIALS,
    CC_MID,
    CC_PASSWORD,
    CC_USER,
    PL_ACCOUNT,
    PL_CREDENTIALS,
    PL_KEY,
    PL_PROCESSING,
    cc_payment,
    order_id,
    pl_payment,
)
from tests.timing import CLIENT_READ_SECONDS

ROOT = Path(__file__).resolve().parent.parent
CC_SALE = "PUT /cardconnect/rest/auth"
DECLINED_CARD = "4387751111111053"


@dataclass
class Exported:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.finished() if span.name == name]

    def points(self, name: str) -> list[Any]:
        """Every data point of instrument `name` (cumulative since the telemetry was built)."""
        data = self.metrics.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found

    def count(self, name: str, **attributes: Any) -> float:
        """The sum (counters) or count (histograms) of the points of `name` whose attributes
        include `attributes`."""
        total = 0.0
        for point in self.points(name):
            if all(point.attributes.get(key.replace("__", ".")) == value for key, value in attributes.items()):
                total += point.count if hasattr(point, "bucket_counts") else point.value
        return total


@dataclass
class World:
    cc: CardConnectFake
    pl: PayloadFake
    service: PaymentService
    exported: Exported


@pytest.fixture
def world(tmp_path: Path, leak_guard: LeakGuard) -> Iterator[World]:
    """Both fakes and a service whose telemetry goes to in-memory exporters."""
    leak_guard.watch(CC_PASSWORD, CC_USER, CC_MID, PL_KEY, PL_PROCESSING, "987", "1239", "12/39", "12/2039")
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    telemetry = OpenTelemetry(tracer_provider, MeterProvider(metric_readers=[reader]), "file")
    with CardConnectFake(merchants={CC_MID: (CC_USER, CC_PASSWORD)}) as cc, PayloadFake(
        accounts={PL_KEY: PL_PROCESSING}
    ) as pl:
        settings = make_settings(
            tmp_path, gateway_url_overrides={"CARDCONNECT_URL": cc.base_url, "PAYLOAD_API_URL": pl.base_url},
            gateway_timeout_seconds=CLIENT_READ_SECONDS,
        )
        write_credentials(
            settings.local_credentials_file,
            {
                CC_ACCOUNT: {"gatewayTypeId": 2, "credentials": CC_CREDENTIALS},
                PL_ACCOUNT: {"gatewayTypeId": 1, "credentials": PL_CREDENTIALS},
            },
        )
        service = runtime.build_service(settings, telemetry=telemetry)
        runtime.install(service)
        try:
            yield World(cc, pl, service, Exported(spans, reader))
        finally:
            runtime.install(None)
            telemetry.shutdown()


def only(spans: list[ReadableSpan]) -> ReadableSpan:
    assert len(spans) == 1, [span.name for span in spans]
    return spans[0]


def children(exported: Exported, parent: ReadableSpan) -> list[ReadableSpan]:
    parent_id = parent.context.span_id
    return [span for span in exported.finished() if span.parent is not None and span.parent.span_id == parent_id]


def test_a_sale_is_a_server_span_with_its_gateway_store_and_credential_calls_beneath(world: World) -> None:
    paid = pay(cc_payment(amount=19.99))
    assert paid.status == 200

    call = only(world.exported.named("payment"))
    assert call.kind is SpanKind.SERVER
    assert dict(call.attributes or {}) == {
        "operation": "payment",
        "gateway": "CardConnect",
        "gateway.type_id": 2,
        "merchant_account.id": CC_ACCOUNT,
        "outcome": "approved",
        "status_code": 200,
        "replayed": False,
        "http.request.method": "POST",
        "http.response.status_code": 200,
    }
    assert call.status.status_code is not StatusCode.ERROR

    beneath = children(world.exported, call)
    assert sorted(span.name for span in beneath) == [
        "credentials read", "gateway auth", "store claim", "store transition",
    ]
    sale = only([span for span in beneath if span.name == "gateway auth"])
    assert sale.kind is SpanKind.CLIENT
    assert dict(sale.attributes or {}) == {
        "gateway": "CardConnect",
        "gateway.endpoint": "auth",
        "gateway.method": "PUT",
        "gateway.host": "127.0.0.1",
        "peer.service": "CardConnect",
        "status_code": 200,
        "outcome": "answered",
    }
    assert sale.end_time is not None and sale.start_time is not None and sale.end_time > sale.start_time
    claim = only([span for span in beneath if span.name == "store claim"])
    assert dict(claim.attributes or {}) == {"store": "sqlite", "store.operation": "claim", "outcome": "ok"}
    read = only([span for span in beneath if span.name == "credentials read"])
    assert dict(read.attributes or {}) == {
        "store": "file", "store.operation": "read", "merchant_account.id": CC_ACCOUNT, "outcome": "ok",
    }

    counted = world.exported.points("paymentgateway.calls")
    assert [dict(point.attributes) for point in counted] == [{
        "operation": "payment",
        "gateway": "CardConnect",
        "gateway.type_id": 2,
        "outcome": "approved",
        "status_code": 200,
        "replayed": False,
    }]
    assert counted[0].value == 1
    assert world.exported.count("paymentgateway.call.duration", gateway="CardConnect", outcome="approved") == 1
    assert world.exported.count(
        "paymentgateway.gateway.duration", gateway="CardConnect", gateway__endpoint="auth", gateway__method="PUT",
        status_code=200, outcome="answered",
    ) == 1
    assert world.exported.count("paymentgateway.store.duration", store="sqlite", store__operation="claim") == 1
    assert world.exported.count("paymentgateway.store.duration", store="sqlite", store__operation="transition") == 1
    assert world.exported.count("paymentgateway.credential.reads", store="file", outcome="ok") == 1
    assert world.exported.points("paymentgateway.credential.failures") == []
    assert world.exported.points("paymentgateway.outcome.unknown") == []


def test_a_replay_and_a_reused_key_are_counted(world: World) -> None:
    meta = new_meta()
    assert pay(cc_payment(amount=5), meta).status == 200
    again = pay(cc_payment(amount=5), meta)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert pay(cc_payment(amount=6), meta).status == 422

    assert world.exported.count("paymentgateway.idempotency.replays", operation="payment", gateway="CardConnect") == 1
    assert world.exported.count(
        "paymentgateway.idempotency.conflicts", operation="payment", gateway="CardConnect", reason="key_reused"
    ) == 1
    assert world.exported.count("paymentgateway.calls", outcome="approved", replayed=True) == 1
    assert world.exported.count("paymentgateway.calls", outcome="approved", replayed=False) == 1
    assert world.exported.count(
        "paymentgateway.calls", outcome="conflict", status_code=422, **{"error__code": "idempotency_key_reused"}
    ) == 1
    replayed = [span for span in world.exported.named("payment") if (span.attributes or {}).get("replayed")]
    assert len(replayed) == 1
    # Only the first call reached the gateway.
    assert len(world.exported.named("gateway auth")) == 1


def test_a_decline_is_counted_by_its_standard_code(world: World) -> None:
    declined = pay(cc_payment(account=DECLINED_CARD))
    assert declined.status == 400 and declined.detail["errorCode"] == "insufficient_funds"

    call = only(world.exported.named("payment"))
    attributes = call.attributes or {}
    assert (attributes["outcome"], attributes["error.code"], attributes["status_code"]) == (
        "declined", "insufficient_funds", 400,
    )
    # A decline is the gateway's answer, not a fault of ours or the gateway's.
    assert call.status.status_code is not StatusCode.ERROR
    sale = only(world.exported.named("gateway auth"))
    assert (sale.attributes or {})["outcome"] == "answered"
    assert world.exported.count(
        "paymentgateway.calls", gateway="CardConnect", outcome="declined", status_code=400,
        **{"error__code": "insufficient_funds"},
    ) == 1


def test_payload_decline_and_refund(world: World) -> None:
    declined = pay(pl_payment(account="4000000000000002"))
    assert declined.status == 400
    assert world.exported.count("paymentgateway.calls", gateway="Payload", outcome="declined") == 1
    paid = pay(pl_payment(amount=30))
    assert paid.status == 200
    refunded = refund(refund_body(paid.detail["paymentTransactionId"], gatewayTypeId=1, merchantAccountId=PL_ACCOUNT))
    assert refunded.status == 200

    call = only(world.exported.named("refund"))
    attributes = call.attributes or {}
    labels = ("operation", "gateway", "outcome", "http.request.method")
    assert [attributes[label] for label in labels] == ["refund", "Payload", "approved", "PATCH"]
    endpoints = {(span.attributes or {})["gateway.endpoint"] for span in children(world.exported, call)
                 if span.name.startswith("gateway ")}
    assert endpoints == {"transactions"}
    assert world.exported.count("paymentgateway.calls", operation="refund", gateway="Payload", outcome="approved") == 1


def test_an_unknown_outcome_is_counted_with_its_reason_and_the_gateway_span_fails(world: World) -> None:
    world.cc.set_fault("drop", match=CC_SALE)
    lost = pay(cc_payment(amount=40))
    assert (lost.status, lost.detail["statusCode"]) == (502, "outcome_unknown")

    call = only(world.exported.named("payment"))
    attributes = call.attributes or {}
    assert (attributes["outcome"], attributes["error.code"], attributes["status_code"]) == (
        "unknown", "outcome_unknown", 502,
    )
    assert call.status.status_code is StatusCode.ERROR
    sale = only(world.exported.named("gateway auth"))
    assert (sale.attributes or {})["outcome"] == "unknown"
    assert "status_code" not in (sale.attributes or {})  # no answer came
    assert sale.status.status_code is StatusCode.ERROR
    assert world.exported.count(
        "paymentgateway.outcome.unknown", operation="payment", gateway="CardConnect", reason="no_response"
    ) == 1
    assert world.exported.count("paymentgateway.gateway.duration", gateway__endpoint="auth", outcome="unknown") == 1


def test_an_outcome_the_store_could_not_record_is_unknown_with_its_own_reason(world: World) -> None:
    class LosesCompletions:
        """The store as it fails after the gateway answered: the claim works, recording fails."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def transition(self, current: Any, **changes: Any) -> Any:
            if changes.get("state") is State.COMPLETED:
                raise StoreUnavailable("sqlite: OperationalError")
            return self.inner.transition(current, **changes)

    service = world.service
    runtime.install(PaymentService(service.settings, service.factory, LosesCompletions(service.idempotency),
                                   lambda: b"k", telemetry=service.telemetry))
    lost = pay(cc_payment(amount=7))
    assert (lost.status, lost.detail["statusCode"]) == (502, "outcome_unknown")
    assert (only(world.exported.named("gateway auth")).attributes or {})["status_code"] == 200
    assert world.exported.count(
        "paymentgateway.outcome.unknown", operation="payment", gateway="CardConnect", reason="unrecorded"
    ) == 1
    assert world.exported.count("paymentgateway.calls", outcome="unknown", status_code=502) == 1


def test_a_reconciler_run_is_a_span_with_its_actions_counted(world: World) -> None:
    world.cc.set_fault("drop", match=CC_SALE)
    meta = new_meta()
    assert pay(cc_payment(amount=40), meta).status == 502
    world.exported.spans.clear()

    outcomes = reconcile_unknown(runtime.service(), now=time.time() + 601)
    assert [o.decision for o in outcomes] == [Decision.VOIDED]

    run = only(world.exported.named("reconcile"))
    assert run.kind is SpanKind.INTERNAL
    assert (run.attributes or {})["records"] == 1
    beneath = children(world.exported, run)
    gateway_calls = [(s.attributes or {})["gateway.endpoint"] for s in beneath if s.name.startswith("gateway ")]
    assert "inquireByOrderid" in gateway_calls and ("void" in gateway_calls or "refund" in gateway_calls)
    assert {"store in_state", "store transition", "store purge"} <= {span.name for span in beneath}
    assert world.exported.count(
        "paymentgateway.reconcile.actions", operation="payment", gateway="CardConnect", decision="reconciled_voided"
    ) == 1
    assert world.exported.points("paymentgateway.reconcile.needs_attention") == []
    assert order_id(meta)  # the order id is the gateway's business, not telemetry's (scanned below)


def test_a_record_reconciliation_cannot_settle_is_counted_as_needs_attention(world: World) -> None:
    settings = world.service.settings.model_copy(update=dict(reconcile_max_attempts=1))
    service = PaymentService(settings, world.service.factory, world.service.idempotency,
                             lambda: b"k", telemetry=world.service.telemetry)
    runtime.install(service)
    world.cc.set_fault("drop", match=CC_SALE)
    assert pay(cc_payment(amount=40)).status == 502
    world.cc.set_fault("http500", count=None, match="GET /cardconnect/rest/inquireByOrderid/")

    (outcome,) = reconcile_unknown(service, now=time.time() + 601)
    assert outcome.decision is Decision.NEEDS_ATTENTION
    assert world.exported.count(
        "paymentgateway.reconcile.needs_attention", operation="payment", gateway="CardConnect"
    ) == 1
    assert world.exported.count("paymentgateway.reconcile.actions", decision="reconcile_needs_attention") == 1
    lookup = world.exported.named("gateway inquireByOrderid")[-1]
    assert (lookup.attributes or {})["status_code"] == 500 and (lookup.attributes or {})["outcome"] == "unknown"


def test_credentials_missing_or_refused_are_counted_as_failures(world: World, tmp_path: Path) -> None:
    missing = pay(cc_payment(merchantAccountId=9999))
    assert (missing.status, missing.detail["statusCode"]) == (400, "merchant_account_not_configured")
    assert world.exported.count("paymentgateway.credential.reads", store="file", outcome="not_found") == 1
    assert world.exported.count("paymentgateway.credential.failures", store="file", reason="not_found") == 1
    call = only(world.exported.named("payment"))
    attributes = call.attributes or {}
    assert (attributes["outcome"], attributes["error.code"]) == ("rejected", "merchant_account_not_configured")

    world.service.settings.local_credentials_file.write_text(
        json.dumps({str(CC_ACCOUNT): {"gatewayTypeId": 2, "credentials": "not an object"}})
    )
    unreadable = pay(cc_payment())
    assert (unreadable.status, unreadable.detail["statusCode"]) == (503, "credentials_malformed")
    assert world.exported.count("paymentgateway.credential.failures", store="file", reason="malformed") == 1
    failed = only(world.exported.named("payment")[1:])
    assert failed.status.status_code is StatusCode.ERROR
    assert ((failed.attributes or {})["outcome"], (failed.attributes or {})["error.code"]) == (
        "error", "credentials_malformed",
    )
    # A secret that parses but lacks a field is found only when the gateway is built, after the read
    # counted ok: the credential-failures alert reads it from the calls counter's error.code.
    incomplete = {key: value for key, value in CC_CREDENTIALS.items() if key != "password"}
    write_credentials(
        world.service.settings.local_credentials_file, {CC_ACCOUNT: {"gatewayTypeId": 2, "credentials": incomplete}}
    )
    lacking = pay(cc_payment())
    assert (lacking.status, lacking.detail["statusCode"]) == (503, "credentials_malformed")
    malformed_calls = {"error__code": "credentials_malformed"}
    assert world.exported.count("paymentgateway.calls", outcome="error", **malformed_calls) == 2
    write_credentials(
        world.service.settings.local_credentials_file, {CC_ACCOUNT: {"gatewayTypeId": 2, "credentials": CC_CREDENTIALS}}
    )

    world.cc.merchants[CC_MID] = (CC_USER, "rotated-password")
    refused = pay(cc_payment())
    assert (refused.status, refused.detail["statusCode"]) == (503, "credentials_rejected")
    # Refused once, read afresh (same values), and not tried again.
    assert world.exported.count("paymentgateway.credential.failures", reason="rejected_by_gateway") == 1
    assert world.exported.count("paymentgateway.calls", outcome="error", **{"error__code": "credentials_rejected"}) == 1


def test_no_card_data_token_or_credential_reaches_any_exported_telemetry(
    world: World, leak_guard: LeakGuard
) -> None:
    """Every attribute of every span, event and metric point, span names and status texts included,
    after sales, declines, a refund, an unknown, a replay, a refusal that echoes the request, and a
    reconciler run, on both gateways."""
    metas = [new_meta() for _ in range(4)]
    pay(cc_payment(amount=12), metas[0])
    pay(cc_payment(amount=12), metas[0])
    pay(cc_payment(account=DECLINED_CARD))
    paid = pay(pl_payment(amount=30), metas[1])
    refund(refund_body(paid.detail["paymentTransactionId"], gatewayTypeId=1, merchantAccountId=PL_ACCOUNT))
    world.pl.set_fault("echo")
    pay(pl_payment(amount=31))
    world.cc.set_fault("drop", match=CC_SALE)
    pay(cc_payment(amount=40), metas[2])
    world.pl.set_fault("drop", match="POST /transactions")
    pay(pl_payment(amount=41), metas[3])
    reconcile_unknown(runtime.service(), now=time.time() + 601)

    text = exported_text(world.exported)
    assert "paymentgateway.calls" in text and "gateway auth" in text and "reconcile" in text
    # Beside the leak guard's values and its Luhn rule: ids that identify a request or a merchant
    # at the gateway, which the leak rules keep out of telemetry too.
    forbidden = [CC_MID, PL_PROCESSING, "4788250000121443", "4242424242424242", DECLINED_CARD]
    forbidden += [meta["transactionId"] for meta in metas] + [order_id(meta) for meta in metas]
    forbidden += [paid.detail["paymentTransactionId"]]
    assert [value for value in forbidden if value in text] == []
    assert "/cardconnect/rest" not in text and "/transactions/" not in text  # no URL path at all
    assert leak_guard.leaks(text) == []


def exported_text(exported: Exported) -> str:
    parts: list[str] = []
    for span in exported.finished():
        parts += [span.name, str(span.status.description), json.dumps(dict(span.attributes or {}), default=str)]
        parts += [json.dumps(dict(span.resource.attributes), default=str)]
        for event in span.events:
            parts += [event.name, json.dumps(dict(event.attributes or {}), default=str)]
        for link in span.links:
            parts.append(json.dumps(dict(link.attributes or {}), default=str))
    data = exported.metrics.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                parts += [metric.name, metric.description, metric.unit]
                for point in metric.data.data_points:
                    parts.append(json.dumps(dict(point.attributes), default=str))
                    parts.extend(json.dumps(dict(e.filtered_attributes or {}), default=str)
                                 for e in getattr(point, "exemplars", None) or [])
    return "\n".join(parts)


def test_every_code_the_gateway_mapping_chooses_is_known_to_telemetry() -> None:
    def subclasses(cls: type[GatewayError]) -> Iterator[type[GatewayError]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    for cls in [GatewayError, *subclasses(GatewayError)]:
        answer = from_gateway_error(cls("x"))
        assert answer.detail.statusCode in GATEWAY_FAILURE_CODES, cls
    assert {code.value for code in StandardError} >= {"declined", "insufficient_funds"}


# -- configuration --------------------------------------------------------------------------------


def test_settings_choose_the_exporter() -> None:
    assert Settings.from_env({}).telemetry_exporter == "off"
    otlp = Settings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"})
    assert (otlp.telemetry_exporter, otlp.otel_exporter_otlp_endpoint) == ("otlp", "http://collector:4318")
    both = {"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}
    assert Settings.from_env(both).telemetry_exporter == "azure_monitor"
    assert Settings.from_env({**both, "TELEMETRY_ENABLED": "false"}).telemetry_exporter == "off"
    assert "InstrumentationKey" not in repr(Settings.from_env(both))
    with pytest.raises(SettingsError, match="OTEL_EXPORTER_OTLP_ENDPOINT"):
        Settings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"})
    assert build_telemetry(Settings.from_env({})) is OFF


def test_the_entra_credential_follows_the_authentication_string() -> None:
    assert _entra_credential("") is None
    assert _entra_credential("Authorization=Key") is None
    user_assigned = _entra_credential("ClientId=0f8fad5b-d9cb-469f-a165-70867728950e;Authorization=AAD")
    assert type(user_assigned).__name__ == "ManagedIdentityCredential"
    assert type(_entra_credential("Authorization=AAD")).__name__ == "ManagedIdentityCredential"


SUBPROCESS_PAYMENT = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {root!r})
    import azure.functions as func
    from ProcessPayment import main
    body = {{"gatewayTypeId": 900, "gatewayTypeName": "Simulator", "merchantAccountId": 1001,
            "account": "4242424242424242", "expDate": "1239", "cvv2": "987", "amount": 5, "currencyType": 840,
            "userId": 1, "name": "A", "zip": "97201"}}
    meta = {{"transactionId": "11111111-1111-4111-8111-111111111111", "universityId": 1, "userId": 1}}
    request = func.HttpRequest("POST", "http://localhost/paymentGateway/processPayment",
                               headers={{"BVMeta": json.dumps(meta)}}, body=json.dumps(body).encode())
    status = main(request).status_code
    from shared import runtime
    service = runtime.service()
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry" or m.startswith("azure.monitor"))
    instrumented = sorted(m for m in sys.modules if m.startswith("opentelemetry.instrumentation."))
    started = time.perf_counter()
    service.telemetry.shutdown()
    print(json.dumps({{"status": status, "telemetry": type(service.telemetry).__name__, "loaded": len(loaded),
                      "sdk": "opentelemetry.sdk" in loaded, "instrumented": instrumented,
                      "root_handlers": [type(h).__name__ for h in __import__("logging").getLogger().handlers],
                      "shutdown_s": time.perf_counter() - started}}))
    """
)


def run_payment_process(tmp_path: Path, **env: str) -> dict[str, Any]:
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"1001": {"gatewayTypeId": 900, "credentials": {}}}))
    ours = ("OTEL_", "APPLICATIONINSIGHTS_", "PYTHON_APPLICATIONINSIGHTS", "PYTHON_ENABLE_OPENTELEMETRY", "TELEMETRY_")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    clean.update(
        ENABLE_SIMULATOR="true", CREDENTIAL_SOURCE="file", LOCAL_CREDENTIALS_FILE=str(credentials),
        IDEMPOTENCY_STORE="sqlite", IDEMPOTENCY_SQLITE_PATH=str(tmp_path / "idem.sqlite"), **env,
    )
    done = subprocess.run(
        [sys.executable, "-c", SUBPROCESS_PAYMENT.format(root=str(ROOT))],
        capture_output=True, text=True, env=clean, cwd=tmp_path, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_unconfigured_means_no_opentelemetry_module_is_ever_imported(tmp_path: Path) -> None:
    result = run_payment_process(tmp_path)
    assert (result["status"], result["telemetry"], result["loaded"]) == (200, "Telemetry", 0)


def test_an_otlp_endpoint_turns_the_sdk_on_and_a_dead_collector_costs_the_payment_nothing(tmp_path: Path) -> None:
    # Port 9 (discard) refuses: the exporter fails in its own thread, the payment is unaffected.
    result = run_payment_process(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
                                 OTEL_EXPORTER_OTLP_TIMEOUT="1")
    assert (result["status"], result["telemetry"], result["sdk"]) == (200, "OpenTelemetry", True)
    assert result["instrumented"] == []


def test_azure_monitor_is_configured_without_automatic_instrumentation_or_log_export(tmp_path: Path) -> None:
    result = run_payment_process(
        tmp_path,
        APPLICATIONINSIGHTS_CONNECTION_STRING=(
            "InstrumentationKey=00000000-0000-4000-8000-000000000000;IngestionEndpoint=http://127.0.0.1:9/"
        ),
        APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
    )
    assert (result["status"], result["telemetry"], result["sdk"]) == (200, "OpenTelemetry", True)
    # requests/urllib3 instrumentations would record gateway URLs (merchid in CardConnect's paths).
    assert [m for m in result["instrumented"] if m.split(".")[2] in ("requests", "urllib3", "urllib")] == []
    # The host already ships log records; the distro must not add a second handler.
    assert "LoggingHandler" not in result["root_handlers"]
