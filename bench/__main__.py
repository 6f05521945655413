"""The benchmark behind the README's figures: `make bench` (python -m bench).

In one run, against the fake of the gateway `bench/target.py` names, on loopback in its own process:

- latency: `ProcessPayment.main(req)` in process, warm, against a direct `requests` call to the same
  fake with the same wire request (the one the gateway sent, recorded once; median ratio, p50 and
  p99 of both);
- per 100 warm requests: Key Vault reads (the real SecretClient over a counting transport) and new
  TCP connections to the gateway;
- throughput with 1 and with 16 threads when the gateway takes 50 ms;
- import time of each function module in a fresh interpreter, and which SDKs that import loads;
- cold start: in 15 fresh interpreters, the import of `ProcessPayment` and the first payment, which
  builds the service (`bench/cold_start.py`), against the second (median, and the fastest run, which
  is the least disturbed by other load on the machine); then in 7 more each with telemetry on, each
  exporter sending to a closed port (OTLP; Azure Monitor's distro);
- telemetry's per-call cost: the warm handler with the OpenTelemetry SDK recording every span and
  metric (batched to an in-memory exporter, as a real exporter batches) against the handler with
  telemetry off, interleaved;
- memory growth (RSS) over 10,000 requests.

Results go to stdout and to bench/results.json, keyed by the Python version (major.minor) that ran
them; a run replaces its own version's entry and keeps the others, so the file holds the figures
from before the move to 3.13 beside those after it.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import azure.functions as func
import requests

from bench.target import target
from gateways.registry import gateway_types

ROOT = Path(__file__).resolve().parent.parent
TARGET = target()
ACCOUNT = 2001
TARGETS = {
    "median_ratio": 1.3,
    "thread_speedup": 12.0,
    "key_vault_reads_per_100": 0,
    "new_connections_per_100": 1,
    "telemetry_per_call_ms": 2.0,
    "telemetry_first_request_added_ms": 500.0,
}
GATEWAY_SDKS = tuple(cls.__module__.rsplit(".", 1)[-1] for cls in gateway_types().values())
"""A gateway's own client library is a package named like its module (`gateways/<module>.py`); none
may load in the request path."""
LAZY_SDKS = (
    "azure.keyvault", "azure.data.tables", "azure.identity", "msal", "opentelemetry", "azure.monitor", *GATEWAY_SDKS,
)
TELEMETRY_ENV: dict[str, dict[str, str]] = {
    "off": {},
    # Nothing listens on port 9: exports fail in the SDK's own threads, as with a collector that is down.
    "otlp": {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_TIMEOUT": "1"},
    "azure_monitor": {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": (
            "InstrumentationKey=00000000-0000-4000-8000-000000000000;IngestionEndpoint=http://127.0.0.1:9/"
        ),
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    },
}


@contextmanager
def fake_gateway(delay: float = 0.0) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.fake_gateway", "--delay", str(delay)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        yield process.stdout.readline().strip()
    finally:
        process.stdin.close()
        process.wait(timeout=10)


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def in_memory_telemetry() -> Any:
    """The OpenTelemetry SDK recording everything the service emits, spans batched off the request
    path to an in-memory exporter (a network exporter's cost is in its own thread)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from shared.telemetry_otel import OpenTelemetry

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    return OpenTelemetry(tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()]), "keyvault")


class Bench:
    def __init__(self, base_url: str, workdir: Path, telemetry: Any = None) -> None:
        from shared import runtime
        from shared.credentials import CachedCredentialStore, format_secret
        from shared.factory import GatewayFactory
        from shared.flow import PaymentService
        from shared.settings import Settings
        from tests.fakes.keyvault import FakeKeyVault

        self.vault = FakeKeyVault()
        self.vault.set(
            f"merchant-account-{ACCOUNT}",
            format_secret(TARGET.type_id, dict(TARGET.profile.credentials)),
        )
        settings = Settings(
            credential_source="keyvault",
            key_vault_url=self.vault.url,
            gateway_url_overrides={TARGET.gateway.url_setting: base_url},
            idempotency_sqlite_path=workdir / "idempotency.sqlite",
        )
        from shared.telemetry import OFF

        telemetry = telemetry or OFF
        built = runtime.build_service(settings, telemetry=telemetry)
        load = telemetry.observe_credential_reads(self.vault.client().load, "keyvault")
        store = CachedCredentialStore(load, settings.credential_cache_ttl_seconds)
        self.service = PaymentService(
            settings, GatewayFactory(settings, store, built.factory._http), built.idempotency,
            runtime.fingerprint_key_source(settings), telemetry=telemetry,
        )
        self.runtime = runtime
        runtime.install(self.service)
        from ProcessPayment import main

        self.main = main
        self.base_url = base_url

    def body(self) -> dict[str, Any]:
        return TARGET.payment_body()

    def request(self) -> func.HttpRequest:
        """What the monolith sends; built outside the timed part, which is `main(req)` alone."""
        meta = {"transactionId": str(uuid.uuid4()), "universityId": 7, "userId": 42}
        return func.HttpRequest(
            "POST", "http://localhost/paymentGateway/processPayment",
            headers={"BVMeta": json.dumps(meta)}, body=json.dumps(self.body()).encode(),
        )

    def pay(self) -> int:
        self.runtime.install(self.service)
        return self.main(self.request()).status_code

    def timed_pay(self, count: int) -> list[float]:
        self.runtime.install(self.service)
        samples = []
        for _ in range(count):
            request = self.request()
            start = time.perf_counter()
            status = self.main(request).status_code
            samples.append(time.perf_counter() - start)
            assert status == 200, status
        return samples

    def connections(self) -> int:
        pool = self.service.factory._http
        return sum(
            p.num_connections
            for adapter in pool.adapters()
            for p in adapter.poolmanager.pools._container.values()  # type: ignore[attr-defined]
        )


