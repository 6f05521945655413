"""CardConnect and Payload end to end through `main(req)`, against their stateful fakes.

The fakes check each request's credentials against its merchant and record the exact wire request,
so these tests see what the monolith's call turns into at the gateway.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from shared import runtime
from shared.credentials import CachedCredentialStore, format_secret
from shared.flow import Operation, PaymentService, order_id_for
from shared.reconcile import Decision, reconcile_unknown
from tests.conftest import LeakGuard
from tests.fakes import CardConnectFake, PayloadFake
from tests.fakes.keyvault import FakeKeyVault
from tests.gateways.helpers import basic
from tests.support import (
    install_service,
    make_settings,
    new_meta,
    pay,
    payment_body,
    refund,
    refund_body,
    write_credentials,
)
from tests.timing import CLIENT_READ_SECONDS

CC_ACCOUNT, PL_ACCOUNT = 2001, 3001
CC_MID, CC_USER, CC_PASSWORD = "496160873888", "cc-tenant-user", "cc-tenant-password-1"
PL_KEY, PL_PROCESSING = "test_secret_key_tenantA1", "acct_tenantA"
CC_CREDENTIALS = {"Login": CC_USER, "password": CC_PASSWORD, "MERCHANTID": CC_MID}  # labels and case vary
PL_CREDENTIALS = {"apiKey": PL_KEY, "processingId": PL_PROCESSING}


@dataclass
class Gateways:
    cc: CardConnectFake
    pl: PayloadFake
    service: PaymentService
    tmp_path: Path


BOTH_STORES = pytest.mark.parametrize("gateways", ["sqlite", "table"], indirect=True)


@pytest.fixture
def gateways(request: pytest.FixtureRequest, tmp_path: Path, leak_guard: LeakGuard) -> Iterator[Gateways]:
    """Both fakes, credentials for one merchant on each, and the service on the idempotency store
    named by the test's parameter (SQLite unless it asks for Table storage on Azurite)."""
    leak_guard.watch(CC_PASSWORD, PL_KEY, "987", "1239")
    with CardConnectFake(merchants={CC_MID: (CC_USER, CC_PASSWORD)}) as cc, PayloadFake(
        accounts={PL_KEY: PL_PROCESSING}
    ) as pl:
        settings = make_settings(
            tmp_path, gateway_url_overrides={"CARDCONNECT_URL": cc.base_url, "PAYLOAD_API_URL": pl.base_url},
            gateway_timeout_seconds=CLIENT_READ_SECONDS,
        )
        write_credentials(
            settings.local_credentials_file,
            {
                CC_ACCOUNT: {"gatewayTypeId": 2, "credentials": CC_CREDENTIALS},
                PL_ACCOUNT: {"gatewayTypeId": 1, "credentials": PL_CREDENTIALS},
            },
        )
        store = None
        if getattr(request, "param", "sqlite") == "table":
            from azure.data.tables import TableServiceClient

            from shared.table_store import TableIdempotencyStore

            service_client = TableServiceClient.from_connection_string(request.getfixturevalue("azurite"))
            store = TableIdempotencyStore(service_client.get_table_client("idem" + uuid.uuid4().hex[:12]))
        service = install_service(settings, idempotency=store)
        yield Gateways(cc, pl, service, tmp_path)
        runtime.install(None)


def cc_payment(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"gatewayTypeId": 2, "gatewayTypeName": "CardConnect", "merchantAccountId": CC_ACCOUNT,
                              "account": "4788250000121443"}
    return payment_body(**{**fields, **changes})


def pl_payment(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"gatewayTypeId": 1, "gatewayTypeName": "Payload", "merchantAccountId": PL_ACCOUNT}
    return payment_body(**{**fields, **changes})


def order_id(meta: dict[str, Any]) -> str:
    return order_id_for(Operation.PAYMENT, meta["transactionId"])


