"""GET /health: readiness checks configuration and both stores, liveness checks only the worker;
the credential store is probed at most once per TTL per process, and a probe has a bounded time."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

import Health
from shared import health, runtime
from shared.credentials import CachedCredentialStore
from shared.factory import GatewayFactory
from shared.flow import PaymentService
from shared.idempotency import Record, SqliteIdempotencyStore
from shared.table_store import TableIdempotencyStore
from tests.azurite import DEV_ACCOUNT_KEY
from tests.devhost_process import free_port
from tests.fakes.keyvault import FakeKeyVault
from tests.support import make_settings, write_credentials

CHECK_NAMES = {"configuration", "idempotencyStore", "credentialStore"}


def get_health(query: dict[str, str] | None = None) -> tuple[int, dict[str, Any], func.HttpResponse]:
    response = Health.main(func.HttpRequest("GET", "/health", params=query or {}, body=None))
    return response.status_code, json.loads(response.get_body()), response


class RecordingStore(SqliteIdempotencyStore):
    """The SQLite store, recording each read and able to fail like an unreachable Table service."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads: list[str] = []
        self.down = False

    def get(self, scope: str) -> Record | None:
        self.reads.append(scope)
        if self.down:
            raise ConnectionError("storage is unreachable")
        return super().get(scope)


@pytest.fixture
def fresh_checks() -> Iterator[None]:
    """Each test gets its own check cache (it is per process and per service) and service."""
    health._checks = None
    yield
    health._checks = None
    runtime.install(None)


def keyvault_service(tmp_path: Path, vault: FakeKeyVault, store: SqliteIdempotencyStore) -> PaymentService:
    settings = make_settings(tmp_path, credential_source="keyvault", key_vault_url=vault.url)
    built = runtime.build_service(make_settings(tmp_path))
    credentials = CachedCredentialStore(vault.client().load, settings.credential_cache_ttl_seconds)
    return PaymentService(
        settings, GatewayFactory(settings, credentials, built.factory._http), store, lambda: b"health-test-key"
    )


def test_ready_when_configuration_and_both_stores_answer(tmp_path: Path, fresh_checks: None) -> None:
    settings = make_settings(tmp_path)
    write_credentials(settings.local_credentials_file, {1001: {"gatewayTypeId": 900, "credentials": {}}})
    runtime.install(runtime.build_service(settings))
    status, body, response = get_health()
    assert status == 200
    assert body == {"status": "ok", "checks": dict.fromkeys(CHECK_NAMES, "ok")}
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"


def test_invalid_configuration_is_503_naming_no_value(
    monkeypatch: pytest.MonkeyPatch, fresh_checks: None
) -> None:
    monkeypatch.setenv("CREDENTIAL_SOURCE", "keyvault")
    monkeypatch.setenv("KEY_VAULT_URL", "http://kv-secret-name-here.example")
    runtime.install(None)
    status, body, response = get_health()
    assert status == 503
    assert body == {
        "status": "failing",
        "checks": {"configuration": "failed", "idempotencyStore": "skipped", "credentialStore": "skipped"},
    }
    assert b"kv-secret-name-here" not in response.get_body()
    assert b"KEY_VAULT_URL" not in response.get_body()


def test_liveness_touches_no_dependency_and_survives_bad_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_checks: None
) -> None:
    monkeypatch.setenv("IDEMPOTENCY_STORE", "nonsense")
    runtime.install(None)
    status, body, _ = get_health({"probe": "live"})
    assert (status, body) == (200, {"status": "ok", "checks": {}})
    assert health._checks is None, "liveness built no dependency check"


def test_an_unknown_probe_is_400() -> None:
    status, body, _ = get_health({"probe": "deep"})
    assert status == 400
    assert body["status"] == "bad_request"


def test_key_vault_down_fails_readiness_without_details(tmp_path: Path, fresh_checks: None) -> None:
    vault = FakeKeyVault()
    vault.down = True
    runtime.install(keyvault_service(tmp_path, vault, SqliteIdempotencyStore(tmp_path / "i.sqlite")))
    status, body, response = get_health()
    assert status == 503
    assert body["checks"] == {"configuration": "ok", "idempotencyStore": "ok", "credentialStore": "failed"}
    assert vault.url.encode() not in response.get_body()
    assert vault.requests, "the probe went to the vault"
    assert {r.path for r in vault.requests} == {"/secrets/merchant-account-0"}


def test_key_vault_answering_not_found_is_reachable(tmp_path: Path, fresh_checks: None) -> None:
    vault = FakeKeyVault()
    runtime.install(keyvault_service(tmp_path, vault, SqliteIdempotencyStore(tmp_path / "i.sqlite")))
    status, body, _ = get_health()
    assert (status, body["checks"]["credentialStore"]) == (200, "ok")
    assert vault.reads("merchant-account-0") == 1