def recorded_sale(base_url: str) -> tuple[str, str, dict[str, str], str, str]:
    """The wire request the gateway sends for the bench's payment (method, URL, headers, body) and
    the order id in it, recorded through the HTTP pool's transcript hook."""
    from gateways.base import BillingAddress, Card, GatewayContext, SaleRequest
    from gateways.http import HttpPool, Timeouts
    from shared.factory import normalise_credentials

    seen: list[str] = []
    cls, card = TARGET.gateway, TARGET.profile.approving
    credentials = normalise_credentials(cls.credential_fields, TARGET.profile.credentials, ACCOUNT)
    pool = HttpPool(Timeouts(5.0, 40.0), transcript=seen.append)
    order_id = "BVP" + uuid.uuid4().hex[:28]
    sale = SaleRequest(
        order_id=order_id, amount=card.amount, currency="USD",
        card=Card(card.number, int(card.exp[:2]), 2000 + int(card.exp[2:]), card.cvv),
        billing=BillingAddress(name="Bench Learner", postal_code="97201"), comment="bench",
    )
    cls(credentials, GatewayContext(ACCOUNT, base_url, pool)).charge(sale)
    pool.close()
    request = seen[0].split("\n--\n", 1)[0]
    head, _, body = request.partition("\n\n")
    start, *header_lines = head.splitlines()
    method, url = start.split(" ", 1)
    headers = dict(line.split(": ", 1) for line in header_lines)
    headers.pop("Content-Length", None)
    return method, url, headers, body.rstrip("\n"), order_id


def direct_caller(base_url: str) -> Callable[[], int]:
    session = requests.Session()
    method, url, headers, body, order_id = recorded_sale(base_url)

    def call() -> int:
        fresh = body.replace(order_id, "BVP" + uuid.uuid4().hex[:28])
        return session.request(method, url, data=fresh.encode(), headers=headers, timeout=(5, 40)).status_code

    return call