def test_cardconnect_sale_exact_wire_request(gateways: Gateways) -> None:
    meta = new_meta()
    paid = pay(cc_payment(amount=19.99, street="1 College Ave", city="Springfield", state="OR", country="US"), meta)
    assert paid.status == 200, paid.body
    sale = [r for r in gateways.cc.requests if r.path.endswith("/auth")]
    assert len(sale) == 1
    assert sale[0].method == "PUT"
    assert sale[0].headers["Authorization"] == basic(CC_USER, CC_PASSWORD)
    assert sale[0].body == {
        "merchid": CC_MID,
        "orderid": order_id(meta),
        "amount": "19.99",
        "currency": "USD",
        "account": "4788250000121443",
        "expiry": "1239",
        "cvv2": "987",
        "name": "Ada Learner",
        "address": "1 College Ave",
        "city": "Springfield",
        "region": "OR",
        "country": "US",
        "postal": "97201",
        "ecomind": "E",
        "capture": "Y",
        "userfields": [{"comment": "Course 101"}],
    }
    assert paid.detail["paymentTransactionId"] in gateways.cc.transactions
    assert paid.detail["statusCode"] == "00"


def test_cardconnect_decline_void_and_refunds(gateways: Gateways) -> None:
    declined = pay(cc_payment(account="4387751111111053"))
    assert declined.status == 400
    assert (declined.detail["statusCode"], declined.detail["errorCode"]) == ("NU", "insufficient_funds")
    assert declined.detail["responseMessage"] == "Insufficient funds"

    first = pay(cc_payment(amount=50)).detail["paymentTransactionId"]
    voided = refund(refund_body(first, gatewayTypeId=2, merchantAccountId=CC_ACCOUNT))
    assert voided.status == 200 and voided.detail["responseDetail"].startswith("Payment voided")
    assert gateways.cc.requests[-1].path.endswith("/void")
    assert gateways.cc.requests[-1].body == {"merchid": CC_MID, "retref": first}

    second = pay(cc_payment(amount=50)).detail["paymentTransactionId"]
    early_partial = refund(refund_body(second, gatewayTypeId=2, merchantAccountId=CC_ACCOUNT, amount=10))
    assert early_partial.status == 409
    gateways.cc.settle_all()
    partial = refund(refund_body(second, gatewayTypeId=2, merchantAccountId=CC_ACCOUNT, amount=10))
    assert partial.status == 200 and partial.detail["responseDetail"] == "Refund approved"
    refund_wire = gateways.cc.requests[-1]
    assert refund_wire.path.endswith("/refund")
    assert refund_wire.body["retref"] == second and refund_wire.body["amount"] == "10.00"

    unknown = refund(refund_body("999999999999", gatewayTypeId=2, merchantAccountId=CC_ACCOUNT))
    assert unknown.status == 404


def test_payload_sale_decline_void_and_refund(gateways: Gateways) -> None:
    meta = new_meta()
    paid = pay(pl_payment(amount=19.99), meta)
    assert paid.status == 200, paid.body
    wire = gateways.pl.requests[-1]
    assert (wire.method, wire.path) == ("POST", "/transactions")
    assert wire.basic_auth == (PL_KEY, "")
    assert '"amount": 19.99,' in wire.raw_body  # a JSON number with no float noise
    assert wire.body == {
        "amount": Decimal("19.99"),
        "processing_id": PL_PROCESSING,
        "description": "Course 101",
        "order_number": order_id(meta),
        "payment_method": {
            "type": "card",
            "card": {"card_number": "4242424242424242", "expiry": "12/39", "card_code": "987"},
            "billing_address": {"postal_code": "97201"},
        },
        "type": "payment",
    }
    # Payload's per-reason test cards (4111111111119900-9909) are not Luhn-valid except ...9908, so
    # this service refuses them with 422 before any gateway call; the generic decline card passes.
    declined = pay(pl_payment(account="4000000000000002"))
    assert declined.status == 400
    assert (declined.detail["statusCode"], declined.detail["errorCode"]) == ("general_decline", "declined")
    suspicious = pay(pl_payment(account="4111111111119908"))
    assert (suspicious.status, suspicious.detail["statusCode"]) == (400, "suspicious_activity")

    payment_id = paid.detail["paymentTransactionId"]
    voided = refund(refund_body(payment_id, gatewayTypeId=1, merchantAccountId=PL_ACCOUNT))
    assert voided.status == 200
    assert (gateways.pl.requests[-1].method, gateways.pl.requests[-1].body) == ("PUT", {"status": "voided"})

    second = pay(pl_payment(amount=30)).detail["paymentTransactionId"]
    gateways.pl.settle_all()
    partial = refund(refund_body(second, gatewayTypeId=1, merchantAccountId=PL_ACCOUNT, amount=12.5))
    assert partial.status == 200
    assert gateways.pl.requests[-1].body["ledger"] == [{"assoc_transaction_id": second}]
    assert gateways.pl.requests[-1].body["amount"] == Decimal("12.5")


