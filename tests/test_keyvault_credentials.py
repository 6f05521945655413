"""Credentials from Key Vault through the real SecretClient with an injected transport."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from shared import runtime
from shared.credentials import (
    AccountNotFound,
    CachedCredentialStore,
    MalformedSecret,
    SourceUnavailable,
    format_secret,
)
from tests.conftest import LeakGuard
from tests.fakes.keyvault import FakeKeyVault
from tests.support import install_service, make_settings, pay, payment_body


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cached(vault: FakeKeyVault, clock: FakeClock, ttl: float = 300) -> CachedCredentialStore:
    return CachedCredentialStore(vault.client().load, ttl_seconds=ttl, clock=clock)


CARDCONNECT_SECRET = {"username": "cc-user", "password": "cc-password-1", "merchantId": "496160873888"}


def test_first_read_answers_the_challenge_then_reads_once_per_ttl() -> None:
    vault, clock = FakeKeyVault(), FakeClock()
    vault.set("merchant-account-2001", format_secret(2, CARDCONNECT_SECRET))
    store = cached(vault, clock)

    for _ in range(50):
        account = store.get(2001)
    assert account.gateway_type_id == 2
    assert dict(account.credentials) == CARDCONNECT_SECRET
    assert [r.authorized for r in vault.requests] == [False, True]  # the 401 challenge, then one read
    assert vault.reads() == 1

    clock.now += 299
    store.get(2001)
    assert vault.reads() == 1
    clock.now += 2
    store.get(2001)
    assert vault.reads() == 2


def test_cold_cache_under_concurrency_makes_one_read_per_account() -> None:
    vault, clock = FakeKeyVault(), FakeClock()
    for account in (2001, 2002):
        vault.set(f"merchant-account-{account}", format_secret(2, CARDCONNECT_SECRET))
    store = cached(vault, clock)
    barrier = threading.Barrier(20)

    def worker(account: int) -> None:
        barrier.wait()
        for _ in range(10):
            store.get(account)

    threads = [threading.Thread(target=worker, args=(2001 + i % 2,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert vault.reads("merchant-account-2001") == 1
    assert vault.reads("merchant-account-2002") == 1


def test_rotation_is_picked_up_after_the_ttl_and_at_once_on_refresh() -> None:
    vault, clock = FakeKeyVault(), FakeClock()
    first = vault.set("merchant-account-2001", format_secret(2, CARDCONNECT_SECRET))
    store = cached(vault, clock)
    assert store.get(2001).version == first

    rotated = vault.set("merchant-account-2001", format_secret(2, {**CARDCONNECT_SECRET, "password": "cc-password-2"}))
    assert store.get(2001).version == first  # still cached
    clock.now += 301
    assert store.get(2001).version == rotated
    assert store.get(2001).credentials["password"] == "cc-password-2"

    third = vault.set("merchant-account-2001", format_secret(2, {**CARDCONNECT_SECRET, "password": "cc-password-3"}))
    assert store.refresh(2001).version == third
    assert store.get(2001).credentials["password"] == "cc-password-3"


def test_warm_cache_serves_through_an_outage_and_cold_outage_fails() -> None:
    vault, clock = FakeKeyVault(), FakeClock()
    vault.set("merchant-account-2001", format_secret(2, CARDCONNECT_SECRET))
    vault.set("merchant-account-2002", format_secret(2, CARDCONNECT_SECRET))
    store = cached(vault, clock)
    store.get(2001)
    vault.down = True
    clock.now += 10_000
    assert store.get(2001).credentials["username"] == "cc-user"
    with pytest.raises(SourceUnavailable) as error:
        store.get(2002)
    assert "Key Vault" in str(error.value)


def test_missing_and_malformed_secrets(leak_guard: LeakGuard) -> None:
    vault, clock = FakeKeyVault(), FakeClock()
    store = cached(vault, clock)
    with pytest.raises(AccountNotFound):
        store.get(2009)
    vault.set("merchant-account-2010", "password=hunter2-not-json")
    leak_guard.watch("hunter2-not-json")
    with pytest.raises(MalformedSecret) as error:
        store.get(2010)
    assert "hunter2" not in str(error.value)


def test_deleted_secret_stops_being_served() -> None:
    vault, clock = FakeKeyVault(), FakeClock()
    vault.set("merchant-account-2001", format_secret(2, CARDCONNECT_SECRET))
    store = cached(vault, clock)
    store.get(2001)
    vault.delete("merchant-account-2001")
    clock.now += 301
    with pytest.raises(AccountNotFound):
        store.get(2001)


@pytest.fixture
def keyvault_service(tmp_path: Path) -> tuple[FakeKeyVault, FakeClock]:
    vault, clock = FakeKeyVault(), FakeClock()
    settings = make_settings(tmp_path, credential_source="keyvault", key_vault_url=vault.url)
    install_service(settings, credentials=cached(vault, clock))
    yield vault, clock
    runtime.install(None)


def test_many_payments_make_one_key_vault_read(keyvault_service: tuple[FakeKeyVault, FakeClock]) -> None:
    vault, _ = keyvault_service
    vault.set("merchant-account-1001", json.dumps({"gatewayTypeId": 900, "credentials": {}}))
    for _ in range(30):
        assert pay(payment_body()).status == 200
    assert vault.reads() == 1


def test_cold_outage_is_503_and_warm_outage_still_pays(keyvault_service: tuple[FakeKeyVault, FakeClock]) -> None:
    vault, clock = keyvault_service
    vault.set("merchant-account-1001", json.dumps({"gatewayTypeId": 900, "credentials": {}}))
    vault.set("merchant-account-1002", json.dumps({"gatewayTypeId": 900, "credentials": {}}))
    assert pay(payment_body()).status == 200
    vault.down = True
    clock.now += 10_000
    assert pay(payment_body()).status == 200
    cold = pay(payment_body(merchantAccountId=1002))
    assert cold.status == 503
    assert cold.detail["statusCode"] == "credentials_unavailable"
    assert cold.headers.get("Retry-After")


def test_missing_secret_is_400_not_configured_and_no_gateway_call(
    keyvault_service: tuple[FakeKeyVault, FakeClock],
) -> None:
    from gateways.simulator import LEDGER

    vault, _ = keyvault_service
    before = len(LEDGER.payments(3003))
    result = pay(payment_body(merchantAccountId=3003))
    assert result.status == 400
    assert result.detail["statusCode"] == "merchant_account_not_configured"
    assert "3003" in result.detail["responseDetail"]
    assert "Retry-After" not in result.headers
    assert len(LEDGER.payments(3003)) == before
    assert vault.reads("merchant-account-3003") == 1

    # Once an operator stores the secret, the next request is served: nothing negative was cached.
    vault.set("merchant-account-3003", json.dumps({"gatewayTypeId": 900, "credentials": {}}))
    assert pay(payment_body(merchantAccountId=3003)).status == 200


@pytest.mark.parametrize(
    "value",
    [
        "password=hunter2-not-json",
        json.dumps({"credentials": {}}),  # no gatewayTypeId
        json.dumps({"gatewayTypeId": 2, "credentials": {"username": "u", "merchantId": "496160873888"}}),
    ],
)
def test_a_malformed_secret_is_503_credentials_malformed(
    keyvault_service: tuple[FakeKeyVault, FakeClock], leak_guard: LeakGuard, value: str
) -> None:
    vault, _ = keyvault_service
    vault.set("merchant-account-2010", value)
    leak_guard.watch("hunter2-not-json")
    result = pay(payment_body(gatewayTypeId=2, merchantAccountId=2010))
    assert result.status == 503
    assert result.detail["statusCode"] == "credentials_malformed"
    assert "2010" in result.detail["responseDetail"]
    assert result.headers["Retry-After"]
    assert "hunter2" not in result.text