def timed(call: Callable[[], int], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        status = call()
        samples.append(time.perf_counter() - start)
        assert status == 200, status
    return samples


def throughput(call: Callable[[], int], threads: int, per_thread: int) -> float:
    barrier = threading.Barrier(threads + 1)

    def worker() -> None:
        barrier.wait()
        for _ in range(per_thread):
            assert call() == 200

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    return threads * per_thread / (time.perf_counter() - start)


def import_report() -> dict[str, Any]:
    report: dict[str, Any] = {}
    for module in ("ProcessPayment", "ProcessRefund", "ReconcileUnknown"):
        code = (
            "import sys, time, json; t = time.perf_counter(); import " + module + "; "
            "elapsed = time.perf_counter() - t; "
            f"print(json.dumps([elapsed, sorted({{m.split('.')[0] + '.' + m.split('.')[1] if m.startswith('azure.') "
            f"and m.count('.') else m for m in sys.modules if m.startswith({LAZY_SDKS!r})}})]))"
        )
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
        elapsed, loaded = json.loads(out.stdout)
        report[module] = {"import_seconds": round(elapsed, 3), "lazy_sdks_loaded": loaded}
    return report


def cold_start_report(
    base_url: str, workdir: Path, runs: int = 15, telemetry: str = "off"
) -> dict[str, dict[str, float]]:
    """Median and fastest over fresh processes with the settings a new instance reads from its
    environment (credentials from a file here; Key Vault in Azure, whose first read is not measured),
    telemetry configured as `TELEMETRY_ENV[telemetry]` says."""
    credentials = workdir / "cold-credentials.json"
    credentials.write_text(json.dumps({str(ACCOUNT): {
        "gatewayTypeId": TARGET.type_id, "credentials": dict(TARGET.profile.credentials),
    }}))
    samples: dict[str, list[float]] = {}
    for run in range(runs):
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS_"))}
        env = {
            **inherited, "CREDENTIAL_SOURCE": "file", "LOCAL_CREDENTIALS_FILE": str(credentials),
            TARGET.gateway.url_setting: base_url, "IDEMPOTENCY_STORE": "sqlite",
            "BENCH_PAYMENT": json.dumps(TARGET.payment_body()),
            "IDEMPOTENCY_SQLITE_PATH": str(workdir / f"cold-{telemetry}-{run}.sqlite"),
            **TELEMETRY_ENV[telemetry],
        }
        out = subprocess.run([sys.executable, "-m", "bench.cold_start"], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True)
        for name, seconds in json.loads(out.stdout.splitlines()[-1]).items():
            samples.setdefault(name.replace("_seconds", "_ms"), []).append(seconds * 1000)
    return {
        name: {"median": round(statistics.median(values), 1), "fastest": round(min(values), 1)}
        for name, values in samples.items()
    }


def main() -> None:
    sys.path.insert(0, str(ROOT))
    logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"))  # noqa: SIM115 - audit lines are formatted as in production
    results: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as workdir:
        with fake_gateway() as base_url:
            observed = Bench(base_url, Path(workdir) / "observed", telemetry=in_memory_telemetry())
            bench = Bench(base_url, Path(workdir))
            direct = direct_caller(base_url)
            bench.timed_pay(50)
            observed.timed_pay(50)
            timed(direct, 50)
            handler, baseline, with_telemetry = [], [], []
            for _ in range(5):  # interleaved rounds so drift hits all sides alike
                handler += bench.timed_pay(100)
                with_telemetry += observed.timed_pay(100)
                baseline += timed(direct, 100)
            results["latency_ms"] = {
                "handler_p50": round(statistics.median(handler) * 1000, 3),
                "handler_p99": round(percentile(handler, 0.99) * 1000, 3),
                "direct_p50": round(statistics.median(baseline) * 1000, 3),
                "direct_p99": round(percentile(baseline, 0.99) * 1000, 3),
            }
            results["median_ratio"] = round(statistics.median(handler) / statistics.median(baseline), 3)
            results["telemetry"] = {
                "handler_on_p50_ms": round(statistics.median(with_telemetry) * 1000, 3),
                "handler_on_p99_ms": round(percentile(with_telemetry, 0.99) * 1000, 3),
                "per_call_ms": round((statistics.median(with_telemetry) - statistics.median(handler)) * 1000, 3),
            }
            observed.service.telemetry.shutdown()

            reads, connections = bench.vault.reads(), bench.connections()
            timed(bench.pay, 100)
            results["key_vault_reads_per_100"] = bench.vault.reads() - reads
            results["new_connections_per_100"] = bench.connections() - connections

            start_rss = None
            for done in range(1, 10_001):
                bench.pay()
                if done == 1_000:
                    start_rss = rss_mb()
            assert start_rss is not None
            results["memory_mb"] = {"after_1000": round(start_rss, 1), "after_10000": round(rss_mb(), 1),
                                    "growth": round(rss_mb() - start_rss, 1)}
            results["cold_start"] = cold_start_report(base_url, Path(workdir))
            for exporter in ("otlp", "azure_monitor"):
                cold = cold_start_report(base_url, Path(workdir), runs=7, telemetry=exporter)
                results["telemetry"][f"cold_start_{exporter}"] = cold
                results["telemetry"][f"first_request_added_ms_{exporter}"] = round(
                    cold["first_request_ms"]["median"] - results["cold_start"]["first_request_ms"]["median"], 1
                )

        with fake_gateway(delay=0.05) as slow_url:
            bench = Bench(slow_url, Path(workdir) / "slow")
            timed(bench.pay, 5)
            one = throughput(bench.pay, 1, 40)
            sixteen = throughput(bench.pay, 16, 25)
            results["throughput_rps"] = {"threads_1": round(one, 1), "threads_16": round(sixteen, 1)}
            results["thread_speedup"] = round(sixteen / one, 2)

    results["imports"] = import_report()
    checks = {
        "median_ratio": results["median_ratio"] <= TARGETS["median_ratio"],
        "thread_speedup": results["thread_speedup"] >= TARGETS["thread_speedup"],
        "key_vault_reads_per_100": results["key_vault_reads_per_100"] <= TARGETS["key_vault_reads_per_100"],
        "new_connections_per_100": results["new_connections_per_100"] <= TARGETS["new_connections_per_100"],
        "lazy_imports": all(not m["lazy_sdks_loaded"] for m in results["imports"].values()),
        "memory_flat": results["memory_mb"]["growth"] <= 5.0,
        "telemetry_per_call_ms": results["telemetry"]["per_call_ms"] <= TARGETS["telemetry_per_call_ms"],
        "telemetry_first_request_added_ms": all(
            results["telemetry"][f"first_request_added_ms_{exporter}"] <= TARGETS["telemetry_first_request_added_ms"]
            for exporter in ("otlp", "azure_monitor")
        ),
    }
    results["targets_met"] = checks
    path = ROOT / "bench" / "results.json"
    by_version = json.loads(path.read_text()) if path.exists() else {}
    by_version[f"{sys.version_info.major}.{sys.version_info.minor}"] = results
    path.write_text(json.dumps(dict(sorted(by_version.items())), indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print("all targets met" if all(checks.values()) else f"targets missed: {[k for k, ok in checks.items() if not ok]}")


if __name__ == "__main__":
    main()