def test_wrong_stored_credentials_are_503_and_never_echoed(gateways: Gateways) -> None:
    write_credentials(
        gateways.service.settings.local_credentials_file,
        {CC_ACCOUNT: {"gatewayTypeId": 2, "credentials": {**CC_CREDENTIALS, "password": "stale-password-x"}}},
    )
    rejected = pay(cc_payment())
    assert rejected.status == 503
    assert rejected.detail["statusCode"] == "credentials_rejected"
    assert rejected.detail["gatewayHttpStatusCode"] == 401
    assert "stale-password-x" not in rejected.text
    assert gateways.cc.live_charges() == []


def test_rotated_key_vault_secret_is_used_at_once_after_the_gateway_rejects_the_old_one(
    gateways: Gateways,
) -> None:
    vault = FakeKeyVault()
    name = f"merchant-account-{CC_ACCOUNT}"
    vault.set(name, format_secret(2, {**CC_CREDENTIALS, "password": "old-password-v1"}))
    store = CachedCredentialStore(vault.client().load, ttl_seconds=3600)
    settings = gateways.service.settings
    install_service(settings, credentials=store)
    assert pay(cc_payment()).status == 503  # v1 is wrong and nothing newer exists: nothing to retry
    vault.set(name, format_secret(2, CC_CREDENTIALS))  # security rotates
    paid = pay(cc_payment())
    assert paid.status == 200, paid.body
    assert vault.reads(name) == 3  # first load, refresh finding v1 again, refresh finding v2
    assert len(gateways.cc.live_charges()) == 1


@BOTH_STORES
@pytest.mark.parametrize("gateway", ["cardconnect", "payload"])
@pytest.mark.parametrize("fault", ["slow", "drop"])
def test_charge_answered_after_our_timeout_is_unknown_then_the_retry_finds_it(
    gateways: Gateways, gateway: str, fault: str
) -> None:
    fake = gateways.cc if gateway == "cardconnect" else gateways.pl
    body = cc_payment() if gateway == "cardconnect" else pl_payment()
    match = "PUT /cardconnect/rest/auth" if gateway == "cardconnect" else "POST /transactions"
    fake.set_fault(fault, match=match)
    meta = new_meta()

    first = pay(body, meta)
    assert first.status == 502
    assert first.detail["statusCode"] == "outcome_unknown"
    assert len(fake.live_charges()) == 1  # the gateway did charge

    retried = pay(body, meta)
    assert retried.status == 200, retried.body
    live = fake.live_charges()
    assert len(live) == 1
    found_id = live[0].retref if gateway == "cardconnect" else live[0].id
    assert retried.detail["paymentTransactionId"] == found_id
    sales = [r for r in fake.requests if r.method in ("PUT", "POST") and r.path.endswith(("/auth", "/transactions"))]
    assert len(sales) == 1  # the retry looked the charge up instead of charging again


def test_cardconnect_respstat_b_is_unknown_not_a_decline(gateways: Gateways) -> None:
    gateways.cc.set_fault("respstat_b", carry_out=True, match="PUT /cardconnect/rest/auth")
    meta = new_meta()
    assert pay(cc_payment(), meta).detail["statusCode"] == "outcome_unknown"
    assert pay(cc_payment(), meta).status == 200
    assert len(gateways.cc.live_charges()) == 1