def test_probes_read_key_vault_once_per_ttl_not_once_per_probe(tmp_path: Path, fresh_checks: None) -> None:
    vault = FakeKeyVault()
    store = RecordingStore(tmp_path / "i.sqlite")
    runtime.install(keyvault_service(tmp_path, vault, store))
    threads = [threading.Thread(target=get_health) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for _ in range(30):
        assert get_health()[0] == 200
    assert vault.reads() == 1
    assert store.reads == [health.PROBE_SCOPE]

    checks = health._checks
    assert checks is not None
    # Past the TTL the next probe reads again, once.
    for check in (checks.credentials, checks.idempotency):
        check._result = (check._clock() - health.RESULT_TTL_SECONDS, check._result[1])  # type: ignore[index]
    for _ in range(5):
        get_health()
    assert vault.reads() == 2
    assert len(store.reads) == 2


def test_idempotency_store_down_fails_readiness_and_the_failure_is_cached(
    tmp_path: Path, fresh_checks: None
) -> None:
    settings = make_settings(tmp_path)
    write_credentials(settings.local_credentials_file, {1001: {"gatewayTypeId": 900, "credentials": {}}})
    built = runtime.build_service(settings)
    store = RecordingStore(tmp_path / "i.sqlite")
    store.down = True
    runtime.install(PaymentService(settings, built.factory, store, lambda: b"health-test-key"))
    for _ in range(3):
        status, body, _ = get_health()
        assert status == 503
        assert body["checks"] == {"configuration": "ok", "idempotencyStore": "failed", "credentialStore": "ok"}
    assert len(store.reads) == 1, "an outage is not hammered: the failure is kept for the TTL too"


def test_a_hung_check_answers_timed_out_within_the_budget_and_runs_once() -> None:
    release = threading.Event()
    runs: list[float] = []

    def hang() -> None:
        runs.append(time.monotonic())
        release.wait(10)

    check = health.CachedCheck("slow", hang, ttl=30)
    try:
        started = time.monotonic()
        assert check.status(0.2) is health.Status.TIMED_OUT
        assert check.status(0.2) is health.Status.TIMED_OUT
        assert time.monotonic() - started < 3.0, "a probe waited for the hung check, not its own 0.2 s"
        assert len(runs) == 1, "the second probe waited on the run in flight instead of starting another"
    finally:
        release.set()
    deadline = time.monotonic() + 5
    while check.status() is not health.Status.OK and time.monotonic() < deadline:
        time.sleep(0.01)
    assert check.status() is health.Status.OK
    assert len(runs) == 1


def test_a_replaced_service_gets_fresh_checks(tmp_path: Path, fresh_checks: None) -> None:
    settings = make_settings(tmp_path)
    write_credentials(settings.local_credentials_file, {})
    first = runtime.build_service(settings)
    runtime.install(first)
    get_health()
    second = runtime.build_service(settings)
    runtime.install(second)
    get_health()
    assert health._checks is not None and health._checks.service is second


class HangingStore(RecordingStore):
    def __init__(self, path: Path, release: threading.Event) -> None:
        super().__init__(path)
        self.release = release

    def get(self, scope: str) -> Record | None:
        self.reads.append(scope)
        self.release.wait(10)
        return None


def test_two_hung_stores_cost_one_budget_not_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_checks: None
) -> None:
    release = threading.Event()
    vault = FakeKeyVault()
    store = HangingStore(tmp_path / "i.sqlite", release)
    service = keyvault_service(tmp_path, vault, store)
    original_get = service.factory.credentials.get

    def hanging_get(merchant_account_id: int) -> Any:
        release.wait(10)
        return original_get(merchant_account_id)

    monkeypatch.setattr(service.factory.credentials, "get", hanging_get)
    monkeypatch.setattr(health, "CHECK_TIMEOUT_SECONDS", 1.0)
    runtime.install(service)
    try:
        started = time.monotonic()
        status, body, _ = get_health()
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert status == 503
    assert body["checks"] == {"configuration": "ok", "idempotencyStore": "timed_out", "credentialStore": "timed_out"}
    # One budget is 1 s, two would be 2 s: the margin either side absorbs a loaded runner's stalls.
    assert 0.95 < elapsed < 1.9, elapsed


def _table_service(tmp_path: Path, connection_string: str) -> PaymentService:
    settings = make_settings(
        tmp_path, idempotency_store="table", storage_connection_string=connection_string,
        idempotency_table_name="healthprobe",
    )
    write_credentials(settings.local_credentials_file, {1001: {"gatewayTypeId": 900, "credentials": {}}})
    built = runtime.build_service(make_settings(tmp_path))
    return PaymentService(
        settings, built.factory, TableIdempotencyStore.from_settings(settings), lambda: b"health-test-key"
    )


def test_the_table_store_on_azurite_is_ready(azurite: str, tmp_path: Path, fresh_checks: None) -> None:
    runtime.install(_table_service(tmp_path, azurite))
    status, body, _ = get_health()
    assert (status, body["checks"]["idempotencyStore"]) == (200, "ok"), body


def test_an_unreachable_table_store_answers_within_the_budget(tmp_path: Path, fresh_checks: None) -> None:
    closed = free_port()
    connection_string = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={DEV_ACCOUNT_KEY};TableEndpoint=http://127.0.0.1:{closed}/devstoreaccount1;"
    )
    runtime.install(_table_service(tmp_path, connection_string))
    started = time.monotonic()
    status, body, _ = get_health()
    elapsed = time.monotonic() - started
    assert status == 503
    assert body["checks"]["idempotencyStore"] in ("failed", "timed_out"), body
    assert body["checks"]["credentialStore"] == "ok"
    assert elapsed < health.CHECK_TIMEOUT_SECONDS + 0.5, elapsed
