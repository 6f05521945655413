"""The process's one PaymentService, built from the settings on first use.

A v1 function module is imported once per worker process and its invocations run on a thread
pool, so the service (credential cache, HTTP pools, store clients) is built once under a lock and
shared; nothing in it is specific to one merchant.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from gateways.http import HttpPool, Timeouts
from shared.credentials import (
    CachedCredentialStore,
    CredentialError,
    CredentialStore,
    FileCredentialStore,
    KeyVaultSecrets,
)
from shared.errors import CredentialsUnavailable
from shared.factory import GatewayFactory
from shared.flow import PaymentService
from shared.idempotency import IdempotencyStore, SqliteIdempotencyStore
from shared.settings import Settings, SettingsError
from shared.telemetry import OFF, Telemetry

logger = logging.getLogger("paymentgateway.runtime")
# The Azure SDKs log every request's URL and headers at INFO; the Functions worker logs INFO and
# up, which would flood Application Insights with one record per Key Vault or Table call.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
# urllib3 logs each request's path at DEBUG, and a gateway's paths may carry the merchant id (a
# credential field); our own HTTP layer logs host, status and time instead.
logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)

_lock = threading.Lock()
_service: PaymentService | None = None

# Only for local SQLite runs: fingerprints there never leave the developer's machine.
LOCAL_FINGERPRINT_KEY = b"local-development-fingerprint-key"


def build_vault(settings: Settings) -> KeyVaultSecrets | None:
    """The process's one Key Vault client (no I/O until first used), when a vault is configured."""
    return KeyVaultSecrets.connect(settings.key_vault_url) if settings.key_vault_url else None


def build_credentials(settings: Settings, vault: KeyVaultSecrets | None, telemetry: Telemetry = OFF) -> CredentialStore:
    if settings.credential_source == "keyvault":
        assert vault is not None  # Settings refuses keyvault without KEY_VAULT_URL
        load = telemetry.observe_credential_reads(vault.load, "keyvault")
        return CachedCredentialStore(load, settings.credential_cache_ttl_seconds)
    return telemetry.observe_credentials(FileCredentialStore(settings.local_credentials_file), "file")


def build_idempotency(settings: Settings, telemetry: Telemetry = OFF) -> IdempotencyStore:
    if settings.idempotency_store == "table":
        from shared.table_store import TableIdempotencyStore

        return telemetry.observe_store(TableIdempotencyStore.from_settings(settings), "table")
    return telemetry.observe_store(SqliteIdempotencyStore(settings.idempotency_sqlite_path), "sqlite")


def fingerprint_key_source(settings: Settings, vault: KeyVaultSecrets | None = None) -> Callable[[], bytes]:
    """Where the HMAC key for request fingerprints comes from: the setting, a Key Vault secret
    (read once, on first use), or, for local SQLite runs only, a fixed development key."""
    if settings.idempotency_hmac_key:
        key = settings.idempotency_hmac_key.encode()
        return lambda: key
    if settings.idempotency_hmac_secret_name and vault is not None:
        cached: list[bytes] = []
        gate = threading.Lock()
        name = settings.idempotency_hmac_secret_name

        def from_key_vault() -> bytes:
            with gate:
                if not cached:
                    try:
                        cached.append(vault.read_value(name).encode())
                    except CredentialError as error:
                        raise CredentialsUnavailable(f"the idempotency key could not be read: {error}") from None
                return cached[0]

        return from_key_vault
    if settings.idempotency_store == "sqlite":
        return lambda: LOCAL_FINGERPRINT_KEY
    raise SettingsError("IDEMPOTENCY_HMAC_KEY or IDEMPOTENCY_HMAC_SECRET_NAME must be set for the table store")


def build_telemetry(settings: Settings) -> Telemetry:
    """The process's telemetry: OpenTelemetry when an exporter is configured, else `OFF`. Here rather
    than in `shared/telemetry.py`, which the OpenTelemetry module builds on (no import cycle)."""
    if settings.telemetry_exporter == "off":
        return OFF
    from shared import telemetry_otel

    return telemetry_otel.configure(settings)


def build_service(settings: Settings, telemetry: Telemetry | None = None) -> PaymentService:
    """The service `settings` describe; `telemetry` defaults to what the settings configure."""
    telemetry = build_telemetry(settings) if telemetry is None else telemetry
    http = HttpPool(
        Timeouts(settings.gateway_connect_timeout_seconds, settings.gateway_timeout_seconds),
        observer=telemetry.http_observer(),
    )
    vault = build_vault(settings)
    factory = GatewayFactory(settings, build_credentials(settings, vault, telemetry), http)
    return PaymentService(
        settings,
        factory,
        build_idempotency(settings, telemetry),
        fingerprint_key_source(settings, vault),
        telemetry=telemetry,
    )


def service() -> PaymentService:
    global _service
    if _service is None:
        with _lock:
            if _service is None:
                _service = build_service(Settings.from_env())
    return _service


def install(replacement: PaymentService | None) -> None:
    """Replace the process's service (tests, the devhost after loading settings); None resets it."""
    global _service
    with _lock:
        _service = replacement
