"""The one settings object: read once from the environment, typed, validated.

In Azure these are app settings; locally `local.settings.json` `Values` (loaded into the
environment by the devhost or `func start`, the environment winning).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CREDENTIALS_FILE = REPO_ROOT / "local.credentials.json"
HOST_JSON = REPO_ROOT / "host.json"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the setting, never its value."""


def function_timeout_seconds(host_json: Path = HOST_JSON) -> float:
    """host.json's `functionTimeout` ([d.]hh:mm:ss) in seconds: no invocation runs longer."""
    try:
        raw = str(json.loads(host_json.read_text(encoding="utf-8"))["functionTimeout"])
    except (OSError, ValueError, KeyError, TypeError):
        raise SettingsError(f"{host_json.name} must set functionTimeout") from None
    match = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})", raw.strip())
    if match is None:
        # "-1" (unbounded) included: the idempotency lease must outlast every invocation.
        raise SettingsError(f"{host_json.name} functionTimeout must be a bounded [d.]hh:mm:ss")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


FUNCTION_TIMEOUT_SECONDS = function_timeout_seconds()
LEASE_MARGIN_SECONDS = 60.0
"""Past the function timeout: the host's own lag in stopping an invocation, and clock skew between
the instance that wrote a record's time and the one reading it."""
DEFAULT_LEASE_SECONDS = FUNCTION_TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false")


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number") from None
    if not value > minimum:
        raise SettingsError(f"{name} must be greater than {minimum:g}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}")
    return value


def _lease(env: Mapping[str, str], function_timeout: float) -> float:
    lease = _float(env, "IDEMPOTENCY_LEASE_SECONDS", function_timeout + LEASE_MARGIN_SECONDS)
    if lease <= function_timeout:
        # A shorter lease would let a retry (or the reconciler) take over a request that is still
        # running, and both would act at the gateway.
        raise SettingsError(
            f"IDEMPOTENCY_LEASE_SECONDS must be longer than host.json's functionTimeout ({function_timeout:g} s)"
        )
    return lease


def _decimal(env: Mapping[str, str], name: str, default: str) -> Decimal:
    raw = env.get(name) or default
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise SettingsError(f"{name} must be a decimal amount") from None
    if not value.is_finite() or value <= 0:
        raise SettingsError(f"{name} must be a positive amount")
    return value


def _cardconnect_url(env: Mapping[str, str]) -> str:
    url = (env.get("CARDCONNECT_URL") or "").strip()
    if url:
        return url.rstrip("/")
    # V1 configured a bare host name; https and the REST path were implied.
    host = (env.get("CARDCONNECT_HOSTNAME") or "").strip()
    if host:
        return f"https://{host}/cardconnect/rest"
    return "https://fts-uat.cardconnect.com/cardconnect/rest"


def _otlp_endpoint(env: Mapping[str, str]) -> str:
    endpoint = (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "").strip().rstrip("/")
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise SettingsError("OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL")
    return endpoint


