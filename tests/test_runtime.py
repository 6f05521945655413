"""How the process's service is put together from the settings."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from gateways.cardconnect import CardConnectGateway
from shared import runtime
from shared.errors import CredentialsUnavailable
from shared.factory import GatewayFactory
from shared.flow import PaymentService
from shared.idempotency import SqliteIdempotencyStore
from shared.settings import Settings, SettingsError
from tests.fakes.keyvault import FakeKeyVault
from tests.support import make_settings, pay, payment_body, write_credentials


def test_fingerprint_key_is_read_from_key_vault_once(tmp_path: Path) -> None:
    vault = FakeKeyVault()
    vault.set("idempotency-hmac-key", "a-long-random-hmac-key-value", content_type="text/plain")
    settings = make_settings(tmp_path, idempotency_hmac_secret_name="idempotency-hmac-key", key_vault_url=vault.url)
    key = runtime.fingerprint_key_source(settings, vault.client())
    assert key() == key() == b"a-long-random-hmac-key-value"
    assert vault.reads("idempotency-hmac-key") == 1


def test_key_vault_down_before_the_fingerprint_key_is_read_is_503(tmp_path: Path) -> None:
    vault = FakeKeyVault()
    vault.down = True
    settings = make_settings(tmp_path, idempotency_hmac_secret_name="idempotency-hmac-key", key_vault_url=vault.url)
    with pytest.raises(CredentialsUnavailable):
        runtime.fingerprint_key_source(settings, vault.client())()

    write_credentials(settings.local_credentials_file, {1001: {"gatewayTypeId": 900, "credentials": {}}})
    built = runtime.build_service(make_settings(tmp_path))
    service = PaymentService(
        settings,
        GatewayFactory(settings, built.factory._credentials, built.factory._http),
        SqliteIdempotencyStore(tmp_path / "i.sqlite"),
        runtime.fingerprint_key_source(settings, vault.client()),
    )
    runtime.install(service)
    try:
        answer = pay(payment_body())
        assert answer.status == 503
        assert answer.detail["statusCode"] == "credentials_unavailable"
    finally:
        runtime.install(None)


def test_the_table_store_needs_a_real_fingerprint_key(tmp_path: Path) -> None:
    settings = Settings(idempotency_store="table", storage_table_service_uri="https://st.table.core.windows.net")
    with pytest.raises(SettingsError, match="IDEMPOTENCY_HMAC"):
        runtime.fingerprint_key_source(settings)


def test_misconfigured_settings_answer_500_and_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CREDENTIAL_SOURCE", "vault")
    runtime.install(None)
    caplog.set_level(logging.ERROR)
    answer = pay(payment_body())
    assert answer.status == 500
    assert answer.detail["statusCode"] == "internal_error"
    assert any("CREDENTIAL_SOURCE" in r.getMessage() for r in caplog.records)
    assert json.dumps(answer.body)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CREDENTIAL_SOURCE", "vault"),
        ("ENABLE_SIMULATOR", "maybe"),
        ("GATEWAY_TIMEOUT_SECONDS", "-1"),
        ("MAX_PAYMENT_AMOUNT", "lots"),
        ("IDEMPOTENCY_STORE", "redis"),
        ("IDEMPOTENCY_RETENTION_HOURS", "1"),
    ],
)
def test_bad_settings_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def cardconnect_url(env: dict[str, str]) -> str:
    settings = Settings.from_env(env)
    return CardConnectGateway.base_url(settings.gateway_environment, settings.gateway_url_overrides)


def test_legacy_cardconnect_hostname_is_honoured() -> None:
    assert cardconnect_url({"CARDCONNECT_HOSTNAME": "fts.cardconnect.com"}) == (
        "https://fts.cardconnect.com/cardconnect/rest"
    )
    both = {"CARDCONNECT_HOSTNAME": "old.example", "CARDCONNECT_URL": "https://fts-uat.cardconnect.com/cardconnect/rest/"}
    assert cardconnect_url(both) == "https://fts-uat.cardconnect.com/cardconnect/rest"


def test_keyvault_source_needs_an_https_vault_url() -> None:
    with pytest.raises(SettingsError, match="KEY_VAULT_URL"):
        Settings.from_env({"CREDENTIAL_SOURCE": "keyvault", "KEY_VAULT_URL": "http://kv.example"})
