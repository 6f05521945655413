"""Stripe through the devhost over real HTTP: token sales, declines, unknown outcomes and refunds,
against the stateful fake on loopback, with the secret key and the tokens watched everywhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import support
from tests.devhost_process import devhost
from tests.fakes.stripe import StripeFake
from tests.support import check_no_leaks, new_meta, payment_body, refund_body, watch_sent

KEY = "sk_test_51DevhostStripeKeyAbcdef"
ACCOUNT = 5101
STRIPE = {"gatewayTypeId": 5, "gatewayTypeName": "Stripe", "merchantAccountId": ACCOUNT}


@dataclass
class Host:
    base: str
    log_path: Path
    fake: StripeFake

    def pay(self, pm: str, meta: dict[str, Any] | None = None, **changes: Any) -> requests.Response:
        token = {"type": "stripe_payment_method", "value": pm}
        body = payment_body(**{**STRIPE, "account": None, "expDate": None, "cvv2": None, "token": token, **changes})
        watch(pm)
        answer = requests.post(f"{self.base}/paymentGateway/processPayment",
                               headers={"BVMeta": json.dumps(meta or new_meta())}, json=body, timeout=15)
        check_no_leaks(answer.text)
        return answer

    def refund(self, payment_id: str, meta: dict[str, Any] | None = None, **changes: Any) -> requests.Response:
        body = refund_body(payment_id, **{**STRIPE, **changes})
        answer = requests.patch(f"{self.base}/paymentGateway/processRefund",
                                headers={"BVMeta": json.dumps(meta or new_meta())}, json=body, timeout=15)
        check_no_leaks(answer.text)
        return answer

    def audit(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text().splitlines()
        return [json.loads(line[line.index("{"):]) for line in lines if "paymentgateway.audit" in line]


def watch(*values: str) -> None:
    assert support.CURRENT_GUARD is not None
    support.CURRENT_GUARD.watch(*values)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    with StripeFake({KEY: "acct_devhost"}) as fake, serving(tmp_path, fake) as served:
        yield served


@contextmanager
def serving(tmp_path: Path, fake: StripeFake) -> Iterator[Host]:
    credentials = {str(ACCOUNT): {"gatewayTypeId": 5, "credentials": {"secretKey": KEY}}}
    watch_sent({"credentials": {"secretKey": KEY}})
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps(credentials))
    env = {
        "CREDENTIAL_SOURCE": "file",
        "LOCAL_CREDENTIALS_FILE": str(path),
        "IDEMPOTENCY_STORE": "sqlite",
        "IDEMPOTENCY_SQLITE_PATH": str(tmp_path / "idempotency.sqlite"),
        "DEVHOST_LOG": str(tmp_path / "devhost.log"),
        "STRIPE_URL": fake.base_url,
        "GATEWAY_TIMEOUT_SECONDS": "2",
    }
    with devhost(env, "--no-timers") as (base, log_path):
        yield Host(base, log_path, fake)
    log = log_path.read_text()
    check_no_leaks(log)
    assert KEY not in log and "pm_" not in log


def test_a_token_sale_and_its_refunds(host: Host) -> None:
    pm = host.fake.payment_method("1881")
    paid = host.pay(pm, amount=40.00)
    assert paid.status_code == 200, paid.text
    payment_id = paid.json()["detail"]["paymentTransactionId"]
    [charge] = host.fake.live_charges()
    assert charge.id == payment_id and charge.amount == 4000
    [sale] = [r for r in host.fake.requests if r.method == "POST"]
    assert sale.body["payment_method"] == pm and sale.body["error_on_requires_action"] == "true"

    partial = host.refund(payment_id, amount=15.00)
    rest = host.refund(payment_id)
    too_much = host.refund(payment_id, amount=1.00)

    assert partial.status_code == 200, partial.text
    assert rest.status_code == 200, rest.text
    assert too_much.status_code in (400, 409, 422), too_much.text
    assert host.fake.live_charges()[0].refunded == 40
    refunds = [t for t in host.fake.transactions.values() if t.object == "refund"]
    assert sorted(t.amount for t in refunds) == [1500, 2500]
    assert {partial.json()["detail"]["paymentTransactionId"], rest.json()["detail"]["paymentTransactionId"]} == {
        t.id for t in refunds
    }
    masked = [a["data"].get("maskedCardNumber") for a in host.audit()]
    assert masked[0] is not None and masked[0].endswith("1881")


@pytest.mark.parametrize("pm", ["pm_card_chargeDeclined", "pm_card_authenticationRequired"])
def test_declines_are_400_and_charge_nothing(host: Host, pm: str) -> None:
    declined = host.pay(pm)

    assert declined.status_code == 400, declined.text
    assert declined.json()["detail"]["success"] is False
    assert host.fake.live_charges() == []


def test_a_lost_answer_is_502_and_the_retry_finds_the_charge_without_charging_again(host: Host) -> None:
    pm = host.fake.payment_method()
    host.fake.set_fault("drop", match="POST /v1/payment_intents$")
    meta = new_meta()

    first = host.pay(pm, meta)
    retried = host.pay(pm, meta)

    assert first.status_code == 502, first.text
    assert first.json()["detail"]["statusCode"] == "outcome_unknown"
    assert retried.status_code == 200, retried.text
    [charge] = host.fake.live_charges()
    assert retried.json()["detail"]["paymentTransactionId"] == charge.id
    assert [r.method for r in host.fake.requests if r.path == "/v1/payment_intents"][:2] == ["POST", "GET"]


def test_a_card_number_for_stripe_is_refused_before_any_call(host: Host) -> None:
    body = payment_body(**STRIPE, account="4242424242424242")
    watch_sent(body)

    refused = requests.post(f"{host.base}/paymentGateway/processPayment",
                            headers={"BVMeta": json.dumps(new_meta())}, json=body, timeout=15)

    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"]["statusCode"] == "card_number_not_accepted", refused.text
    check_no_leaks(refused.text)
    assert host.fake.requests == []