def test_connection_refused_is_a_plain_retryable_failure(gateways: Gateways) -> None:
    from tests.fakes import unused_local_url

    settings = make_settings(
        gateways.tmp_path, gateway_url_overrides={"CARDCONNECT_URL": unused_local_url() + "/cardconnect/rest"}
    )
    install_service(settings)
    meta = new_meta()
    first = pay(cc_payment(), meta)
    assert first.status == 503
    assert first.detail["statusCode"] == "gateway_unreachable"
    assert first.headers["Retry-After"]
    install_service(gateways.service.settings)
    assert pay(cc_payment(), meta).status == 200  # the key was released: the retry charges once


@BOTH_STORES
@pytest.mark.parametrize("gateway", ["cardconnect", "payload"])
def test_unknown_charge_nobody_retries_is_voided_by_the_reconciler(gateways: Gateways, gateway: str) -> None:
    fake = gateways.cc if gateway == "cardconnect" else gateways.pl
    body = cc_payment() if gateway == "cardconnect" else pl_payment()
    match = "PUT /cardconnect/rest/auth" if gateway == "cardconnect" else "POST /transactions"
    fake.set_fault("drop", match=match)
    assert pay(body).status == 502
    assert len(fake.live_charges()) == 1
    outcomes = reconcile_unknown(runtime.service(), now=time.time() + 601)
    assert [o.decision for o in outcomes] == [Decision.VOIDED]
    assert fake.live_charges() == []


