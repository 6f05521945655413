"""Exactly one audit line per call, whatever happens, and the stored record says what the caller
was told: a replay answers the first answer's status and body, or the record is left unsettled
(unknown, in progress, or gone) for the retry to find out.

Failures are injected at each step: the claim, building the gateway, the gateway call (before and
after it charged), recording the outcome, giving the key back, and building the service itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateways.errors import GatewayUnreachable
from gateways.simulator import SimulatorGateway
from shared import runtime
from shared.factory import GatewayFactory
from shared.flow import Operation, PaymentService, order_id_for
from shared.idempotency import IdempotencyStore, Record, State, StoreUnavailable
from shared.settings import SettingsError
from tests.conftest import LeakGuard
from tests.support import (
    SIMULATOR_ACCOUNT,
    Called,
    audit_lines,
    install_service,
    make_settings,
    new_meta,
    pay,
    payment_body,
    write_credentials,
)

# Fixtures of that module, imported under their own names so pytest finds them here.
from tests.test_idempotency import GatewaySpy, live_charges
from tests.test_idempotency import spy as spy
from tests.test_idempotency import store as store


class FaultyStore:
    """A real store whose named method raises `error` on its next call, once."""

    def __init__(self, inner: IdempotencyStore) -> None:
        self.inner = inner
        self.faults: dict[str, BaseException] = {}

    def fail(self, method: str, error: BaseException) -> None:
        self.faults[method] = error

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name not in self.faults:
            return attribute

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise self.faults.pop(name)

        return broken


@pytest.fixture
def faulty(store: IdempotencyStore, tmp_path: Path) -> Iterator[FaultyStore]:
    settings = make_settings(tmp_path, idempotency_lease_seconds=300.0)
    write_credentials(settings.local_credentials_file, {SIMULATOR_ACCOUNT: {"gatewayTypeId": 900, "credentials": {}}})
    wrapped = FaultyStore(store)
    install_service(settings, idempotency=wrapped)
    yield wrapped
    runtime.install(None)


def stored(store: IdempotencyStore, meta: dict[str, Any]) -> Record | None:
    return store.get(f"payment:{SIMULATOR_ACCOUNT}:{meta['transactionId']}")


def assert_told_and_stored_agree(answer: Called, record: Record | None) -> None:
    if record is not None and record.state is State.COMPLETED:
        assert (record.status, record.body) == (answer.status, answer.text)


def assert_one_line(guard: LeakGuard, answer: Called, meta: dict[str, Any]) -> None:
    lines = [line for line in audit_lines(guard) if line["transactionId"] == meta["transactionId"]]
    assert len(lines) == 1, lines
    assert lines[0]["data"]["status"] == answer.status
    assert lines[0]["level"] == ("AUDIT" if answer.status == 200 else "ERROR")


def fresh_lines(guard: LeakGuard) -> None:
    guard.capture.lines.clear()


@pytest.mark.parametrize(
    "error, status, code",
    [
        (StoreUnavailable("Table storage: ServiceRequestError"), 503, "storage_unavailable"),
        (RuntimeError("a bug in the claim"), 500, "internal_error"),
    ],
)
def test_a_failed_claim_is_answered_and_audited_and_nothing_is_sent(
    faulty: FaultyStore, spy: GatewaySpy, leak_guard: LeakGuard, error: Exception, status: int, code: str
) -> None:
    faulty.fail("claim", error)
    meta = new_meta()
    answer = pay(payment_body(), meta)
    assert (answer.status, answer.detail["statusCode"]) == (status, code)
    assert answer.headers.get("Retry-After") == ("5" if status == 503 else None)
    assert spy.calls["charge"] == 0
    assert_one_line(leak_guard, answer, meta)
    assert stored(faulty.inner, meta) is None
    assert pay(payment_body(), meta).status == 200  # the retry charges, once
    assert spy.calls["charge"] == 1


def test_a_fault_building_the_gateway_gives_the_key_back(
    faulty: FaultyStore, leak_guard: LeakGuard, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the factory")

    monkeypatch.setattr(GatewayFactory, "create", broken)
    meta = new_meta()
    answer = pay(payment_body(), meta)
    assert (answer.status, answer.detail["statusCode"]) == (500, "internal_error")
    assert "nothing" not in answer.detail["responseDetail"].lower()
    assert_one_line(leak_guard, answer, meta)
    assert stored(faulty.inner, meta) is None
    monkeypatch.undo()
    assert pay(payment_body(), meta).status == 200
    assert len(live_charges(order_id_for(Operation.PAYMENT, meta["transactionId"]))) == 1


@pytest.mark.parametrize("charged", [False, True])
def test_an_unexpected_fault_in_the_gateway_call_is_an_unknown_outcome(
    faulty: FaultyStore, leak_guard: LeakGuard, monkeypatch: pytest.MonkeyPatch, charged: bool
) -> None:
    charge = SimulatorGateway.charge

    def broken(gateway: SimulatorGateway, sale: Any) -> Any:
        if charged:
            charge(gateway, sale)
        raise KeyError("a bug reading the gateway's answer")

    monkeypatch.setattr(SimulatorGateway, "charge", broken)
    meta = new_meta()
    answer = pay(payment_body(), meta)
    assert (answer.status, answer.detail["statusCode"]) == (502, "outcome_unknown")
    assert_one_line(leak_guard, answer, meta)
    record = stored(faulty.inner, meta)
    assert record is not None and record.state is State.UNKNOWN
    monkeypatch.undo()
    fresh_lines(leak_guard)
    retried = pay(payment_body(), meta)
    assert retried.status == 200
    assert_one_line(leak_guard, retried, meta)
    assert len(live_charges(order_id_for(Operation.PAYMENT, meta["transactionId"]))) == 1


@pytest.mark.parametrize("error", [StoreUnavailable("SQLite: OperationalError: database is locked"),
                                   RuntimeError("a bug in the store")])
def test_an_outcome_that_cannot_be_recorded_is_told_as_unknown(
    faulty: FaultyStore, spy: GatewaySpy, leak_guard: LeakGuard, error: Exception
) -> None:
    faulty.fail("transition", error)
    meta = new_meta()
    answer = pay(payment_body(), meta)
    assert (answer.status, answer.detail["statusCode"]) == (502, "outcome_unknown")
    assert spy.calls["charge"] == 1
    assert_one_line(leak_guard, answer, meta)
    record = stored(faulty.inner, meta)
    assert record is not None and record.state is State.IN_PROGRESS
    assert_told_and_stored_agree(answer, record)


def test_a_key_that_cannot_be_given_back_is_told_as_unknown(
    faulty: FaultyStore, leak_guard: LeakGuard, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(gateway: SimulatorGateway, sale: Any) -> Any:
        raise GatewayUnreachable("connection refused")

    monkeypatch.setattr(SimulatorGateway, "charge", unreachable)
    faulty.fail("release", StoreUnavailable("Table storage: ServiceResponseError"))
    meta = new_meta()
    answer = pay(payment_body(), meta)
    assert (answer.status, answer.detail["statusCode"]) == (502, "outcome_unknown")
    assert_one_line(leak_guard, answer, meta)
    record = stored(faulty.inner, meta)
    assert record is not None and record.state is State.IN_PROGRESS


@pytest.mark.parametrize("account, status", [("4242424242424242", 200), ("4000000000000002", 400),
                                             ("4999006200620062", 502)])
def test_every_outcome_is_audited_once_and_replayed_as_told(
    faulty: FaultyStore, leak_guard: LeakGuard, account: str, status: int
) -> None:
    meta = new_meta()
    answer = pay(payment_body(account=account), meta)
    assert answer.status == status
    assert_one_line(leak_guard, answer, meta)
    record = stored(faulty.inner, meta)
    assert record is not None
    assert_told_and_stored_agree(answer, record)
    if record.state is State.COMPLETED:
        replay = pay(payment_body(account=account), meta)
        assert (replay.status, replay.text) == (answer.status, answer.text)


def test_a_service_that_cannot_be_built_still_answers_and_audits(
    monkeypatch: pytest.MonkeyPatch, leak_guard: LeakGuard
) -> None:
    def misconfigured() -> PaymentService:
        raise SettingsError("IDEMPOTENCY_STORE must be sqlite or table")

    monkeypatch.setattr(runtime, "service", misconfigured)
    meta = new_meta()
    answer = pay(payment_body(), meta)
    assert (answer.status, answer.detail["statusCode"]) == (500, "internal_error")
    assert json.loads(answer.headers["BVMeta"]) == meta
    assert_one_line(leak_guard, answer, meta)
