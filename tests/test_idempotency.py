"""Never charge twice: idempotent replays, concurrent duplicates, unknown outcomes, reconciliation.

Every test runs on both stores: SQLite (local) and Azure Table storage on Azurite.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateways.errors import OutcomeUnknown
from gateways.simulator import LEDGER, SimulatorGateway
from shared import runtime
from shared.contract import PaymentBody
from shared.flow import Operation, PaymentService, order_id_for
from shared.idempotency import IdempotencyStore, Record, SqliteIdempotencyStore, State
from shared.reconcile import Decision, reconcile_unknown
from shared.table_store import TableIdempotencyStore
from tests.conftest import LeakGuard
from tests.support import (
    SIMULATOR_ACCOUNT,
    install_service,
    make_settings,
    new_meta,
    pay,
    payment_body,
    refund,
    refund_body,
    write_credentials,
)


def make_store(kind: str, tmp_path: Path, connection_string: str | None) -> IdempotencyStore:
    if kind == "sqlite":
        return SqliteIdempotencyStore(tmp_path / "idempotency.sqlite")
    from azure.data.tables import TableServiceClient

    assert connection_string is not None
    table = "idem" + uuid.uuid4().hex[:12]
    return TableIdempotencyStore(TableServiceClient.from_connection_string(connection_string).get_table_client(table))


@pytest.fixture(params=["sqlite", "table"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> IdempotencyStore:
    connection_string = request.getfixturevalue("azurite") if request.param == "table" else None
    return make_store(request.param, tmp_path, connection_string)


class GatewaySpy:
    """Counts every call the flow makes into the simulator gateway."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        for name in ("charge", "payment_status", "void", "refund", "find_payment", "find_refund"):
            original = getattr(SimulatorGateway, name)
            monkeypatch.setattr(SimulatorGateway, name, self._wrap(name, original))

    def _wrap(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def counted(gateway: SimulatorGateway, *args: Any) -> Any:
            with self._lock:
                self.calls[name] += 1
            return original(gateway, *args)

        return counted


@pytest.fixture
def service(store: IdempotencyStore, tmp_path: Path) -> Iterator[PaymentService]:
    settings = make_settings(tmp_path, reconcile_after_seconds=600.0, idempotency_lease_seconds=300.0)
    write_credentials(settings.local_credentials_file, {SIMULATOR_ACCOUNT: {"gatewayTypeId": 900, "credentials": {}}})
    yield install_service(settings, idempotency=store)
    runtime.install(None)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> GatewaySpy:
    return GatewaySpy(monkeypatch)


def live_charges(order_id: str | None = None) -> list[Any]:
    return [p for p in LEDGER.payments(SIMULATOR_ACCOUNT) if p.live and (order_id is None or p.order_id == order_id)]


# -- the store itself ---------------------------------------------------------------------------


def record(scope: str, now: float = 1000.0) -> Record:
    return Record(scope, "fp", State.IN_PROGRESS, now, now, context={"operation": "payment"})


def test_claim_is_atomic_under_20_racing_threads(store: IdempotencyStore) -> None:
    scope = f"payment:1:{uuid.uuid4()}"
    barrier = threading.Barrier(20)
    wins: list[bool] = []

    def racer() -> None:
        barrier.wait()
        claimed, _ = store.claim(record(scope))
        wins.append(claimed)

    threads = [threading.Thread(target=racer) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1 and wins.count(False) == 19


def test_transitions_are_conditional_and_release_forgets(store: IdempotencyStore) -> None:
    scope = f"payment:1:{uuid.uuid4()}"
    claimed, first = store.claim(record(scope))
    assert claimed
    second = store.transition(first, state=State.UNKNOWN, status=502)
    assert second is not None and second.state is State.UNKNOWN
    assert store.transition(first, state=State.COMPLETED) is None  # stale version loses
    store.release(second)
    assert store.get(scope) is None
    assert store.claim(record(scope))[0]


def test_unknown_records_are_listed_by_age_and_old_ones_purged_whatever_their_state(store: IdempotencyStore) -> None:
    old, recent = f"payment:1:{uuid.uuid4()}", f"payment:1:{uuid.uuid4()}"
    _, a = store.claim(record(old))
    _, b = store.claim(record(recent))
    a2 = store.transition(a, state=State.UNKNOWN)
    assert a2 is not None
    assert [r.scope for r in store.in_state(State.UNKNOWN, a2.updated_at + 1)] == [old]
    assert list(store.in_state(State.UNKNOWN, a2.updated_at - 1)) == []
    done = store.transition(b, state=State.COMPLETED, status=200, body="{}")
    assert done is not None
    assert store.purge(a2.updated_at - 1) == 0
    assert store.purge(done.updated_at + 1) == 2
    assert store.get(recent) is None and store.get(old) is None


# -- through the functions ----------------------------------------------------------------------


@pytest.mark.usefixtures("service")
def test_same_key_twice_one_gateway_call_identical_answer(spy: GatewaySpy) -> None:
    meta, body = new_meta(), payment_body()
    first = pay(body, meta)
    second = pay(body, meta)
    assert first.status == second.status == 200
    assert first.body == second.body
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert spy.calls["charge"] == 1


@pytest.mark.usefixtures("service")
def test_declines_are_replayed_too(spy: GatewaySpy) -> None:
    meta, body = new_meta(), payment_body(account="4000000000000002")
    first, second = pay(body, meta), pay(body, meta)
    assert first.status == second.status == 400
    assert first.body == second.body
    assert spy.calls["charge"] == 1


@pytest.mark.usefixtures("service")
def test_twenty_concurrent_duplicates_make_exactly_one_gateway_call(spy: GatewaySpy) -> None:
    meta, body = new_meta(), payment_body(amount=12.34)
    barrier = threading.Barrier(20)
    results: list[Any] = []

    def duplicate() -> None:
        barrier.wait()
        results.append(pay(body, meta))

    threads = [threading.Thread(target=duplicate) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert spy.calls["charge"] == 1
    statuses = Counter(r.status for r in results)
    assert set(statuses) <= {200, 409} and statuses[200] >= 1
    winners = {r.detail["paymentTransactionId"] for r in results if r.status == 200}
    assert len(winners) == 1
    for conflict in (r for r in results if r.status == 409):
        assert conflict.headers["Retry-After"] and conflict.detail["statusCode"] == "request_in_progress"


@pytest.mark.usefixtures("service")
def test_same_key_with_a_different_request_is_422_and_no_call(spy: GatewaySpy) -> None:
    meta = new_meta()
    assert pay(payment_body(amount=10), meta).status == 200
    for changed in (payment_body(amount=11), payment_body(account="5555555555554444")):
        reused = pay(changed, meta)
        assert reused.status == 422
        assert reused.detail["statusCode"] == "idempotency_key_reused"
    assert spy.calls["charge"] == 1


@pytest.mark.usefixtures("service")
def test_idempotency_key_header_wins_over_the_transaction_id(spy: GatewaySpy) -> None:
    meta = new_meta()
    run = uuid.uuid4().hex
    first = pay(payment_body(), meta, headers={"Idempotency-Key": f"attempt-1/{run}"})
    second = pay(payment_body(), meta, headers={"Idempotency-Key": f"attempt-2/{run}"})
    assert first.status == second.status == 200
    assert first.detail["paymentTransactionId"] != second.detail["paymentTransactionId"]
    assert spy.calls["charge"] == 2


@pytest.mark.usefixtures("service")
def test_refund_retried_makes_one_void(spy: GatewaySpy) -> None:
    payment_id = pay(payment_body()).detail["paymentTransactionId"]
    meta = new_meta()
    first = refund(refund_body(payment_id), meta)
    second = refund(refund_body(payment_id), meta)
    assert first.status == second.status == 200
    assert first.body == second.body
    assert (spy.calls["payment_status"], spy.calls["void"], spy.calls["refund"]) == (1, 1, 0)


@pytest.mark.usefixtures("service")
def test_unknown_outcome_then_retry_returns_the_original_charge(spy: GatewaySpy) -> None:
    meta, body = new_meta(), payment_body(account="4999006200620062")
    first = pay(body, meta)
    assert first.status == 502
    assert first.detail["statusCode"] == "outcome_unknown"
    order_id = order_id_for(Operation.PAYMENT, meta["transactionId"])
    assert len(live_charges(order_id)) == 1

    retried = pay(body, meta)
    assert retried.status == 200, retried.body
    assert retried.detail["paymentTransactionId"] == live_charges(order_id)[0].transaction_id
    assert len(live_charges(order_id)) == 1
    assert spy.calls["charge"] == 1 and spy.calls["find_payment"] == 1
    assert pay(body, meta).headers["Idempotent-Replayed"] == "true"


@pytest.mark.usefixtures("service")
def test_unknown_outcome_without_a_charge_charges_once_on_retry(
    spy: GatewaySpy, monkeypatch: pytest.MonkeyPatch
) -> None:
    meta, body = new_meta(), payment_body()
    original = SimulatorGateway.charge
    lost = {"first": True}

    def lose_first_request(gateway: SimulatorGateway, sale: Any) -> Any:
        if lost.pop("first", False):
            raise OutcomeUnknown("connection dropped before the gateway read the request")
        return original(gateway, sale)

    monkeypatch.setattr(SimulatorGateway, "charge", lose_first_request)
    assert pay(body, meta).status == 502
    retried = pay(body, meta)
    assert retried.status == 200
    order_id = order_id_for(Operation.PAYMENT, meta["transactionId"])
    assert [p.transaction_id for p in live_charges(order_id)] == [retried.detail["paymentTransactionId"]]


def test_unclaimed_unknown_charge_is_voided_by_the_reconciler(
    service: PaymentService, spy: GatewaySpy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    meta, body = new_meta(), payment_body(account="4999006200620062", amount=30)
    assert pay(body, meta).status == 502
    order_id = order_id_for(Operation.PAYMENT, meta["transactionId"])
    assert len(live_charges(order_id)) == 1

    assert reconcile_unknown(service, now=time.time() + 60) == []  # not past the deadline yet
    outcomes = reconcile_unknown(service, now=time.time() + 601)
    assert [o.decision for o in outcomes] == [Decision.VOIDED]
    assert live_charges(order_id) == []
    # Looked up by order id, then reversed through the refund policy (which voids before settlement).
    calls = ("find_payment", "payment_status", "void", "refund")
    assert tuple(spy.calls[name] for name in calls) == (1, 1, 1, 0)

    audit = [json.loads(r.getMessage()) for r in caplog.records if r.name == "paymentgateway.audit"]
    assert audit[-1]["data"]["status"] == "reconciled_voided"
    assert audit[-1]["transactionId"] == meta["transactionId"]

    later = pay(body, meta)
    assert later.status == 400
    assert later.detail["statusCode"] == "voided_by_reconciliation"
    assert reconcile_unknown(service, now=time.time() + 1200) == []


def test_reconciler_forgets_a_key_that_never_charged(service: PaymentService, monkeypatch: pytest.MonkeyPatch) -> None:
    def lost(gateway: SimulatorGateway, sale: Any) -> Any:
        raise OutcomeUnknown("answer lost before the gateway acted")

    monkeypatch.setattr(SimulatorGateway, "charge", lost)
    meta, body = new_meta(), payment_body()
    assert pay(body, meta).status == 502
    outcomes = reconcile_unknown(service, now=time.time() + 601)
    assert [o.decision for o in outcomes] == [Decision.NOTHING_CHARGED]
    monkeypatch.undo()
    assert pay(body, meta).status == 200


def test_request_left_in_progress_by_a_dead_instance_is_reconciled_on_retry(
    service: PaymentService, spy: GatewaySpy
) -> None:
    meta, body = new_meta(), payment_body(account="4999006200620062")
    assert pay(body, meta).status == 502
    # Make it look like an instance died after claiming (in_progress, lease long gone).
    scope = f"payment:{SIMULATOR_ACCOUNT}:{meta['transactionId']}"
    stuck = service.idempotency.get(scope)
    assert stuck is not None
    stuck = service.idempotency.transition(stuck, state=State.IN_PROGRESS, updated_at=0.0)
    assert stuck is not None
    retried = pay(body, meta)
    assert retried.status == 200
    assert spy.calls["find_payment"] == 1 and spy.calls["charge"] == 1


@pytest.mark.usefixtures("service")
def test_retry_while_in_progress_is_409(store: IdempotencyStore) -> None:
    meta, body = new_meta(), payment_body()
    now = time.time()
    parsed = PaymentBody.model_validate(json.loads(json.dumps(body), parse_float=Decimal))
    fingerprint = runtime.service()._fingerprint(Operation.PAYMENT, parsed)
    scope = f"payment:{SIMULATOR_ACCOUNT}:{meta['transactionId']}"
    store.claim(Record(scope, fingerprint, State.IN_PROGRESS, now, now))
    busy = pay(body, meta)
    assert busy.status == 409
    assert busy.headers["Retry-After"]


def test_stored_records_hold_no_card_data(
    service: PaymentService, store: IdempotencyStore, leak_guard: LeakGuard
) -> None:
    meta = new_meta()
    body = payment_body(account="5555555555554444", cvv2="7319", expDate="0941")
    assert pay(body, meta).status == 200
    stored = store.get(f"payment:{SIMULATOR_ACCOUNT}:{meta['transactionId']}")
    assert stored is not None
    text = json.dumps([stored.fingerprint, stored.body, stored.context, stored.status])
    leak_guard.watch("7319", "0941")
    assert leak_guard.leaks(text) == []
    assert "5555555555554444" not in text


def test_reconcile_function_entry_point_runs_the_reconciler(tmp_path: Path, store: IdempotencyStore) -> None:
    from ReconcileUnknown import main

    settings = make_settings(tmp_path, reconcile_after_seconds=0.01)
    write_credentials(settings.local_credentials_file, {SIMULATOR_ACCOUNT: {"gatewayTypeId": 900, "credentials": {}}})
    install_service(settings, idempotency=store)
    try:
        meta = new_meta()
        assert pay(payment_body(account="4999006200620062"), meta).status == 502
        order_id = order_id_for(Operation.PAYMENT, meta["transactionId"])
        time.sleep(0.05)
        main(None)
        assert live_charges(order_id) == []
    finally:
        runtime.install(None)
