"""Tenants stay apart and gateway answers are handled, over real HTTP: the devhost in its own
process, the fake gateways (and an egress proxy) on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.devhost_process import devhost
from tests.fakes import CardConnectFake, ForwardingProxy, PayloadFake
from tests.support import check_no_leaks, new_meta, payment_body, refund_body, watch_sent

CC_MERCHANTS = {"496160873801": ("user-a", "password-a-1"), "496160873802": ("user-b", "password-b-2")}
PL_ACCOUNTS = {"test_secret_key_hostA": "acct_hostA", "test_secret_key_hostB": "acct_hostB"}
CC_IDS = {2101: "496160873801", 2102: "496160873802"}
PL_IDS = {3101: "test_secret_key_hostA", 3102: "test_secret_key_hostB"}


@dataclass
class Host:
    base: str
    log_path: Path
    cc: CardConnectFake
    pl: PayloadFake

    def pay(self, account: int, **changes: Any) -> requests.Response:
        gateway = {"gatewayTypeId": 2, "gatewayTypeName": "CardConnect"} if account in CC_IDS else {
            "gatewayTypeId": 1, "gatewayTypeName": "Payload"}
        body = payment_body(**{**gateway, "merchantAccountId": account, "account": "4788250000121443", **changes})
        watch_sent(body)
        answer = requests.post(f"{self.base}/paymentGateway/processPayment",
                               headers={"BVMeta": json.dumps(new_meta())}, json=body, timeout=15)
        check_no_leaks(answer.text)
        return answer

    def refund(self, account: int, payment_id: str, **changes: Any) -> requests.Response:
        gateway = {"gatewayTypeId": 2, "gatewayTypeName": "CardConnect"} if account in CC_IDS else {
            "gatewayTypeId": 1, "gatewayTypeName": "Payload"}
        body = refund_body(payment_id, **{**gateway, "merchantAccountId": account, **changes})
        answer = requests.patch(f"{self.base}/paymentGateway/processRefund",
                                headers={"BVMeta": json.dumps(new_meta())}, json=body, timeout=15)
        check_no_leaks(answer.text)
        return answer


@contextmanager
def hosted(tmp_path: Path, env: dict[str, str] | None = None, *, payload_host: str = "127.0.0.1") -> Iterator[Host]:
    """The devhost with two CardConnect merchants and two Payload accounts on the fakes."""
    with CardConnectFake(merchants=CC_MERCHANTS) as cc, PayloadFake(accounts=PL_ACCOUNTS) as pl:
        host_env = {"PAYLOAD_API_URL": f"http://{payload_host}:{pl.port}", **(env or {})}
        with serving(tmp_path, cc, pl, host_env) as host:
            yield host


@contextmanager
def serving(tmp_path: Path, cc: CardConnectFake, pl: PayloadFake, env: dict[str, str]) -> Iterator[Host]:
    """The devhost on these fakes; the same `tmp_path` means the same credentials and idempotency."""
    credentials: dict[str, Any] = {}
    for account, merchid in CC_IDS.items():
        user, password = CC_MERCHANTS[merchid]
        credentials[str(account)] = {"gatewayTypeId": 2, "credentials": {
            "username": user, "password": password, "merchantId": merchid}}
    for account, key in PL_IDS.items():
        credentials[str(account)] = {"gatewayTypeId": 1, "credentials": {
            "apiKey": key, "processingId": PL_ACCOUNTS[key]}}
    for account in credentials.values():
        watch_sent({"credentials": account["credentials"]})
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps(credentials))
    host_env = {
        "CREDENTIAL_SOURCE": "file",
        "LOCAL_CREDENTIALS_FILE": str(path),
        "IDEMPOTENCY_STORE": "sqlite",
        "IDEMPOTENCY_SQLITE_PATH": str(tmp_path / "idempotency.sqlite"),
        "DEVHOST_LOG": str(tmp_path / "devhost.log"),
        "CARDCONNECT_URL": cc.base_url,
        "PAYLOAD_API_URL": pl.base_url,
        "GATEWAY_TIMEOUT_SECONDS": "2",
        **env,
    }
    with devhost(host_env, "--no-timers") as (base, log_path):
        yield Host(base, log_path, cc, pl)


def test_gateway_cookies_never_pass_from_one_merchant_to_another(tmp_path: Path) -> None:
    with hosted(tmp_path) as host:
        host.cc.sets_cookies = host.pl.sets_cookies = True
        for account in [*CC_IDS, *PL_IDS, *CC_IDS]:
            paid = host.pay(account)
            assert paid.status_code == 200, paid.text
        requests_seen = [*host.cc.requests, *host.pl.requests]
        assert len(requests_seen) == 6
        assert [r.headers.get("Cookie") for r in requests_seen] == [None] * 6
        # One connection per gateway is still reused across merchants.
        assert len(host.cc.client_ports()) == 1 and len(host.pl.client_ports()) == 1


def test_egress_proxy_is_used_except_for_no_proxy_hosts(tmp_path: Path) -> None:
    with ForwardingProxy() as proxy:
        env = {"HTTP_PROXY": proxy.root_url, "HTTPS_PROXY": proxy.root_url, "NO_PROXY": "127.0.0.1"}
        with hosted(tmp_path, env, payload_host="localhost") as host:
            cc_paid = host.pay(2101)
            pl_paid = host.pay(3101)
            assert cc_paid.status_code == 200, cc_paid.text
            assert pl_paid.status_code == 200, pl_paid.text
            assert [r.target for r in host.cc.requests] == ["/cardconnect/rest/auth"]
            assert [(r.method, r.target) for r in proxy.requests] == [
                ("POST", f"http://localhost:{host.pl.port}/transactions")
            ]
            assert pl_paid.json()["detail"]["paymentTransactionId"] == host.pl.live_charges()[0].id


def test_refund_ids_that_are_not_the_gateways_shape_are_404_with_no_gateway_call(tmp_path: Path) -> None:
    with hosted(tmp_path) as host:
        for account, payment_id in ((2101, ".."), (2101, "."), (2101, "txn_0001"), (3101, ".."), (3101, "1234")):
            answered = host.refund(account, payment_id)
            assert answered.status_code == 404, answered.text
            assert answered.json()["detail"]["statusCode"] == "transaction_not_found"
            assert "paymentTransactionId" in answered.json()["detail"]["responseDetail"]
        assert host.cc.requests == [] and host.pl.requests == []


def test_malformed_gateway_answers_are_502_and_the_retry_settles_them(tmp_path: Path) -> None:
    with hosted(tmp_path) as host:
        for fault, fake, account in (("missing_id", host.cc, 2101), ("nan_amount", host.pl, 3101),
                                     ("listing", host.cc, 2102)):
            fake.set_fault(fault, match="PUT /cardconnect/rest/auth|POST /transactions")
            meta = new_meta()
            body = payment_body(gatewayTypeId=2 if fake is host.cc else 1, merchantAccountId=account,
                                account="4788250000121443")
            url = f"{host.base}/paymentGateway/processPayment"
            first = requests.post(url, headers={"BVMeta": json.dumps(meta)}, json=body, timeout=15)
            assert first.status_code == 502, first.text
            assert first.json()["detail"]["statusCode"] == "outcome_unknown"
            retried = requests.post(url, headers={"BVMeta": json.dumps(meta)}, json=body, timeout=15)
            assert retried.status_code == 200, retried.text
        assert len(host.cc.live_charges()) == 2 and len(host.pl.live_charges()) == 1


def test_a_wrong_gateway_url_is_503_and_the_retry_after_the_fix_charges(tmp_path: Path) -> None:
    with CardConnectFake(merchants=CC_MERCHANTS) as cc, PayloadFake(accounts=PL_ACCOUNTS) as pl:
        meta = new_meta()
        body = payment_body(gatewayTypeId=2, merchantAccountId=2101, account="4788250000121443")
        with serving(tmp_path, cc, pl, {"CARDCONNECT_URL": cc.root_url + "/cardconnect/rst"}) as host:
            wrong = requests.post(f"{host.base}/paymentGateway/processPayment",
                                  headers={"BVMeta": json.dumps(meta)}, json=body, timeout=15)
            assert wrong.status_code == 503, wrong.text
            assert wrong.json()["detail"]["statusCode"] == "gateway_misconfigured"
            assert wrong.headers["Retry-After"]
        with serving(tmp_path, cc, pl, {}) as host:
            fixed = requests.post(f"{host.base}/paymentGateway/processPayment",
                                  headers={"BVMeta": json.dumps(meta)}, json=body, timeout=15)
            assert fixed.status_code == 200, fixed.text
            assert "Idempotent-Replayed" not in fixed.headers
        assert [r.status for r in cc.requests] == [404, 200]
        assert len(cc.live_charges()) == 1


def test_refunding_another_merchants_payment_is_404_on_both_gateways(tmp_path: Path) -> None:
    with hosted(tmp_path) as host:
        cc_payment = host.pay(2101).json()["detail"]["paymentTransactionId"]
        pl_payment = host.pay(3101).json()["detail"]["paymentTransactionId"]
        for account, payment_id in ((2102, cc_payment), (3102, pl_payment)):
            answered = host.refund(account, payment_id)
            assert answered.status_code == 404, answered.text
            assert answered.json()["detail"]["statusCode"] in ("29", "transaction_not_found")
        assert [r.status for r in host.pl.requests] == [200, 403]
        assert len(host.cc.live_charges()) == 1 and len(host.pl.live_charges()) == 1


def test_gateway_echoes_of_card_data_and_credentials_reach_no_response_or_log(tmp_path: Path) -> None:
    with hosted(tmp_path) as host:
        host.cc.set_fault("echo", count=None)
        host.pl.set_fault("echo", count=None)
        for account in (2101, 3101):
            declined = host.pay(account)  # check_no_leaks: nothing watched is in the answer
            assert declined.status_code == 400, declined.text
            assert declined.json()["detail"]["statusCode"] == "[removed]"
        log = host.log_path.read_text()
    assert "paymentgateway.audit" in log
    check_no_leaks(log)


def test_a_refund_aimed_at_a_refunds_id_is_refused_and_the_refund_stands(tmp_path: Path) -> None:
    with hosted(tmp_path) as host:
        for account, fake in ((2101, host.cc), (3101, host.pl)):
            payment_id = host.pay(account, amount=60).json()["detail"]["paymentTransactionId"]
            fake.settle_all()
            first = host.refund(account, payment_id, amount=10)
            assert first.status_code == 200, first.text
            refund_id = first.json()["detail"]["paymentTransactionId"]
            aimed_at_refund = host.refund(account, refund_id)
            assert aimed_at_refund.status_code == 400, aimed_at_refund.text
            assert aimed_at_refund.json()["detail"]["statusCode"] == "not_a_payment"
        assert [t.setlstat for t in host.cc.transactions.values() if t.kind == "refund"] == ["Queued for Capture"]
        assert [t.status for t in host.pl.transactions.values() if t.type == "refund"] == ["processed"]
