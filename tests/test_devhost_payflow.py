"""PayPal Payflow Pro through the devhost over real HTTP, against its stateful fake: sale, decline,
held for review, an unknown outcome settled by the retry and by the reconciler, void, refund after
settlement, partial refund and over-refund. The leak guard watches the credentials and card data."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from shared import runtime
from shared.reconcile import Decision, reconcile_unknown
from tests.devhost_process import devhost
from tests.fakes.payflow import PARTNER, PASSWORD, USER, VENDOR, PayflowFake
from tests.support import (
    check_no_leaks,
    install_service,
    make_settings,
    new_meta,
    payment_body,
    refund_body,
    watch_sent,
    write_credentials,
)

ACCOUNT = 4101
CARD = "5105105105105100"
GATEWAY = {"gatewayTypeId": 4, "gatewayTypeName": "PayPal Payflow Pro", "merchantAccountId": ACCOUNT}
CREDENTIALS = {"partner": PARTNER, "vendor": VENDOR, "user": USER, "password": PASSWORD}


@dataclass
class Host:
    base: str
    log_path: Path
    fake: PayflowFake
    tmp_path: Path

    def pay(self, meta: dict[str, Any] | None = None, **changes: Any) -> requests.Response:
        body = payment_body(**{**GATEWAY, "account": CARD, "amount": 25.00, **changes})
        watch_sent(body)
        answer = requests.post(f"{self.base}/paymentGateway/processPayment",
                               headers={"BVMeta": json.dumps(meta or new_meta())}, json=body, timeout=20)
        check_no_leaks(answer.text)
        return answer

    def refund(self, payment_id: str, **changes: Any) -> requests.Response:
        body = refund_body(payment_id, **{**GATEWAY, "maskedCardNumber": "xxxxxxxxxxxx5100", **changes})
        answer = requests.patch(f"{self.base}/paymentGateway/processRefund",
                                headers={"BVMeta": json.dumps(new_meta())}, json=body, timeout=20)
        check_no_leaks(answer.text)
        return answer

    def payment(self, pnref: str) -> dict[str, Any]:
        record: dict[str, Any] = self.fake.transactions[pnref]
        return record


@contextmanager
def hosted(tmp_path: Path) -> Iterator[Host]:
    with PayflowFake(vendors={VENDOR: (PARTNER, USER, PASSWORD)}) as fake:
        write_credentials(tmp_path / "credentials.json", {ACCOUNT: {"gatewayTypeId": 4, "credentials": CREDENTIALS}})
        env = {
            "CREDENTIAL_SOURCE": "file",
            "LOCAL_CREDENTIALS_FILE": str(tmp_path / "credentials.json"),
            "IDEMPOTENCY_STORE": "sqlite",
            "IDEMPOTENCY_SQLITE_PATH": str(tmp_path / "idempotency.sqlite"),
            "PAYFLOW_URL": fake.base_url,
            "GATEWAY_TIMEOUT_SECONDS": "3",
            "DEVHOST_LOG": str(tmp_path / "devhost.log"),
        }
        with devhost(env, "--no-timers") as (base, log_path):
            yield Host(base, log_path, fake, tmp_path)
        check_no_leaks(log_path.read_text())
        assert CARD not in log_path.read_text()


def detail(answer: requests.Response) -> dict[str, Any]:
    value: dict[str, Any] = answer.json()["detail"]
    return value


def test_sale_decline_and_held_for_review(tmp_path: Path) -> None:
    with hosted(tmp_path) as host:
        paid = host.pay()
        assert paid.status_code == 200, paid.text
        pnref = detail(paid)["paymentTransactionId"]
        assert host.payment(pnref)["status"] == "approved" and len(pnref) == 12

        declined = host.pay(amount=1012.00)
        assert declined.status_code == 400, declined.text
        assert (detail(declined)["statusCode"], detail(declined)["errorCode"]) == ("12", "declined")

        held = host.pay(amount=1126.00)
        assert held.status_code == 400, held.text
        assert (detail(held)["statusCode"], detail(held)["errorCode"]) == ("held_for_review", "held_for_review")
        assert [c["pnref"] for c in host.fake.live_charges(VENDOR)] == [pnref]  # the held one was voided


def test_an_unknown_outcome_is_settled_by_the_retry(tmp_path: Path) -> None:
    with hosted(tmp_path) as host:
        meta = new_meta()
        host.fake.set_fault("drop", match="TRXTYPE=S$")
        lost = host.pay(meta)
        assert lost.status_code == 502 and detail(lost)["statusCode"] == "outcome_unknown", lost.text

        retried = host.pay(meta)
        assert retried.status_code == 200, retried.text
        [charge] = host.fake.live_charges(VENDOR)
        assert detail(retried)["paymentTransactionId"] == charge["pnref"]
        # The retry looked the sale up by its CUSTREF before doing anything.
        kinds = [r.raw_body.split("&", 1)[0] for r in host.fake.requests]
        assert kinds == ["TRXTYPE=S", "TRXTYPE=I"]


def test_an_unknown_outcome_is_settled_by_the_reconciler(tmp_path: Path) -> None:
    with hosted(tmp_path) as host:
        meta = new_meta()
        host.fake.set_fault("drop", match="TRXTYPE=S$")
        assert host.pay(meta).status_code == 502
        [charge] = host.fake.live_charges(VENDOR)

        # The reconciler's run, in this process, on the devhost's store and credentials; timeouts
        # long enough for a machine busy with other suites.
        settings = make_settings(tmp_path, gateway_url_overrides={"PAYFLOW_URL": host.fake.base_url},
                                 gateway_timeout_seconds=10.0)
        try:
            (outcome,) = reconcile_unknown(install_service(settings), now=time.time() + 601)
        finally:
            runtime.install(None)
        assert outcome.decision is Decision.VOIDED, outcome
        assert host.payment(charge["pnref"])["status"] == "voided" and host.fake.live_charges(VENDOR) == []

        told = host.pay(meta)
        assert detail(told)["statusCode"] == "voided_by_reconciliation", told.text
        assert detail(told)["paymentTransactionId"] == charge["pnref"]


def test_void_refund_partial_refund_and_over_refund(tmp_path: Path) -> None:
    with hosted(tmp_path) as host:
        voided_id = detail(host.pay())["paymentTransactionId"]
        void = host.refund(voided_id)
        assert void.status_code == 200, void.text
        assert host.payment(voided_id)["status"] == "voided"

        partial_before = detail(host.pay())["paymentTransactionId"]
        early = host.refund(partial_before, amount=5.00)
        assert early.status_code == 409 and detail(early)["statusCode"] == "partial_before_settlement", early.text

        settled_id = partial_before
        host.fake.settle(settled_id)
        partial = host.refund(settled_id, amount=5.00)
        assert partial.status_code == 200, partial.text
        credit = host.payment(detail(partial)["paymentTransactionId"])
        assert (credit["kind"], credit["amount"]) == ("refund", 5)

        over = host.refund(settled_id, amount=30.00)
        assert over.status_code == 400 and detail(over)["statusCode"] == "amount_too_large", over.text
        # Payflow does not say what was credited already: it refuses a credit above what is left.
        rest_too_much = host.refund(settled_id, amount=20.01)
        assert rest_too_much.status_code == 409 and detail(rest_too_much)["statusCode"] == "105", rest_too_much.text
        rest = host.refund(settled_id)
        assert rest.status_code == 200, rest.text
        assert host.payment(detail(rest)["paymentTransactionId"])["amount"] == 20
