"""Every outage gets a fast, true answer, and every request answers within its budget.

The Table store runs on Azurite behind a TCP relay (`tests/relay.py`) that refuses, drops or
freezes; the SQLite store is locked by another connection. Before any gateway call a store fault
answers 503 with Retry-After and sends nothing; after one it answers 502 `outcome_unknown`, and a
retry once the store is back learns the outcome without charging again.
"""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from gateways.cardconnect import CardConnectGateway
from shared import runtime
from shared.flow import REQUEST_BUDGET_SECONDS, PaymentService
from shared.idempotency import STORE_CALL_SECONDS
from shared.settings import Settings
from shared.table_store import TableIdempotencyStore
from tests.conftest import LeakGuard
from tests.fakes import CardConnectFake
from tests.relay import Mode, Relay
from tests.support import (
    audit_lines,
    make_settings,
    new_meta,
    pay,
    payment_body,
    refund,
    refund_body,
    write_credentials,
)

CC_ACCOUNT, CC_MID, CC_USER, CC_PASSWORD = 2001, "496160873888", "outage-user", "outage-password-1"


@dataclass
class Rig:
    cc: CardConnectFake
    service: PaymentService
    settings: Settings
    relay: Relay | None
    sqlite_path: Path | None


def cc_payment(**changes: Any) -> dict[str, Any]:
    fields = {"gatewayTypeId": 2, "gatewayTypeName": "CardConnect", "merchantAccountId": CC_ACCOUNT,
              "account": "4788250000121443"}
    return payment_body(**{**fields, **changes})


def through_relay(connection_string: str, port: int) -> str:
    endpoint = f"TableEndpoint=http://127.0.0.1:{port}/"
    return re.sub(r"TableEndpoint=http://127\.0\.0\.1:\d+/", endpoint, connection_string)


def azurite_port(connection_string: str) -> int:
    match = re.search(r"TableEndpoint=http://127\.0\.0\.1:(\d+)/", connection_string)
    assert match is not None
    return int(match.group(1))


@pytest.fixture(params=["table", "sqlite"])
def rig(request: pytest.FixtureRequest, tmp_path: Path, leak_guard: LeakGuard) -> Iterator[Rig]:
    """The service as the app builds it (`runtime.build_service`), CardConnect on its fake, and the
    store named by the parameter: Table storage on Azurite behind a relay, or SQLite."""
    leak_guard.watch(CC_PASSWORD, "987", "1239")
    with CardConnectFake(merchants={CC_MID: (CC_USER, CC_PASSWORD)}) as cc:
        overrides: dict[str, Any] = {
            "gateway_url_overrides": {"CARDCONNECT_URL": cc.base_url},
            "gateway_timeout_seconds": 2.0,
            "idempotency_lease_seconds": 0.5,
        }
        relay = None
        if request.param == "table":
            azurite = request.getfixturevalue("azurite")
            relay = Relay(("127.0.0.1", azurite_port(azurite)))
            overrides.update(
                idempotency_store="table",
                storage_connection_string=through_relay(azurite, relay.port),
                idempotency_table_name="outage" + uuid.uuid4().hex[:12],
                idempotency_hmac_key="test-fingerprint-key",
            )
        settings = make_settings(tmp_path, **overrides)
        write_credentials(
            settings.local_credentials_file,
            {CC_ACCOUNT: {"gatewayTypeId": 2, "credentials": {"username": CC_USER, "password": CC_PASSWORD,
                                                               "merchantId": CC_MID}}},
        )
        service = runtime.build_service(settings)
        runtime.install(service)
        try:
            yield Rig(cc, service, settings, relay,
                      None if relay else settings.idempotency_sqlite_path)
        finally:
            runtime.install(None)
            if relay is not None:
                relay.close()


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


