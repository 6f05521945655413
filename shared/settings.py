"""The one settings object: read once from the environment, typed, validated.

In Azure these are app settings; locally `local.settings.json` `Values` (loaded into the
environment by the devhost or `func start`, the environment winning). Each setting's name, default
and bound is declared once, on its field below; `Settings.from_env` reads them with pydantic-settings.
Gateway URLs are not fields: each gateway declares its URLs and the setting that overrides them
(`gateways/`), and the settings carry only `GATEWAY_ENVIRONMENT` and the overrides that are set.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from gateways.registry import url_settings

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


def _flag(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    word = value.strip().lower()
    if word in {"1", "true", "yes", "on"}:
        return True
    if word in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _word(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _trimmed(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _in_repo(path: Path) -> Path:
    """A relative path is relative to the app's folder, whatever the working directory."""
    return path if path.is_absolute() else REPO_ROOT / path


def _otlp_endpoint(endpoint: str) -> str:
    endpoint = endpoint.rstrip("/")
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return endpoint


Flag = Annotated[bool, BeforeValidator(_flag)]
"""true/false, 1/0, yes/no, on/off, in any case."""
Choice = BeforeValidator(_word)
Text = Annotated[str, BeforeValidator(_trimmed)]
RepoPath = Annotated[Path, AfterValidator(_in_repo)]


def _setting(name: str, default: Any, **bounds: Any) -> Any:
    return Field(default, validation_alias=name, **bounds)


