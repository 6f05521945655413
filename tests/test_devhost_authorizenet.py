"""Authorize.Net through the devhost, over real HTTP: the service in its own process, the stateful
fake on loopback. Sale, decline, held for review (both policies), an unknown outcome settled by the
retry and by the reconciler, void, refund after settlement, partial refund, over-refund refused,
an Accept.js token; the leak guard watches every credential and card value sent."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from shared.reconcile import Decision, reconcile_unknown
from shared.settings import Settings
from tests.devhost_process import devhost
from tests.fakes.authorizenet import DECLINE_CARDS, AuthorizeNetFake
from tests.support import check_no_leaks, install_service, new_meta, payment_body, refund_body, watch_sent

LOGINS = {"univ-a-login": "UnivAKey00000001", "univ-b-login": "UnivBKey00000002"}
VOIDING, ACCEPTING = 4101, 4102
"""Two merchant accounts: the default held-for-review policy, and one that accepts held payments."""
CARD = "4111111111111111"
DECLINING = next(iter(DECLINE_CARDS))
GATEWAY = {"gatewayTypeId": 3, "gatewayTypeName": "Authorize.Net"}
RECONCILE_DUE = 601.0
"""Seconds past now at which a record left unknown now is due (RECONCILE_AFTER_SECONDS is 600)."""


@dataclass
class Host:
    base: str
    log_path: Path
    fake: AuthorizeNetFake
    env: dict[str, str]

    def pay(self, merchant: int = VOIDING, meta: dict[str, Any] | None = None, **changes: Any) -> requests.Response:
        body = payment_body(**{**GATEWAY, "merchantAccountId": merchant, "account": CARD, **changes})
        watch_sent(body)
        answer = requests.post(f"{self.base}/paymentGateway/processPayment",
                               headers={"BVMeta": json.dumps(meta or new_meta())}, json=body, timeout=20)
        check_no_leaks(answer.text)
        return answer

    def refund(self, payment_id: str, account: int = VOIDING, **changes: Any) -> requests.Response:
        body = refund_body(payment_id, **{**GATEWAY, "merchantAccountId": account, **changes})
        answer = requests.patch(f"{self.base}/paymentGateway/processRefund",
                                headers={"BVMeta": json.dumps(new_meta())}, json=body, timeout=20)
        check_no_leaks(answer.text)
        return answer


@contextmanager
def hosted(tmp_path: Path) -> Iterator[Host]:
    credentials = {
        str(VOIDING): {**GATEWAY_SECRET, "credentials": {"apiLoginId": "univ-a-login",
                                                           "transactionKey": LOGINS["univ-a-login"]}},
        str(ACCEPTING): {**GATEWAY_SECRET, "credentials": {"apiLoginId": "univ-b-login",
                                                             "transactionKey": LOGINS["univ-b-login"],
                                                             "heldForReview": "accept"}},
    }
    for account in credentials.values():
        watch_sent({"credentials": {k: v for k, v in account["credentials"].items() if k != "heldForReview"}})
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps(credentials))
    with AuthorizeNetFake(merchants=LOGINS) as fake:
        env = {
            "CREDENTIAL_SOURCE": "file",
            "LOCAL_CREDENTIALS_FILE": str(path),
            "IDEMPOTENCY_STORE": "sqlite",
            "IDEMPOTENCY_SQLITE_PATH": str(tmp_path / "idempotency.sqlite"),
            "DEVHOST_LOG": str(tmp_path / "devhost.log"),
            "AUTHORIZENET_URL": fake.base_url,
            "GATEWAY_TIMEOUT_SECONDS": "2",
        }
        with devhost(env, "--no-timers") as (base, log_path):
            yield Host(base, log_path, fake, env)
        check_no_leaks(log_path.read_text())


GATEWAY_SECRET = {"gatewayTypeId": 3}


def detail(answer: requests.Response) -> dict[str, Any]:
    found: dict[str, Any] = answer.json()["detail"]
    return found


def test_sale_decline_void_refunds_and_over_refund(tmp_path: Path) -> None:
    with hosted(tmp_path) as host:
        paid = host.pay(amount=30)
        assert paid.status_code == 200, paid.text
        payment_id = detail(paid)["paymentTransactionId"]
        assert [c.transId for c in host.fake.live_charges()] == [payment_id]

        declined = host.pay(VOIDING, account=DECLINING)
        assert declined.status_code == 400, declined.text
        assert (detail(declined)["statusCode"], detail(declined)["errorCode"]) == ("2", "declined")

        # Before settlement a refund voids the whole payment.
        to_void = detail(host.pay(amount=12))["paymentTransactionId"]
        voided = host.refund(to_void)
        assert voided.status_code == 200, voided.text
        assert host.fake.transactions[to_void].transactionStatus == "voided"

        # After settlement: a partial refund, the rest, then more than is left.
        host.fake.settle(payment_id)
        partial = host.refund(payment_id, amount=10)
        assert partial.status_code == 200, partial.text
        rest = host.refund(payment_id, amount=20)
        assert rest.status_code == 200, rest.text
        over = host.refund(payment_id, amount=1)
        assert over.status_code == 400, over.text
        # What was refunded already is not in a payment's details: Authorize.Net itself refuses.
        assert detail(over)["statusCode"] == "55" and "exceeds what is left" in detail(over)["responseMessage"]
        above = host.refund(payment_id, amount=31)
        assert (above.status_code, detail(above)["statusCode"]) == (400, "amount_too_large")
        assert host.fake.transactions[payment_id].refunded == Decimal("30.00")
        refunds = [t for t in host.fake.transactions.values() if t.kind == "refund"]
        assert sorted(t.amount for t in refunds) == [Decimal("10.00"), Decimal("20.00")]


def test_held_for_review_voided_by_default_and_accepted_when_chosen(tmp_path: Path) -> None:
    with hosted(tmp_path) as host:
        host.fake.review_above.update({"univ-a-login": Decimal("100"), "univ-b-login": Decimal("100")})
        held = host.pay(VOIDING, amount=150)
        assert held.status_code == 400, held.text
        assert (detail(held)["statusCode"], detail(held)["errorCode"]) == ("held_for_review", "held_for_review")
        assert host.fake.live_charges("univ-a-login") == []

        accepted = host.pay(ACCEPTING, amount=150)
        assert accepted.status_code == 200, accepted.text
        [charge] = host.fake.live_charges("univ-b-login")
        assert (charge.transId, charge.transactionStatus) == (
            detail(accepted)["paymentTransactionId"], "FDSAuthorizedPendingReview")


def test_unknown_outcome_settled_by_the_retry(tmp_path: Path) -> None:
    with hosted(tmp_path) as host:
        meta = new_meta()
        host.fake.set_fault("drop")  # the sale is carried out, its answer lost
        first = host.pay(meta=meta)
        assert first.status_code == 502, first.text
        assert detail(first)["statusCode"] == "outcome_unknown"
        retried = host.pay(meta=meta)
        assert retried.status_code == 200, retried.text
        [charge] = host.fake.live_charges()
        assert detail(retried)["paymentTransactionId"] == charge.transId
        roots = [next(iter(r.body)) for r in host.fake.requests]
        assert roots == ["createTransactionRequest", "getUnsettledTransactionListRequest"], "looked up, not resent"


def test_unknown_outcome_settled_by_the_reconciler(tmp_path: Path) -> None:
    with hosted(tmp_path) as host:
        meta = new_meta()
        host.fake.set_fault("drop")
        first = host.pay(meta=meta)
        assert first.status_code == 502, first.text
        service = install_service(Settings.from_env(host.env))
        outcomes = reconcile_unknown(service, now=time.time() + RECONCILE_DUE)
        assert [o.decision for o in outcomes] == [Decision.VOIDED]
        assert host.fake.live_charges() == []
        retried = host.pay(meta=meta)
        assert retried.status_code == 400, retried.text
        assert detail(retried)["statusCode"] == "voided_by_reconciliation"


def token_body(nonce: str) -> dict[str, Any]:
    body = payment_body(**{**GATEWAY, "merchantAccountId": VOIDING, "account": None, "cvv2": None, "expDate": None,
                           "token": {"type": "authorizenet_opaque", "value": nonce,
                                     "descriptor": "COMMON.ACCEPT.INAPP.PAYMENT"}})
    watch_sent(body)
    return body


def post_payment(host: Host, body: dict[str, Any], meta: dict[str, Any] | None = None) -> requests.Response:
    answer = requests.post(f"{host.base}/paymentGateway/processPayment",
                           headers={"BVMeta": json.dumps(meta or new_meta())}, json=body, timeout=20)
    check_no_leaks(answer.text)
    return answer


def test_accept_token_sale_decline_refund_and_unknown_settled_by_look_up(tmp_path: Path) -> None:
    with hosted(tmp_path) as host:
        paid = post_payment(host, token_body(host.fake.issue_nonce(CARD, 12, 2039)))
        assert paid.status_code == 200, paid.text
        payment_id = detail(paid)["paymentTransactionId"]
        assert payment_id == host.fake.live_charges()[0].transId
        voided = host.refund(payment_id)
        assert voided.status_code == 200, voided.text
        assert host.fake.transactions[payment_id].transactionStatus == "voided"

        declined = post_payment(host, token_body(host.fake.issue_nonce(DECLINING, 12, 2039)))
        assert (declined.status_code, detail(declined)["statusCode"]) == (400, "2")

        # The answer is lost; the retry finds the charge by its invoice number and never resends
        # the nonce, which Authorize.Net takes once.
        meta, body = new_meta(), token_body(host.fake.issue_nonce(CARD, 12, 2039))
        host.fake.set_fault("drop", match="createTransactionRequest authCaptureTransaction")
        first = post_payment(host, body, meta)
        assert (first.status_code, detail(first)["statusCode"]) == (502, "outcome_unknown")
        retried = post_payment(host, body, meta)
        assert retried.status_code == 200, retried.text
        [charge] = host.fake.live_charges()
        assert detail(retried)["paymentTransactionId"] == charge.transId
        sent = [r for r in host.fake.requests if body["token"]["value"] in r.raw_body]
        assert len(sent) == 1, "the nonce went to the gateway once"
        assert body["token"]["value"] not in host.log_path.read_text()