def test_four_merchants_thirty_two_threads_through_the_functions(gateways: Gateways, tmp_path: Path) -> None:
    import threading

    merchants = {f"49616087380{n}": (f"user-{n}", f"password-{n}") for n in range(4)}
    keys = {f"test_secret_key_m{n}": f"acct_m{n}" for n in range(4)}
    with CardConnectFake(merchants=merchants) as cc, PayloadFake(accounts=keys) as pl:
        settings = make_settings(
            tmp_path / "m", gateway_url_overrides={"CARDCONNECT_URL": cc.base_url, "PAYLOAD_API_URL": pl.base_url}
        )
        (tmp_path / "m").mkdir()
        accounts: dict[int, dict[str, Any]] = {}
        for n, (mid, (user, password)) in enumerate(merchants.items()):
            accounts[4000 + n] = {"gatewayTypeId": 2, "credentials": {"username": user, "password": password,
                                                                      "merchantId": mid}}
        for n, (key, processing) in enumerate(keys.items()):
            accounts[5000 + n] = {"gatewayTypeId": 1, "credentials": {"apiKey": key, "processingId": processing}}
        write_credentials(settings.local_credentials_file, accounts)
        install_service(settings)
        results: list[int] = []
        sent: dict[str, int] = {}  # our order id -> merchant account it was sent for
        barrier = threading.Barrier(32)

        def worker(i: int) -> None:
            barrier.wait()
            for _ in range(2):
                meta = new_meta()
                n = (i // 2) % 4
                body = cc_payment(merchantAccountId=4000 + n) if i % 2 else pl_payment(merchantAccountId=5000 + n)
                sent[order_id(meta)] = body["merchantAccountId"]
                results.append(pay(body, meta).status)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count(200) == 64
        assert cc.auth_failures == 0 and pl.auth_failures == 0
        cc_mid_of = {4000 + n: mid for n, mid in enumerate(merchants)}
        pl_account_of = {5000 + n: processing for n, processing in enumerate(keys.values())}
        cc_charges = cc.live_charges()
        pl_charges = pl.live_charges()
        assert len(cc_charges) == len(pl_charges) == 32
        for charge in cc_charges:
            assert charge.merchid == cc_mid_of[sent[charge.orderid]]
        for txn in pl_charges:
            assert txn.processing_id == pl_account_of[sent[txn.order_number]]
        for mid in merchants:
            assert len(cc.live_charges(mid)) == 8


@BOTH_STORES
@pytest.mark.parametrize("gateway", ["cardconnect", "payload"])
def test_void_answered_after_our_timeout_is_not_voided_twice(gateways: Gateways, gateway: str) -> None:
    fake = gateways.cc if gateway == "cardconnect" else gateways.pl
    paid = pay(cc_payment() if gateway == "cardconnect" else pl_payment())
    payment_id = paid.detail["paymentTransactionId"]
    body = refund_body(payment_id, gatewayTypeId=2 if gateway == "cardconnect" else 1,
                       merchantAccountId=CC_ACCOUNT if gateway == "cardconnect" else PL_ACCOUNT)
    fake.set_fault("drop", match="PUT /cardconnect/rest/void" if gateway == "cardconnect" else "PUT /transactions/")
    meta = new_meta()
    assert refund(body, meta).detail["statusCode"] == "outcome_unknown"
    assert fake.live_charges() == []  # the void went through

    retried = refund(body, meta)
    assert retried.status == 200, retried.body
    assert retried.detail["responseDetail"].startswith("Payment voided")
    voids = [r for r in fake.requests
             if r.method == "PUT" and ("/void" in r.path or r.path.startswith("/transactions/"))]
    assert len(voids) == 1


@BOTH_STORES
@pytest.mark.parametrize("gateway", ["cardconnect", "payload"])
def test_refund_answered_after_our_timeout_is_not_refunded_twice(gateways: Gateways, gateway: str) -> None:
    fake = gateways.cc if gateway == "cardconnect" else gateways.pl
    paid = pay(cc_payment(amount=80) if gateway == "cardconnect" else pl_payment(amount=80))
    payment_id = paid.detail["paymentTransactionId"]
    fake.settle_all()
    body = refund_body(payment_id, amount=30, gatewayTypeId=2 if gateway == "cardconnect" else 1,
                       merchantAccountId=CC_ACCOUNT if gateway == "cardconnect" else PL_ACCOUNT)
    fake.set_fault("slow", match="PUT /cardconnect/rest/refund" if gateway == "cardconnect"
                   else "POST /transactions")
    meta = new_meta()
    assert refund(body, meta).detail["statusCode"] == "outcome_unknown"

    retried = refund(body, meta)
    assert retried.status == 200, retried.body
    assert retried.detail["responseDetail"] == "Refund approved"
    refunds = [t for t in fake.transactions.values() if getattr(t, "kind", getattr(t, "type", None)) == "refund"]
    assert len(refunds) == 1
    refund_id = refunds[0].retref if gateway == "cardconnect" else refunds[0].id
    assert retried.detail["paymentTransactionId"] == refund_id


def test_unknown_stays_unknown_when_the_lookup_cannot_reach_the_gateway(gateways: Gateways) -> None:
    from tests.fakes import unused_local_url

    gateways.cc.set_fault("slow", match="PUT /cardconnect/rest/auth")
    meta = new_meta()
    assert pay(cc_payment(), meta).detail["statusCode"] == "outcome_unknown"
    assert len(gateways.cc.live_charges()) == 1

    settings = gateways.service.settings
    unreachable_url = {"CARDCONNECT_URL": unused_local_url() + "/cardconnect/rest"}
    install_service(make_settings(gateways.tmp_path, gateway_url_overrides=unreachable_url))
    unreachable = pay(cc_payment(), meta)
    assert unreachable.status == 503 and unreachable.detail["statusCode"] == "gateway_unreachable"

    install_service(settings)
    retried = pay(cc_payment(), meta)
    assert retried.status == 200, retried.body
    assert len(gateways.cc.live_charges()) == 1  # looked up again, not charged again
    assert retried.detail["paymentTransactionId"] == gateways.cc.live_charges()[0].retref


def cc_refund(payment_id: str, **changes: Any) -> dict[str, Any]:
    return refund_body(payment_id, **{"gatewayTypeId": 2, "merchantAccountId": CC_ACCOUNT, **changes})


def pl_refund(payment_id: str, **changes: Any) -> dict[str, Any]:
    return refund_body(payment_id, **{"gatewayTypeId": 1, "merchantAccountId": PL_ACCOUNT, **changes})


NOT_PAYMENT_IDS = [".", "..", "...", "./.", "../..", "..%2f..", "%2e%2e", "a/b", "1 2", "١٢٣"]


@pytest.mark.parametrize("payment_id", [*NOT_PAYMENT_IDS, "txn_0001abcd", "123456789012345"])
def test_cardconnect_refund_of_an_id_not_shaped_like_a_retref_is_404_before_any_call(
    gateways: Gateways, payment_id: str
) -> None:
    vault = FakeKeyVault()
    vault.set(f"merchant-account-{CC_ACCOUNT}", format_secret(2, CC_CREDENTIALS))
    install_service(gateways.service.settings, credentials=CachedCredentialStore(vault.client().load, 3600))
    answered = refund(cc_refund(payment_id))
    if answered.status == 422:  # the contract itself refuses some (a space, non-ASCII digits)
        assert [e["field"] for e in answered.detail["errors"]] == ["paymentTransactionId"]
    else:
        assert answered.status == 404, answered.body
        assert answered.detail["statusCode"] == "transaction_not_found"
        assert answered.detail["responseDetail"] == "paymentTransactionId is not a CardConnect transaction id"
    assert gateways.cc.requests == []
    assert vault.reads(f"merchant-account-{CC_ACCOUNT}") == 0  # refused before any credential read


@pytest.mark.parametrize("payment_id", [*NOT_PAYMENT_IDS, "123456789012", "txn_", "txn_../x", "txn_a.b"])
def test_payload_refund_of_an_id_not_shaped_like_a_transaction_id_is_404_before_any_call(
    gateways: Gateways, payment_id: str
) -> None:
    answered = refund(pl_refund(payment_id))
    assert answered.status in (404, 422), answered.body
    assert answered.status == 422 or answered.detail["statusCode"] == "transaction_not_found"
    assert gateways.pl.requests == []
    # The same id again is refused again: nothing was stored for it.
    again = refund(pl_refund(payment_id))
    assert again.status == answered.status and "Idempotent-Replayed" not in again.headers


@pytest.mark.parametrize("gateway", ["cardconnect", "payload"])
def test_a_refund_aimed_at_a_refunds_id_is_refused_and_the_refund_stands(gateways: Gateways, gateway: str) -> None:
    fake = gateways.cc if gateway == "cardconnect" else gateways.pl
    paid = pay(cc_payment(amount=60) if gateway == "cardconnect" else pl_payment(amount=60))
    fake.settle_all()
    to_refund = cc_refund if gateway == "cardconnect" else pl_refund
    first = refund(to_refund(paid.detail["paymentTransactionId"], amount=10))
    assert first.status == 200 and first.detail["responseDetail"] == "Refund approved", first.body
    refund_id = first.detail["paymentTransactionId"]

    aimed_at_refund = refund(to_refund(refund_id))
    assert aimed_at_refund.status == 400, aimed_at_refund.body
    assert aimed_at_refund.detail["statusCode"] == "not_a_payment"
    writes = [r for r in fake.requests if r.method in ("PUT", "POST")]
    assert len(writes) == 2  # the sale and the first refund; nothing aimed at the refund
    if gateway == "cardconnect":
        assert gateways.cc.transactions[refund_id].setlstat == "Queued for Capture"
        assert gateways.cc.transactions[paid.detail["paymentTransactionId"]].refunded == Decimal("10.00")
    else:
        assert gateways.pl.transactions[refund_id].status == "processed"


MALFORMED = ["missing_id", "nan_amount", "listing"]


@pytest.mark.parametrize("gateway", ["cardconnect", "payload"])
@pytest.mark.parametrize("fault", MALFORMED)
def test_a_malformed_sale_answer_is_502_and_the_retry_settles_it(gateways: Gateways, gateway: str, fault: str) -> None:
    fake = gateways.cc if gateway == "cardconnect" else gateways.pl
    body = cc_payment() if gateway == "cardconnect" else pl_payment()
    fake.set_fault(fault, match="PUT /cardconnect/rest/auth" if gateway == "cardconnect" else "POST /transactions")
    meta = new_meta()

    first = pay(body, meta)
    assert first.status == 502, first.body
    assert first.detail["statusCode"] == "outcome_unknown"
    assert len(fake.live_charges()) == 1  # the gateway did charge

    retried = pay(body, meta)  # the record was left unknown: the retry looks the charge up
    assert retried.status == 200, retried.body
    live = fake.live_charges()
    assert len(live) == 1
    assert retried.detail["paymentTransactionId"] == (live[0].retref if gateway == "cardconnect" else live[0].id)


@pytest.mark.parametrize("gateway", ["cardconnect", "payload"])
@pytest.mark.parametrize("fault", MALFORMED)
@pytest.mark.parametrize("step", ["lookup", "refund"])
def test_a_malformed_refund_answer_is_502_and_the_retry_settles_it(
    gateways: Gateways, gateway: str, fault: str, step: str
) -> None:
    fake = gateways.cc if gateway == "cardconnect" else gateways.pl
    paid = pay(cc_payment(amount=80) if gateway == "cardconnect" else pl_payment(amount=80))
    payment_id = paid.detail["paymentTransactionId"]
    fake.settle_all()
    body = (cc_refund if gateway == "cardconnect" else pl_refund)(payment_id, amount=30)
    match = {
        ("cardconnect", "lookup"): "GET /cardconnect/rest/inquire/",
        ("cardconnect", "refund"): "PUT /cardconnect/rest/refund",
        ("payload", "lookup"): "GET /transactions/",
        ("payload", "refund"): "POST /transactions",
    }[(gateway, step)]
    fake.set_fault(fault, match=match)
    meta = new_meta()

    first = refund(body, meta)
    assert first.status == 502, first.body
    assert first.detail["statusCode"] == "outcome_unknown"

    retried = refund(body, meta)
    assert retried.status == 200, retried.body
    assert retried.detail["responseDetail"] == "Refund approved"
    refunds = [t for t in fake.transactions.values() if getattr(t, "kind", getattr(t, "type", None)) == "refund"]
    assert len(refunds) == 1
    assert refunds[0].amount == Decimal("30.00")
    assert retried.detail["paymentTransactionId"] == (refunds[0].retref if gateway == "cardconnect" else refunds[0].id)


@pytest.mark.parametrize("gateway", ["cardconnect", "payload"])
def test_a_wrong_gateway_url_is_503_and_nothing_is_stored(gateways: Gateways, gateway: str) -> None:
    fake = gateways.cc if gateway == "cardconnect" else gateways.pl
    body = cc_payment() if gateway == "cardconnect" else pl_payment()
    settings = gateways.service.settings
    wrong = {"CARDCONNECT_URL": gateways.cc.root_url + "/cardconnect/rst"} if gateway == "cardconnect" else {
        "PAYLOAD_API_URL": gateways.pl.root_url + "/v9"}
    overrides = {**settings.gateway_url_overrides, **wrong}
    install_service(make_settings(gateways.tmp_path, **{**vars(settings), "gateway_url_overrides": overrides}))
    meta = new_meta()

    first = pay(body, meta)
    assert first.status == 503, first.body
    assert first.detail["statusCode"] == "gateway_misconfigured"
    assert first.detail["gatewayHttpStatusCode"] == 404
    assert first.headers["Retry-After"]
    assert [r.status for r in fake.requests] == [404]

    install_service(settings)  # the URL is fixed: the same request now charges, once
    retried = pay(body, meta)
    assert retried.status == 200, retried.body
    assert "Idempotent-Replayed" not in retried.headers
    assert len(fake.live_charges()) == 1


@pytest.mark.parametrize("gateway", ["cardconnect", "payload"])
@pytest.mark.parametrize("status", [405, 406, 407, 410, 415])
def test_gateway_statuses_that_mean_our_configuration_are_503_and_not_stored(
    gateways: Gateways, gateway: str, status: int
) -> None:
    fake = gateways.cc if gateway == "cardconnect" else gateways.pl
    body = cc_payment() if gateway == "cardconnect" else pl_payment()
    fake.set_fault(f"http{status}")
    meta = new_meta()
    first = pay(body, meta)
    assert (first.status, first.detail["statusCode"]) == (503, "gateway_misconfigured"), first.body
    assert pay(body, meta).status == 200  # not replayed: the retry reached the gateway and charged
    assert len(fake.live_charges()) == 1


@pytest.mark.parametrize("gateway", ["cardconnect", "payload"])
def test_a_gateway_400_about_this_request_is_stored_and_replayed(gateways: Gateways, gateway: str) -> None:
    fake = gateways.cc if gateway == "cardconnect" else gateways.pl
    body = cc_payment() if gateway == "cardconnect" else pl_payment()
    fake.set_fault("http400")
    meta = new_meta()
    first = pay(body, meta)
    assert first.status == 400, first.body
    replayed = pay(body, meta)
    assert (replayed.status, replayed.headers.get("Idempotent-Replayed")) == (400, "true")
    assert len(fake.requests) == 1 and fake.live_charges() == []


def test_payload_403_on_another_accounts_transaction_is_not_found_without_a_credential_refresh(
    gateways: Gateways,
) -> None:
    other_key, other_account = "test_secret_key_tenantB2", 3002
    gateways.pl.accounts[other_key] = "acct_tenantB"
    vault = FakeKeyVault()
    vault.set(f"merchant-account-{PL_ACCOUNT}", format_secret(1, PL_CREDENTIALS))
    other = {"apiKey": other_key, "processingId": "acct_tenantB"}
    vault.set(f"merchant-account-{other_account}", format_secret(1, other))
    install_service(gateways.service.settings, credentials=CachedCredentialStore(vault.client().load, 3600))
    foreign = pay(pl_payment(merchantAccountId=other_account)).detail["paymentTransactionId"]

    answered = refund(pl_refund(foreign))
    assert answered.status == 404, answered.body
    assert answered.detail["statusCode"] == "transaction_not_found"
    assert answered.detail["gatewayHttpStatusCode"] == 403
    assert vault.reads(f"merchant-account-{PL_ACCOUNT}") == 1  # no refresh: the key is fine
    assert [r.status for r in gateways.pl.requests[1:]] == [403]
    assert [t.status for t in gateways.pl.live_charges()] == ["processed"]


ECHOED = {
    "cardconnect": [CC_USER, CC_PASSWORD, CC_MID, "987", "1239"],
    "payload": [PL_KEY, PL_PROCESSING, "987", "12/39"],
}


@pytest.mark.parametrize("gateway", ["cardconnect", "payload"])
def test_a_gateway_echoing_what_it_was_sent_reaches_no_response_record_or_log(
    gateways: Gateways, gateway: str, leak_guard: LeakGuard
) -> None:
    fake = gateways.cc if gateway == "cardconnect" else gateways.pl
    fake.set_fault("echo", count=None)
    leak_guard.watch(*ECHOED[gateway], "12/39")  # the autouse guard checks every log line at teardown
    body = cc_payment() if gateway == "cardconnect" else pl_payment()
    meta = new_meta()

    declined = pay(body, meta)
    replayed = pay(body, meta)  # the stored record
    assert declined.status == 400 and replayed.headers.get("Idempotent-Replayed") == "true", declined.body
    sent = fake.requests[0].raw_body
    assert all(value in sent or value in (CC_USER, CC_PASSWORD, PL_KEY) for value in ECHOED[gateway])
    for answer in (declined, replayed):
        assert leak_guard.leaks(answer.text) == [], answer.text
        assert answer.detail["statusCode"] == "[removed]"  # the CVV, echoed as the decline code
        assert answer.detail["responseMessage"].count("removed]") >= 5  # card, CVV, expiry, credentials


@pytest.mark.parametrize("gateway", ["cardconnect", "payload"])
def test_a_gateway_echoing_a_refunds_credentials_is_scrubbed(
    gateways: Gateways, gateway: str, leak_guard: LeakGuard
) -> None:
    fake = gateways.cc if gateway == "cardconnect" else gateways.pl
    paid = pay(cc_payment(amount=50) if gateway == "cardconnect" else pl_payment(amount=50))
    fake.settle_all()
    fake.set_fault("echo", match="PUT /cardconnect/rest/refund" if gateway == "cardconnect" else "POST /transactions")
    credentials = ECHOED[gateway][:3] if gateway == "cardconnect" else ECHOED[gateway][:2]
    leak_guard.watch(*credentials)

    refused = refund((cc_refund if gateway == "cardconnect" else pl_refund)(paid.detail["paymentTransactionId"]))
    assert refused.status in (400, 409), refused.body
    assert leak_guard.leaks(refused.text) == [], refused.text
    assert "[removed]" in refused.detail["responseMessage"]
