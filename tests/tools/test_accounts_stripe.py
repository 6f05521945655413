"""The accounts CLI for a Stripe account: `set` prompts for the secret key by its label and stores
the contract's JSON; `verify` asks Stripe (its fake) with reads only, and charges nobody."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from shared.settings import Settings
from tests.conftest import LeakGuard
from tests.fakes.keyvault import FakeKeyVault
from tests.fakes.stripe import StripeFake
from tools import accounts

ACCOUNT = 5201
NAME = f"merchant-account-{ACCOUNT}"
KEY = "sk_test_51AccountsToolKeyAbcdef"
RESTRICTED = "rk_test_51OnlyPaymentIntentsAbc"


@pytest.fixture
def vault(leak_guard: LeakGuard) -> Iterator[FakeKeyVault]:
    leak_guard.watch(KEY, RESTRICTED)
    yield FakeKeyVault()


@pytest.fixture
def fake() -> Iterator[StripeFake]:
    keys = {KEY: "acct_tool", RESTRICTED: "acct_tool"}
    with StripeFake(keys, restricted={RESTRICTED: frozenset({"payment_intents"})}) as server:
        yield server


def run(vault: FakeKeyVault, fake: StripeFake, *argv: str, answers: dict[str, str] | None = None) -> int:
    prompts: list[str] = []

    def prompt(text: str) -> str:
        prompts.append(text)
        return next((value for name, value in (answers or {}).items() if f"({name})" in text), "")

    code = accounts.main(
        ["--vault-url", vault.url, *argv],
        secrets=vault.client(),
        prompt=prompt,
        stdin=io.StringIO(""),
        settings=Settings.from_env({"STRIPE_URL": fake.base_url, "GATEWAY_TIMEOUT_SECONDS": "2"}),
    )
    assert all(text == "Stripe Secret Key (secretKey): " for text in prompts), prompts
    return code


def test_set_then_verify_reads_only(
    vault: FakeKeyVault, fake: StripeFake, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(vault, fake, "set", str(ACCOUNT), "--gateway-type", "5", answers={"secretKey": KEY}) == 0
    assert json.loads(vault.secrets[NAME][-1].value) == {"gatewayTypeId": 5, "credentials": {"secretKey": KEY}}

    assert run(vault, fake, "verify", str(ACCOUNT)) == 0

    assert [(r.method, r.path) for r in fake.requests] == [("GET", "/v1/payment_intents"), ("GET", "/v1/refunds")]
    assert all(r.bearer == KEY for r in fake.requests)
    assert fake.transactions == {}
    out = capsys.readouterr()
    assert "Stripe accepted the credentials" in out.out
    assert KEY not in out.out + out.err


@pytest.mark.parametrize("key", ["sk_test_51RevokedKeyAbcdef", RESTRICTED], ids=["revoked", "restricted"])
def test_verify_refused(vault: FakeKeyVault, fake: StripeFake, capsys: pytest.CaptureFixture[str], key: str) -> None:
    vault.set(NAME, json.dumps({"gatewayTypeId": 5, "credentials": {"secretKey": key}}))

    assert run(vault, fake, "verify", str(ACCOUNT)) == 1

    out = capsys.readouterr()
    assert "Stripe rejected the credentials" in out.out
    assert key not in out.out + out.err
    assert fake.transactions == {}