class Settings(BaseSettings):
    """Built from the environment by `from_env`. Constructed directly (tests, tools), it holds
    exactly what it is given over the defaults and reads no environment."""

    model_config = SettingsConfigDict(
        frozen=True, populate_by_name=True, case_sensitive=True, env_ignore_empty=True, extra="forbid"
    )

    credential_source: Annotated[Literal["keyvault", "file"], Choice] = _setting("CREDENTIAL_SOURCE", "file")
    key_vault_url: Text = _setting("KEY_VAULT_URL", "")
    local_credentials_file: RepoPath = _setting("LOCAL_CREDENTIALS_FILE", DEFAULT_CREDENTIALS_FILE)
    credential_cache_ttl_seconds: float = _setting("CREDENTIAL_CACHE_TTL_SECONDS", 300.0, gt=0)
    gateway_environment: Annotated[Literal["test", "live"], Choice] = _setting("GATEWAY_ENVIRONMENT", "test")
    gateway_url_overrides: Mapping[str, str] = Field(default_factory=dict)
    """The gateway URL settings that are set (each gateway's `url_setting`, and the older names a
    gateway still reads), by name."""
    enable_simulator: Flag = _setting("ENABLE_SIMULATOR", False)
    allow_request_credentials: Flag = _setting("ALLOW_REQUEST_CREDENTIALS", False)
    gateway_connect_timeout_seconds: float = _setting("GATEWAY_CONNECT_TIMEOUT_SECONDS", 5.0, gt=0)
    # The slowest gateway's own processor timeout (31-32 s at one of them) must fit inside the read
    # timeout, or its definite answers would turn into unknown outcomes.
    gateway_timeout_seconds: float = _setting("GATEWAY_TIMEOUT_SECONDS", 40.0, gt=0)
    max_amount: Decimal = _setting("MAX_PAYMENT_AMOUNT", Decimal("100000.00"), gt=0, allow_inf_nan=False)
    idempotency_store: Annotated[Literal["sqlite", "table"], Choice] = _setting("IDEMPOTENCY_STORE", "sqlite")
    idempotency_sqlite_path: RepoPath = _setting("IDEMPOTENCY_SQLITE_PATH", REPO_ROOT / ".data" / "idempotency.sqlite")
    idempotency_table_name: Text = _setting("IDEMPOTENCY_TABLE_NAME", "idempotency")
    storage_connection_string: Text = _setting("AzureWebJobsStorage", "", repr=False)
    storage_table_service_uri: Text = _setting("AzureWebJobsStorage__tableServiceUri", "")
    idempotency_hmac_key: str = _setting("IDEMPOTENCY_HMAC_KEY", "", repr=False)
    idempotency_hmac_secret_name: Text = _setting("IDEMPOTENCY_HMAC_SECRET_NAME", "")
    function_timeout_seconds: float = FUNCTION_TIMEOUT_SECONDS
    """host.json's functionTimeout: not a setting, read from the file the host itself reads."""
    # An in-progress record older than the lease was left by an instance that died mid-call; the
    # gateway may have acted, so it is treated as unknown. Longer than any invocation can run
    # (`from_env` refuses a lease at or below the function timeout).
    idempotency_lease_seconds: float = _setting("IDEMPOTENCY_LEASE_SECONDS", DEFAULT_LEASE_SECONDS, gt=0)
    idempotency_retention_hours: float = _setting("IDEMPOTENCY_RETENTION_HOURS", 48.0, ge=24)
    reconcile_after_seconds: float = _setting("RECONCILE_AFTER_SECONDS", 600.0, gt=0)
    # An attempt each RECONCILE_AFTER_SECONDS (on the 5-minute timer): 2-3 hours of gateway trouble
    # before an operator is asked to settle the record by hand.
    reconcile_max_attempts: int = _setting("RECONCILE_MAX_ATTEMPTS", 12, ge=1)
    telemetry_enabled: Flag = _setting("TELEMETRY_ENABLED", True)
    applicationinsights_connection_string: Text = _setting("APPLICATIONINSIGHTS_CONNECTION_STRING", "", repr=False)
    applicationinsights_authentication_string: Text = _setting(
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "", repr=False
    )
    otel_exporter_otlp_endpoint: Annotated[Text, AfterValidator(_otlp_endpoint)] = _setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT", ""
    )

    @field_validator("gateway_url_overrides", mode="after")
    @classmethod
    def _set_overrides_only(cls, overrides: Mapping[str, str]) -> Mapping[str, str]:
        return {name: value.strip() for name, value in overrides.items() if value.strip()}

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
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what the constructor is given: `from_env` is the one reader of the environment.
        return (init_settings,)

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        """Every setting's environment name (the gateway URL settings are the gateways' own)."""
        return tuple(str(info.validation_alias) for info in cls.model_fields.values() if info.validation_alias)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings `env` (default: the process environment) gives. Raises `SettingsError`
        naming the first setting that is malformed, never its value."""
        env = os.environ if env is None else env
        values = _Environment(cls, env)()
        overrides = {name: env[name] for name in url_settings() if env.get(name)}
        try:
            settings = cls(**values, gateway_url_overrides=overrides)
        except ValidationError as error:
            raise SettingsError(_explain(error)) from None
        _check_together(settings)
        return settings


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping, reading only declared settings:
    names exactly as written, and an empty value as unset."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(settings_cls, case_sensitive=True, env_ignore_empty=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._env, case_sensitive=True, ignore_empty=True)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field.validation_alias is None:
            return None, field_name, False
        return super().get_field_value(field, field_name)


def _explain(error: ValidationError) -> str:
    """The first problem as `NAME must ...`: from the field's declared type and bound, never from
    the value (pydantic's own messages and `input` may quote it)."""
    problem = error.errors(include_input=False, include_url=False)[0]
    name = str(problem["loc"][0]) if problem["loc"] else "a setting"
    field = next((f for f in Settings.model_fields.values() if f.validation_alias == name), None)
    kind, context = problem["type"], problem.get("ctx") or {}
    annotation = field.annotation if field is not None else None
    if kind == "value_error":
        return f"{name} {context.get('error')}"
    if kind == "literal_error":
        return f"{name} must be {str(context.get('expected', '')).replace(chr(39), '')}"
    if annotation is Decimal:
        return f"{name} must be a positive amount" if kind == "greater_than" else f"{name} must be a decimal amount"
    if kind == "greater_than":
        return f"{name} must be greater than {context['gt']:g}"
    if kind == "greater_than_equal":
        return f"{name} must be at least {context['ge']:g}"
    if annotation is int:
        return f"{name} must be a whole number"
    if annotation is float:
        return f"{name} must be a number"
    return f"{name} is not valid"


def _check_together(settings: Settings) -> None:
    """What one setting requires of another in a deployment (tests may build other combinations)."""
    if settings.credential_source == "keyvault" and not settings.key_vault_url.startswith("https://"):
        raise SettingsError("KEY_VAULT_URL must be an https:// vault URL when CREDENTIAL_SOURCE=keyvault")
    if settings.idempotency_store == "table" and not (
        settings.storage_table_service_uri or settings.storage_connection_string
    ):
        raise SettingsError(
            "IDEMPOTENCY_STORE=table needs AzureWebJobsStorage or AzureWebJobsStorage__tableServiceUri"
        )
    if settings.idempotency_lease_seconds <= settings.function_timeout_seconds:
        # A shorter lease would let a retry (or the reconciler) take over a request that is still
        # running, and both would act at the gateway.
        raise SettingsError(
            "IDEMPOTENCY_LEASE_SECONDS must be longer than host.json's functionTimeout "
            f"({settings.function_timeout_seconds:g} s)"
        )
