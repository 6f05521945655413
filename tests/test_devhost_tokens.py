"""Card tokens over real HTTP: the devhost in its own process, CardConnect's and Payload's fakes on
loopback. Token sales, declines, unknown outcomes and refunds on both gateways; the token goes to
the gateway and nowhere else (no response, no log line); the audit line's masked card comes from
the gateway's answer. Card-number requests are the other devhost tests, unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests

from tests.conftest import PAYMENT_METHOD_ID
from tests.support import check_no_leaks, new_meta, payment_body, watch_sent
from tests.test_devhost_tenants import PL_ACCOUNTS, PL_IDS, Host, hosted

CC_ACCOUNT, PL_ACCOUNT = 2101, 3101
CC_CARD, PL_CARD = "4788250000121443", "4242424242424242"


def cardsecure(host: Host, number: str = CC_CARD) -> dict[str, Any]:
    return {"token": {"type": "cardsecure", "value": host.cc.tokenize(number)}, "expDate": "1239"}


def payment_method(host: Host, number: str = PL_CARD) -> dict[str, Any]:
    value = host.pl.save_payment_method(PL_ACCOUNTS[PL_IDS[PL_ACCOUNT]], number)
    return {"token": {"type": "payload_payment_method", "value": value}}


def pay_token(host: Host, merchant: int, card: dict[str, Any], meta: dict[str, Any] | None = None,
              **changes: Any) -> requests.Response:
    """A payment at `merchant` with the card's fields left out and `card` (a token, its expiry) instead."""
    gateway = {"gatewayTypeId": 2, "gatewayTypeName": "CardConnect"} if merchant == CC_ACCOUNT else {
        "gatewayTypeId": 1, "gatewayTypeName": "Payload"}
    fields = {**gateway, "merchantAccountId": merchant, "account": None, "cvv2": None, "expDate": None}
    body = payment_body(**{**fields, **card, **changes})
    watch_sent(body)
    answer = requests.post(f"{host.base}/paymentGateway/processPayment",
                           headers={"BVMeta": json.dumps(meta or new_meta())}, json=body, timeout=15)
    check_no_leaks(answer.text)
    return answer


def audit_lines(log_path: Path) -> list[dict[str, Any]]:
    lines = log_path.read_text().splitlines()
    audit = [line for line in lines if "paymentgateway.audit" in line]
    return [json.loads(line[line.index("{"):]) for line in audit]


def test_token_sales_declines_and_refunds_on_both_gateways(tmp_path: Path) -> None:
    with hosted(tmp_path) as host:
        cc_token = cardsecure(host)
        paid = pay_token(host, CC_ACCOUNT, cc_token)
        assert paid.status_code == 200, paid.text
        auth = host.cc.requests[-1].body
        assert auth["account"] == cc_token["token"]["value"] and auth["expiry"] == "1239" and "cvv2" not in auth
        cc_payment = paid.json()["detail"]["paymentTransactionId"]

        declined = pay_token(host, CC_ACCOUNT, cardsecure(host, "4387751111111038"))
        assert declined.status_code == 400 and declined.json()["detail"]["statusCode"] == "05", declined.text

        pl_token = payment_method(host)
        paid = pay_token(host, PL_ACCOUNT, pl_token)
        assert paid.status_code == 200, paid.text
        sale = host.pl.requests[-1].body
        assert sale["payment_method_id"] == pl_token["token"]["value"] and "payment_method" not in sale
        pl_payment = paid.json()["detail"]["paymentTransactionId"]

        declined = pay_token(host, PL_ACCOUNT, payment_method(host, "4000000000000002"))
        assert declined.status_code == 400, declined.text
        assert declined.json()["detail"]["statusCode"] == "general_decline"

        # Before settlement a full refund is a void; after it, a partial refund.
        for account, payment_id, fake in ((CC_ACCOUNT, cc_payment, host.cc), (PL_ACCOUNT, pl_payment, host.pl)):
            voided = host.refund(account, payment_id)
            assert voided.status_code == 200, voided.text
            assert voided.json()["detail"]["responseDetail"].startswith("Payment voided")
        for account, card, fake in ((CC_ACCOUNT, cardsecure(host), host.cc), (PL_ACCOUNT, pl_token, host.pl)):
            payment_id = pay_token(host, account, card).json()["detail"]["paymentTransactionId"]
            fake.settle_all()
            refunded = host.refund(account, payment_id, amount=10)
            assert refunded.status_code == 200, refunded.text
            assert refunded.json()["detail"]["responseDetail"] == "Refund approved"
        assert len(host.cc.live_charges()) == 1 and len(host.pl.live_charges()) == 1
        log = host.log_path.read_text()
    masked: dict[str, str | None] = {}
    for line in audit_lines(host.log_path):  # the sale's line comes first (a void keeps CardConnect's retref)
        masked.setdefault(line["data"].get("paymentTransactionId"), line["data"].get("maskedCardNumber"))
    assert masked[cc_payment] == "xxxxxxxxxxxx1443" and masked[pl_payment] == "xxxxxxxxxxxx4242"
    assert cc_token["token"]["value"] not in log and PAYMENT_METHOD_ID.search(log) is None
    check_no_leaks(log)


def test_token_unknown_outcomes_are_settled_by_look_up_never_a_second_charge(tmp_path: Path) -> None:
    with hosted(tmp_path) as host:
        for account, card, fake, sale in ((CC_ACCOUNT, cardsecure(host), host.cc, "PUT /cardconnect/rest/auth"),
                                          (PL_ACCOUNT, payment_method(host), host.pl, "POST /transactions$")):
            fake.set_fault("drop", match=sale)  # carried out, the answer lost
            meta = new_meta()
            first = pay_token(host, account, card, meta)
            assert first.status_code == 502, first.text
            assert first.json()["detail"]["statusCode"] == "outcome_unknown"
            retried = pay_token(host, account, card, meta)
            assert retried.status_code == 200, retried.text
            assert len(fake.live_charges()) == 1
            assert sum(1 for r in fake.requests if f"{r.method} {r.path}".startswith(sale.rstrip("$"))) == 1


def test_a_token_the_accounts_gateway_does_not_take_is_422_with_no_gateway_call(tmp_path: Path) -> None:
    with hosted(tmp_path) as host:
        wrong = pay_token(host, CC_ACCOUNT, payment_method(host))
        assert wrong.status_code == 422, wrong.text
        detail = wrong.json()["detail"]
        assert detail["statusCode"] == "token_not_accepted"
        assert detail["errors"][0]["field"] == "token.type" and "cardsecure" in detail["errors"][0]["message"]
        both = pay_token(host, PL_ACCOUNT, payment_method(host), account="4242424242424242")
        assert both.status_code == 422 and both.json()["detail"]["errors"][0]["field"] == "account", both.text
        assert host.cc.requests == [] and host.pl.requests == []