class SqliteLock:
    """Another connection holding the SQLite write lock, as a stuck process would."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def take(self) -> None:
        self.db.execute("BEGIN EXCLUSIVE")

    def free(self) -> None:
        self.db.execute("ROLLBACK")


OUTAGES = pytest.mark.parametrize(
    "rig, mode",
    [("table", "refuse"), ("table", "drop"), ("table", "freeze"), ("sqlite", "locked"), ("sqlite", "readonly")],
    indirect=["rig"],
)


def break_store(rig: Rig, mode: str) -> Callable[[], None]:
    """Cut the store (relay `mode`, or a held SQLite lock); returns how to mend it."""
    if rig.relay is not None:
        relay = rig.relay
        relay.set_mode(cast(Mode, mode))
        return lambda: relay.set_mode("pass")
    assert rig.sqlite_path is not None
    if mode == "readonly":
        # What a read-only file or mount gives (SQLITE_READONLY); file modes do not stop root.
        db = rig.service.idempotency._db()  # type: ignore[attr-defined]
        db.execute("PRAGMA query_only = 1")

        def writable() -> None:
            db.execute("PRAGMA query_only = 0")

        return writable
    lock = SqliteLock(rig.sqlite_path)
    lock.take()
    return lock.free


def assert_one_audit_line(guard: LeakGuard, status: int) -> None:
    lines = audit_lines(guard)
    assert [line["data"]["status"] for line in lines] == [status], lines


# -- before the gateway: 503, nothing sent -----------------------------------------------------


@OUTAGES
def test_a_store_that_fails_before_the_charge_answers_503_and_sends_nothing(
    rig: Rig, mode: str, leak_guard: LeakGuard
) -> None:
    pay(cc_payment())  # the store and the gateway work: a warm, pooled connection to each
    sent_before = len(rig.cc.requests)
    leak_guard.capture.lines.clear()
    mend = break_store(rig, mode)
    try:
        answer, elapsed = timed(lambda: pay(cc_payment()))
    finally:
        mend()
    assert answer.status == 503, answer.body
    assert answer.detail["statusCode"] == "storage_unavailable"
    assert answer.headers["Retry-After"]
    assert len(rig.cc.requests) == sent_before
    # A frozen store costs its read timeout, a held lock its busy timeout; the rest fail at once.
    limit = STORE_CALL_SECONDS if mode in ("freeze", "locked") else 3.0
    assert elapsed < limit, elapsed
    assert_one_audit_line(leak_guard, 503)


# -- after the gateway: 502 outcome_unknown, never "nothing charged" ---------------------------


@OUTAGES
def test_a_store_lost_after_the_charge_answers_outcome_unknown_and_the_retry_finds_it(
    rig: Rig, mode: str, leak_guard: LeakGuard, monkeypatch: pytest.MonkeyPatch
) -> None:
    mend: list[Callable[[], None]] = []
    charge = CardConnectGateway.charge

    def charge_then_lose_the_store(gateway: CardConnectGateway, sale: Any) -> Any:
        result = charge(gateway, sale)
        mend.append(break_store(rig, mode))
        return result

    monkeypatch.setattr(CardConnectGateway, "charge", charge_then_lose_the_store)
    meta, body = new_meta(), cc_payment()
    try:
        answer, elapsed = timed(lambda: pay(body, meta))
    finally:
        for fix in mend:
            fix()
    monkeypatch.undo()
    assert answer.status == 502, answer.body
    assert answer.detail["statusCode"] == "outcome_unknown"
    assert "nothing" not in answer.detail["responseDetail"].lower()
    assert elapsed < STORE_CALL_SECONDS + 3, elapsed
    assert len(rig.cc.live_charges()) == 1
    assert_one_audit_line(leak_guard, 502)

    time.sleep(rig.settings.idempotency_lease_seconds)  # the first attempt's lease runs out
    retried = pay(body, meta)
    assert retried.status == 200, retried.body
    assert [t.retref for t in rig.cc.live_charges()] == [retried.detail["paymentTransactionId"]]
    replayed = pay(body, meta)
    assert (replayed.status, replayed.text) == (200, retried.text)
    assert len([r for r in rig.cc.requests if r.path.endswith("/auth")]) == 1


# -- the budget --------------------------------------------------------------------------------


def test_the_stated_budget_fits_the_platform() -> None:
    # Azure's load balancer cuts an HTTP request at 230 s whatever functionTimeout says.
    assert REQUEST_BUDGET_SECONDS + STORE_CALL_SECONDS <= 230 - 5


@pytest.mark.parametrize("rig", ["table"], indirect=True)
def test_a_frozen_store_write_gives_up_within_one_store_call(rig: Rig) -> None:
    store = rig.service.idempotency
    assert isinstance(store, TableIdempotencyStore)
    from shared.idempotency import Record, State, StoreUnavailable

    claimed, record = store.claim(Record(f"payment:1:{uuid.uuid4()}", "fp", State.IN_PROGRESS, 1.0, 1.0))
    assert claimed
    assert rig.relay is not None
    rig.relay.set_mode("freeze")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.transition(record, state=State.COMPLETED, status=200, body="{}")
    assert time.monotonic() - started < STORE_CALL_SECONDS
    rig.relay.set_mode("pass")


def test_the_table_client_options_keep_one_call_under_the_stated_bound() -> None:
    from shared.table_store import CLIENT_OPTIONS, worst_call_seconds

    assert CLIENT_OPTIONS["retry_status"] == 0  # a store's Retry-After is never slept through
    assert worst_call_seconds() < STORE_CALL_SECONDS


def test_a_gateway_call_is_cut_to_the_time_left(leak_guard: LeakGuard) -> None:
    from gateways.errors import GatewayUnreachable, OutcomeUnknown
    from gateways.http import HttpPool, Timeouts

    leak_guard.watch(CC_PASSWORD)
    with CardConnectFake(merchants={CC_MID: (CC_USER, CC_PASSWORD)}) as cc:
        url = f"{cc.base_url}/inquireMerchant/{CC_MID}"
        cc.set_fault("slow", seconds=1.5, count=None)
        pool = HttpPool(Timeouts(connect=1.0, read=5.0))
        started = time.monotonic()
        bounded = pool.until(started + 2.8)
        assert bounded.send("GET", url, auth=(CC_USER, CC_PASSWORD)).status == 200
        with pytest.raises(OutcomeUnknown):  # 1.3 s left: the read is cut to it
            bounded.send("GET", url, auth=(CC_USER, CC_PASSWORD))
        assert 2.6 < time.monotonic() - started < 4.0  # uncut, the read would have had its answer at 3.0 s
        with pytest.raises(GatewayUnreachable):  # nothing left: nothing sent
            bounded.send("GET", url, auth=(CC_USER, CC_PASSWORD))
        assert len(cc.requests) == 2
        assert pool.send("GET", url, auth=(CC_USER, CC_PASSWORD)).status == 200  # the pool itself is not bounded
        pool.close()


@pytest.mark.parametrize("rig", ["sqlite"], indirect=True)
def test_a_refund_of_several_slow_gateway_calls_answers_within_the_budget(rig: Rig) -> None:
    paid = pay(cc_payment())
    assert paid.status == 200
    budget = STORE_CALL_SECONDS + 3.5  # 3.5 s for the gateway, the rest kept for the store write
    bounded = PaymentService(rig.settings, rig.service.factory, rig.service.idempotency,
                             runtime.fingerprint_key_source(rig.settings), budget_seconds=budget)
    runtime.install(bounded)
    rig.cc.set_fault("slow", seconds=1.8, count=None)  # each call answers in 1.8 s: inquire, then void
    refunded, elapsed = timed(lambda: refund(refund_body(paid.detail["paymentTransactionId"], gatewayTypeId=2,
                                                          merchantAccountId=CC_ACCOUNT)))
    assert refunded.status == 502 and refunded.detail["statusCode"] == "outcome_unknown", refunded.body
    assert 3.3 < elapsed < 4.5, elapsed  # the void's read was cut to the 1.7 s left
    assert rig.cc.requests[-1].path.endswith("/void")


# -- the table itself --------------------------------------------------------------------------


@pytest.mark.parametrize("rig", ["table"], indirect=True)
def test_a_table_deleted_under_the_app_is_recreated(rig: Rig) -> None:
    from azure.data.tables import TableServiceClient

    assert pay(cc_payment()).status == 200
    admin = TableServiceClient.from_connection_string(rig.settings.storage_connection_string)
    admin.delete_table(rig.settings.idempotency_table_name)
    meta = new_meta()
    again = pay(cc_payment(), meta)
    assert again.status == 200, again.body
    assert pay(cc_payment(), meta).headers["Idempotent-Replayed"] == "true"
    assert len(rig.cc.live_charges()) == 2
