"""`tools.accounts` sets an Authorize.Net account's credentials and verifies them against the fake,
charging nobody; an account without the Transaction Details API is told so at once."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from shared.settings import Settings
from tests.conftest import LeakGuard
from tests.fakes.authorizenet import AuthorizeNetFake
from tests.fakes.keyvault import FakeKeyVault
from tools import accounts

ACCOUNT = 4301
LOGIN, KEY = "univ-c-login", "UnivCKey00000003"


@pytest.fixture
def fake() -> Iterator[AuthorizeNetFake]:
    with AuthorizeNetFake(merchants={LOGIN: KEY}) as server:
        yield server


@pytest.fixture
def vault(leak_guard: LeakGuard) -> FakeKeyVault:
    leak_guard.watch(LOGIN, KEY)
    return FakeKeyVault()


def run(vault: FakeKeyVault, fake: AuthorizeNetFake, *argv: str, stdin: str = "") -> int:
    return accounts.main(
        ["--vault-url", vault.url, *argv], secrets=vault.client(), prompt=lambda text: "", stdin=io.StringIO(stdin),
        settings=Settings.from_env({"AUTHORIZENET_URL": fake.base_url}),
    )


def test_set_then_verify_charges_nobody(
    vault: FakeKeyVault, fake: AuthorizeNetFake, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = json.dumps({"credentials": {"API Login ID": LOGIN, "Transaction Key": KEY, "heldForReview": "accept"}})
    assert run(vault, fake, "set", str(ACCOUNT), "--gateway-type", "3", "--from-file", "-", stdin=secret) == 0
    (stored,) = vault.secrets[f"merchant-account-{ACCOUNT}"]
    assert json.loads(stored.value) == {"gatewayTypeId": 3, "credentials": {
        "apiLoginId": LOGIN, "transactionKey": KEY, "heldForReview": "accept"}}

    assert run(vault, fake, "verify", str(ACCOUNT)) == 0
    assert "Authorize.Net accepted the credentials" in capsys.readouterr().out
    roots = [next(iter(r.body)) for r in fake.requests]
    assert roots == ["authenticateTestRequest", "getUnsettledTransactionListRequest"]
    assert list(fake.ledger) == []


def test_verify_reports_refused_credentials_and_a_missing_details_api(
    vault: FakeKeyVault, fake: AuthorizeNetFake, capsys: pytest.CaptureFixture[str]
) -> None:
    vault.set(f"merchant-account-{ACCOUNT}", json.dumps(
        {"gatewayTypeId": 3, "credentials": {"apiLoginId": LOGIN, "transactionKey": "RevokedKey000000"}}))
    assert run(vault, fake, "verify", str(ACCOUNT)) == 1
    assert "Authorize.Net rejected the credentials" in capsys.readouterr().out

    vault.set(f"merchant-account-{ACCOUNT}", json.dumps(
        {"gatewayTypeId": 3, "credentials": {"apiLoginId": LOGIN, "transactionKey": KEY}}))
    fake.details_off.add(LOGIN)
    assert run(vault, fake, "verify", str(ACCOUNT)) == 2
    err = capsys.readouterr().err
    assert "Transaction Details API" in err and "E00011" in err
    assert list(fake.ledger) == []