@dataclass(frozen=True)
class Settings:
    credential_source: Literal["keyvault", "file"] = "file"
    key_vault_url: str = ""
    local_credentials_file: Path = DEFAULT_CREDENTIALS_FILE
    credential_cache_ttl_seconds: float = 300.0
    cardconnect_url: str = "https://fts-uat.cardconnect.com/cardconnect/rest"
    payload_api_url: str = "https://api.payload.com"
    enable_simulator: bool = False
    allow_request_credentials: bool = False
    gateway_connect_timeout_seconds: float = 5.0
    # CardConnect waits 31 s for the processor and answers "Timed out" at 32 s, so a shorter read
    # timeout would turn its definite answers into unknown outcomes.
    gateway_timeout_seconds: float = 40.0
    max_amount: Decimal = Decimal("100000.00")
    idempotency_store: Literal["sqlite", "table"] = "sqlite"
    idempotency_sqlite_path: Path = REPO_ROOT / ".data" / "idempotency.sqlite"
    idempotency_table_name: str = "idempotency"
    storage_connection_string: str = field(default="", repr=False)
    storage_table_service_uri: str = ""
    idempotency_hmac_key: str = field(default="", repr=False)
    idempotency_hmac_secret_name: str = ""
    function_timeout_seconds: float = FUNCTION_TIMEOUT_SECONDS
    """host.json's functionTimeout: not a setting, read from the file the host itself reads."""
    # An in-progress record older than the lease was left by an instance that died mid-call; the
    # gateway may have acted, so it is treated as unknown. Longer than any invocation can run.
    idempotency_lease_seconds: float = DEFAULT_LEASE_SECONDS
    idempotency_retention_hours: float = 48.0
    reconcile_after_seconds: float = 600.0
    # An attempt each RECONCILE_AFTER_SECONDS (on the 5-minute timer): 2-3 hours of gateway trouble
    # before an operator is asked to settle the record by hand.
    reconcile_max_attempts: int = 12
    telemetry_enabled: bool = True
    applicationinsights_connection_string: str = field(default="", repr=False)
    applicationinsights_authentication_string: str = field(default="", repr=False)
    otel_exporter_otlp_endpoint: str = ""

    @property
    def telemetry_exporter(self) -> Literal["azure_monitor", "otlp", "off"]:
        """Where telemetry goes: Application Insights wins over OTLP; neither (or TELEMETRY_ENABLED
        false) means none at all."""
        if not self.telemetry_enabled:
            return "off"
        if self.applicationinsights_connection_string:
            return "azure_monitor"
        return "otlp" if self.otel_exporter_otlp_endpoint else "off"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        source = (env.get("CREDENTIAL_SOURCE") or "file").strip().lower()
        if source not in ("keyvault", "file"):
            raise SettingsError("CREDENTIAL_SOURCE must be keyvault or file")
        key_vault_url = (env.get("KEY_VAULT_URL") or "").strip()
        if source == "keyvault" and not key_vault_url.startswith("https://"):
            raise SettingsError("KEY_VAULT_URL must be an https:// vault URL when CREDENTIAL_SOURCE=keyvault")
        credentials_file = Path(env.get("LOCAL_CREDENTIALS_FILE") or DEFAULT_CREDENTIALS_FILE)
        if not credentials_file.is_absolute():
            credentials_file = REPO_ROOT / credentials_file
        store = (env.get("IDEMPOTENCY_STORE") or "sqlite").strip().lower()
        if store not in ("sqlite", "table"):
            raise SettingsError("IDEMPOTENCY_STORE must be sqlite or table")
        sqlite_path = Path(env.get("IDEMPOTENCY_SQLITE_PATH") or REPO_ROOT / ".data" / "idempotency.sqlite")
        if not sqlite_path.is_absolute():
            sqlite_path = REPO_ROOT / sqlite_path
        table_uri = (env.get("AzureWebJobsStorage__tableServiceUri") or "").strip()
        connection_string = (env.get("AzureWebJobsStorage") or "").strip()
        if store == "table" and not (table_uri or connection_string):
            raise SettingsError(
                "IDEMPOTENCY_STORE=table needs AzureWebJobsStorage or AzureWebJobsStorage__tableServiceUri"
            )
        return cls(
            idempotency_store="table" if store == "table" else "sqlite",
            idempotency_sqlite_path=sqlite_path,
            idempotency_table_name=(env.get("IDEMPOTENCY_TABLE_NAME") or "idempotency").strip(),
            storage_connection_string=connection_string,
            storage_table_service_uri=table_uri,
            idempotency_hmac_key=env.get("IDEMPOTENCY_HMAC_KEY") or "",
            idempotency_hmac_secret_name=(env.get("IDEMPOTENCY_HMAC_SECRET_NAME") or "").strip(),
            idempotency_lease_seconds=_lease(env, FUNCTION_TIMEOUT_SECONDS),
            idempotency_retention_hours=_float(env, "IDEMPOTENCY_RETENTION_HOURS", 48.0, minimum=24.0 - 1e-9),
            reconcile_after_seconds=_float(env, "RECONCILE_AFTER_SECONDS", 600.0),
            reconcile_max_attempts=_int(env, "RECONCILE_MAX_ATTEMPTS", 12),
            credential_source="keyvault" if source == "keyvault" else "file",
            key_vault_url=key_vault_url,
            local_credentials_file=credentials_file,
            credential_cache_ttl_seconds=_float(env, "CREDENTIAL_CACHE_TTL_SECONDS", 300.0),
            cardconnect_url=_cardconnect_url(env),
            payload_api_url=(env.get("PAYLOAD_API_URL") or "https://api.payload.com").strip().rstrip("/"),
            enable_simulator=_bool(env, "ENABLE_SIMULATOR", False),
            allow_request_credentials=_bool(env, "ALLOW_REQUEST_CREDENTIALS", False),
            gateway_connect_timeout_seconds=_float(env, "GATEWAY_CONNECT_TIMEOUT_SECONDS", 5.0),
            gateway_timeout_seconds=_float(env, "GATEWAY_TIMEOUT_SECONDS", 40.0),
            max_amount=_decimal(env, "MAX_PAYMENT_AMOUNT", "100000.00"),
            telemetry_enabled=_bool(env, "TELEMETRY_ENABLED", True),
            applicationinsights_connection_string=(env.get("APPLICATIONINSIGHTS_CONNECTION_STRING") or "").strip(),
            applicationinsights_authentication_string=(
                env.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING") or ""
            ).strip(),
            otel_exporter_otlp_endpoint=_otlp_endpoint(env),
        )
