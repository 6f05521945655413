"""The reconciler ends every unknown outcome: reversed, found, released, or escalated to operators.

Against the stateful CardConnect and Payload fakes (which settle, and then refuse a void the way each
gateway does), on SQLite and on Table storage in Azurite.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateways.cardconnect import CardConnectGateway
from gateways.payload import PayloadGateway
from gateways.simulator import LEDGER, SimulatorGateway
from shared import runtime
from shared.flow import PaymentService
from shared.idempotency import IdempotencyStore, Record, SqliteIdempotencyStore, State
from shared.reconcile import Decision, Outcome, reconcile_unknown, reversal_order_id
from shared.settings import Settings, SettingsError
from tests import test_flow_gateways
from tests.fakes import CardConnectFake, PayloadFake
from tests.fakes._server import RecordedRequest, Reply
from tests.support import SIMULATOR_ACCOUNT, install_service, new_meta, pay, payment_body, refund, refund_body
from tests.test_flow_gateways import BOTH_STORES, CC_ACCOUNT, PL_ACCOUNT, Gateways, cc_payment, order_id, pl_payment

gateways = test_flow_gateways.gateways
"""Both fakes and the service on the store the test is parametrised with (see test_flow_gateways)."""

DUE = 601.0
"""Seconds past now at which a record left unknown now is due (RECONCILE_AFTER_SECONDS is 600)."""


class Crash(BaseException):
    """The process dies: nothing in the reconciler may catch it."""


@dataclass
class Side:
    """One gateway as these tests drive it: its fake, its request shapes and its wire."""

    name: str
    fake: CardConnectFake | PayloadFake
    gateway_class: type[CardConnectGateway] | type[PayloadGateway]
    payment: Callable[..., dict[str, Any]]
    account: int
    sale_match: str

    def charge(self, order: str) -> Any:
        txns = self.fake.transactions.values()
        if isinstance(self.fake, CardConnectFake):
            return next(t for t in txns if t.kind == "auth" and t.orderid == order)
        return next(t for t in txns if t.type == "payment" and t.order_number == order)

    def charge_id(self, order: str) -> str:
        charge = self.charge(order)
        return str(charge.retref if isinstance(self.fake, CardConnectFake) else charge.id)

    def refunds(self) -> list[Any]:
        txns = self.fake.transactions.values()
        if isinstance(self.fake, CardConnectFake):
            return [t for t in txns if t.kind == "refund"]
        return [t for t in txns if t.type == "refund"]

    def voids(self) -> list[RecordedRequest]:
        if isinstance(self.fake, CardConnectFake):
            return [r for r in self.fake.requests if r.method == "PUT" and r.path.endswith(("/void", "/voidByOrderId"))]
        return [r for r in self.fake.requests if r.method == "PUT" and r.path.startswith("/transactions/")]

    def refund_requests(self) -> list[RecordedRequest]:
        if isinstance(self.fake, CardConnectFake):
            return [r for r in self.fake.requests if r.method == "PUT" and r.path.endswith("/refund")]
        return [
            r for r in self.fake.requests
            if r.method == "POST" and isinstance(r.body, dict) and r.body.get("type") == "refund"
        ]

    def sales(self) -> list[RecordedRequest]:
        return [
            r for r in self.fake.requests
            if f"{r.method} {r.path}" == self.sale_match and isinstance(r.body, dict)
            and r.body.get("type", "payment") == "payment"
        ]


def side(gateways: Gateways, name: str) -> Side:
    if name == "cardconnect":
        return Side(name, gateways.cc, CardConnectGateway, cc_payment, CC_ACCOUNT, "PUT /cardconnect/rest/auth")
    return Side(name, gateways.pl, PayloadGateway, pl_payment, PL_ACCOUNT, "POST /transactions")


def unknown_charge(s: Side, amount: float = 40.0) -> tuple[dict[str, Any], dict[str, Any]]:
    """A charge the gateway made whose answer was lost: the LMS got 502 and never came back."""
    s.fake.set_fault("drop", match=s.sale_match)
    meta, body = new_meta(), s.payment(amount=amount)
    first = pay(body, meta)
    assert first.status == 502 and first.detail["statusCode"] == "outcome_unknown"
    assert s.charge(order_id(meta)) in s.fake.live_charges()
    return meta, body


def reconcile(after: float = DUE) -> list[Outcome]:
    return reconcile_unknown(runtime.service(), now=time.time() + after)


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "paymentgateway.audit"]


def scope_of(meta: dict[str, Any], account: int, operation: str = "payment") -> str:
    return f"{operation}:{account}:{meta['transactionId']}"


# -- a charge found is reversed: voided before settlement, refunded after ---------------------------


@BOTH_STORES
@pytest.mark.parametrize("gateway", ["cardconnect", "payload"])
def test_charge_settled_before_reconciliation_is_refunded_in_full_and_the_retry_is_told(
    gateways: Gateways, gateway: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    s = side(gateways, gateway)
    meta, body = unknown_charge(s, amount=40)
    order = order_id(meta)
    s.fake.settle_all()  # CardConnect's batch closes; Payload passes its daily cut-off
    charge_id = s.charge_id(order)

    outcomes = reconcile()
    assert [o.decision for o in outcomes] == [Decision.REFUNDED]
    (made,) = s.refunds()
    assert made.amount == Decimal("40.00")
    if isinstance(s.fake, CardConnectFake):
        assert made.original_retref == charge_id and made.orderid == reversal_order_id(order)
        assert s.refund_requests()[0].body == {"merchid": "496160873888", "retref": charge_id,
                                               "orderid": reversal_order_id(order)}
    else:
        assert made.ledger[0]["assoc_transaction_id"] == charge_id
        assert made.order_number == reversal_order_id(order)
        assert s.refund_requests()[0].body["ledger"] == [{"assoc_transaction_id": charge_id}]
    assert s.voids() == []  # no void was tried once the gateway said the charge had settled
    assert outcomes[0].transaction_id == (made.retref if isinstance(s.fake, CardConnectFake) else made.id)

    retried = pay(body, meta)
    assert retried.status == 400
    assert retried.detail["statusCode"] == "refunded_by_reconciliation"
    assert retried.detail["paymentTransactionId"] == charge_id
    assert outcomes[0].transaction_id in retried.detail["responseDetail"]
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert len(s.sales()) == 1  # the retry charged nobody

    line = audit_lines(caplog)[-2]  # the retry's own line comes last
    assert (line["level"], line["data"]["status"]) == ("AUDIT", "reconciled_refunded")
    assert line["data"]["orderId"] == order and line["transactionId"] == meta["transactionId"]
    assert reconcile(after=1200) == []  # settled for good


@BOTH_STORES
@pytest.mark.parametrize("gateway", ["cardconnect", "payload"])
def test_charge_not_yet_settled_is_voided_and_the_retry_is_told(gateways: Gateways, gateway: str) -> None:
    s = side(gateways, gateway)
    meta, body = unknown_charge(s)
    charge_id = s.charge_id(order_id(meta))

    assert [o.decision for o in reconcile()] == [Decision.VOIDED]
    assert s.fake.live_charges() == [] and s.refunds() == []
    assert len(s.voids()) == 1

    retried = pay(body, meta)
    assert retried.status == 400
    assert retried.detail["statusCode"] == "voided_by_reconciliation"
    assert retried.detail["paymentTransactionId"] == charge_id
    assert "not charged" in retried.detail["responseDetail"]


def test_simulator_charge_settled_before_reconciliation_is_refunded(simulator_service: PaymentService) -> None:
    meta, body = new_meta(), payment_body(account="4999006200620062", amount=15)
    assert pay(body, meta).status == 502
    order = order_id(meta)
    charge = LEDGER.by_order(SIMULATOR_ACCOUNT, order)
    assert charge is not None
    charge.settled = True

    outcomes = reconcile()
    assert [o.decision for o in outcomes] == [Decision.REFUNDED]
    assert charge.refunded == Decimal("15") and not charge.voided
    found = SimulatorGateway({}, _simulator_context()).find_refund(reversal_order_id(order))
    assert found is not None and found.transaction_id == outcomes[0].transaction_id
    assert pay(body, meta).detail["statusCode"] == "refunded_by_reconciliation"


def _simulator_context() -> Any:
    from gateways.base import GatewayContext

    return GatewayContext(SIMULATOR_ACCOUNT, "")


# -- a crash halfway resumes without acting twice ----------------------------------------------------


def crash_around(monkeypatch: pytest.MonkeyPatch, cls: type[Any], when: str) -> None:
    """The process dies just before, or just after, the reversal's gateway call (its void or refund)."""
    for name in ("void", "refund"):
        monkeypatch.setattr(cls, name, _dying(getattr(cls, name), when))


def _dying(original: Any, when: str) -> Any:
    def dying(gateway: Any, *args: Any) -> Any:
        if when == "before":
            raise Crash
        original(gateway, *args)
        raise Crash

    return dying


@BOTH_STORES
@pytest.mark.parametrize("gateway", ["cardconnect", "payload"])
@pytest.mark.parametrize(("settled", "when"), [(True, "before"), (True, "after"), (False, "after")])
def test_crash_after_the_step_is_recorded_resumes_without_a_second_reversal(
    gateways: Gateways, gateway: str, settled: bool, when: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = side(gateways, gateway)
    meta, body = unknown_charge(s)
    order = order_id(meta)
    if settled:
        s.fake.settle_all()
    store = gateways.service.idempotency
    crash_around(monkeypatch, s.gateway_class, when)
    with pytest.raises(Crash):
        reconcile()
    monkeypatch.undo()

    stuck = store.get(scope_of(meta, s.account))
    assert stuck is not None and stuck.state is State.IN_PROGRESS
    assert stuck.reconciliation["step"] == "reversal_requested"
    assert stuck.reconciliation["reversalOrderId"] == reversal_order_id(order)
    assert stuck.reconciliation["paymentId"] == s.charge_id(order)
    reversed_before = len(s.refunds()) + len(s.voids())
    assert reversed_before == (1 if when == "after" else 0)

    # The dead run's lease runs out. The monolith's retry must not take over: only the
    # reconciler knows what it did.
    aged = store.transition(stuck, state=State.IN_PROGRESS, updated_at=time.time() - 3600)
    assert aged is not None
    requests_before = len(s.fake.requests)
    busy = pay(body, meta)
    assert (busy.status, busy.detail["statusCode"]) == (409, "request_in_progress")
    assert len(s.fake.requests) == requests_before

    outcomes = reconcile()
    expected = Decision.REFUNDED if settled else Decision.VOIDED
    assert [o.decision for o in outcomes] == [expected]
    assert len(s.refunds()) == (1 if settled else 0)
    assert len(s.voids()) == (0 if settled else 1)
    assert len(s.refund_requests()) == (1 if settled else 0)
    answer = pay(body, meta)
    assert answer.detail["statusCode"] == ("refunded_by_reconciliation" if settled else "voided_by_reconciliation")


# -- nothing loops forever ---------------------------------------------------------------------------


@BOTH_STORES
def test_record_that_cannot_be_settled_moves_to_needs_attention_after_the_set_attempts(
    gateways: Gateways, caplog: pytest.LogCaptureFixture
) -> None:
    settings = gateways.service.settings.model_copy(update=dict(reconcile_max_attempts=3))
    install_service(settings, idempotency=gateways.service.idempotency)
    caplog.set_level(logging.INFO)
    s = side(gateways, "cardconnect")
    meta, body = unknown_charge(s)
    order = order_id(meta)
    s.fake.set_fault("http500", count=None, match="GET /cardconnect/rest/inquireByOrderid/")

    assert [o.decision for o in reconcile()] == [Decision.STILL_UNKNOWN]
    assert [o.decision for o in reconcile()] == [Decision.STILL_UNKNOWN]
    assert [a for a in audit_lines(caplog) if str(a["data"]["status"]).startswith("reconcile")] == []
    outcomes = reconcile()
    assert [o.decision for o in outcomes] == [Decision.NEEDS_ATTENTION]

    line = audit_lines(caplog)[-1]
    assert line["level"] == "ERROR"
    assert line["data"]["status"] == "reconcile_needs_attention"
    assert line["data"]["merchantAccountId"] == CC_ACCOUNT
    assert line["data"]["orderId"] == order
    assert line["data"]["attempts"] == 3
    assert "OutcomeUnknown" in line["data"]["reason"] and "HTTP 500" in line["data"]["reason"]

    record = gateways.service.idempotency.get(scope_of(meta, CC_ACCOUNT))
    assert record is not None and record.state is State.NEEDS_ATTENTION
    assert record.reconciliation["attempts"] == 3 and record.reconciliation["reason"] == line["data"]["reason"]
    lookups = len(s.fake.requests)
    assert reconcile(after=7200) == []  # terminal: never tried again
    assert len(s.fake.requests) == lookups

    retried = pay(body, meta)
    assert (retried.status, retried.detail["statusCode"]) == (502, "needs_attention")
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert len(s.fake.requests) == lookups  # the retry neither looked up nor charged
    assert len(s.fake.live_charges()) == 1  # still there for the operator to settle


def test_gateway_that_cannot_look_up_goes_to_needs_attention_at_once(
    simulator_service: PaymentService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cannot(gateway: SimulatorGateway, order: str) -> Any:
        raise NotImplementedError("Simulator cannot look up payments by order id")

    meta = new_meta()
    assert pay(payment_body(account="4999006200620062"), meta).status == 502
    monkeypatch.setattr(SimulatorGateway, "find_payment", cannot)
    (outcome,) = reconcile()
    assert outcome.decision is Decision.NEEDS_ATTENTION
    assert outcome.reason == "Simulator cannot look up payments by order id"


@BOTH_STORES
def test_one_poisoned_record_never_stops_the_others_and_the_purge_runs(
    gateways: Gateways, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = gateways.service.idempotency
    now = time.time()
    # A record without what reconciliation needs, listed first on both stores (lowest account).
    broken = Record(f"payment:1000:{uuid.uuid4()}", "fp", State.UNKNOWN, now - 700, now - 700,
                    context={"operation": "payment", "merchantAccountId": 1000})
    assert store.claim(broken)[0]
    # A finished record past the retention.
    old = Record(f"payment:1000:{uuid.uuid4()}", "fp", State.COMPLETED, now - 50 * 3600, now - 50 * 3600,
                 status=200, body="{}", context={"operation": "payment"})
    assert store.claim(old)[0]

    cc, pl = side(gateways, "cardconnect"), side(gateways, "payload")
    poisoned_meta, _ = unknown_charge(cc)
    healthy_cc_meta, _ = unknown_charge(cc)
    healthy_pl_meta, _ = unknown_charge(pl)
    buggy_meta, _ = unknown_charge(pl)
    store_fails_meta, _ = unknown_charge(cc)
    poisoned_charge = cc.charge_id(order_id(poisoned_meta))

    # A bug (or anything unforeseen) raised while reversing one Payload charge.
    buggy_charge = pl.charge_id(order_id(buggy_meta))
    real_status = PayloadGateway.payment_status

    def buggy(gateway: PayloadGateway, payment_id: str) -> Any:
        if payment_id == buggy_charge:
            raise TypeError("unsupported operand type(s)")
        return real_status(gateway, payment_id)

    monkeypatch.setattr(PayloadGateway, "payment_status", buggy)
    # The store fails for one record, at its very first write.
    real_transition = store.transition

    def flaky(current: Record, **changes: Any) -> Record | None:
        if current.scope == scope_of(store_fails_meta, CC_ACCOUNT):
            raise OSError("storage hiccup")
        return real_transition(current, **changes)

    monkeypatch.setattr(store, "transition", flaky)

    # CardConnect answers the inquiry of one charge with a record lacking its retref.
    real_handle = cc.fake.handle

    def malformed(request: RecordedRequest) -> Reply:
        if request.method == "GET" and request.path.startswith(f"/cardconnect/rest/inquire/{poisoned_charge}/"):
            return Reply(200, {"respstat": "A", "setlstat": "Queued for Capture", "voidable": "Y", "amount": "40.00"})
        return real_handle(request)

    monkeypatch.setattr(cc.fake, "handle", malformed)
    caplog.set_level(logging.INFO)
    outcomes = {o.scope: o for o in reconcile()}

    assert outcomes[scope_of(healthy_cc_meta, CC_ACCOUNT)].decision is Decision.VOIDED
    assert outcomes[scope_of(healthy_pl_meta, PL_ACCOUNT)].decision is Decision.VOIDED
    poisoned = outcomes[scope_of(poisoned_meta, CC_ACCOUNT)]
    assert poisoned.decision is Decision.STILL_UNKNOWN
    # A malformed gateway answer is an unknown outcome of its own now, no longer a KeyError.
    assert poisoned.reason == "OutcomeUnknown (unreadable_response): CardConnect answered without a usable retref"
    bug = outcomes[scope_of(buggy_meta, PL_ACCOUNT)]
    assert bug.decision is Decision.STILL_UNKNOWN
    assert bug.reason is not None and bug.reason.startswith("unexpected TypeError at test_reconcile.py:")
    assert "unsupported operand" not in bug.reason  # an unforeseen exception's text is never logged
    assert scope_of(store_fails_meta, CC_ACCOUNT) not in outcomes
    failed_scope = scope_of(store_fails_meta, CC_ACCOUNT)
    assert f"reconciliation of {failed_scope} failed in the store: unexpected OSError" in caplog.text
    assert outcomes[broken.scope].decision is Decision.NEEDS_ATTENTION
    assert sorted(t.orderid for t in cc.fake.live_charges()) == sorted(
        order_id(meta) for meta in (poisoned_meta, store_fails_meta)
    )
    assert [t.order_number for t in pl.fake.live_charges()] == [order_id(buggy_meta)]
    assert store.get(old.scope) is None  # purged after all
    for meta, account in ((poisoned_meta, CC_ACCOUNT), (buggy_meta, PL_ACCOUNT)):
        kept = store.get(scope_of(meta, account))
        assert kept is not None and kept.state is State.UNKNOWN and kept.reconciliation["attempts"] == 1

    monkeypatch.undo()
    assert sorted(o.decision for o in reconcile()) == [Decision.VOIDED] * 3  # the next run settles them
    assert cc.fake.live_charges() == [] and pl.fake.live_charges() == []


@BOTH_STORES
def test_unreadable_lookup_answer_is_not_taken_for_nothing_charged(
    gateways: Gateways, monkeypatch: pytest.MonkeyPatch
) -> None:
    cc, pl = side(gateways, "cardconnect"), side(gateways, "payload")
    cc_meta, cc_body = unknown_charge(cc)
    pl_meta, _ = unknown_charge(pl)
    cc_handle, pl_handle = cc.fake.handle, pl.fake.handle
    monkeypatch.setattr(cc.fake, "handle", lambda r: Reply(200, "<html>maintenance</html>")
                        if "/inquireByOrderid/" in r.path else cc_handle(r))
    monkeypatch.setattr(pl.fake, "handle", lambda r: Reply(200, {"object": "list", "values": "none"})
                        if r.method == "GET" and r.path == "/transactions" else pl_handle(r))

    outcomes = reconcile()
    assert sorted(o.decision for o in outcomes) == [Decision.STILL_UNKNOWN] * 2
    assert all("unreadable_response" in (o.reason or "") for o in outcomes)
    for meta, account in ((cc_meta, CC_ACCOUNT), (pl_meta, PL_ACCOUNT)):
        record = gateways.service.idempotency.get(scope_of(meta, account))
        assert record is not None and record.state is State.UNKNOWN  # not released: a retry must not charge
    # The monolith's own retry reads the same answer the same way: unknown again, never a new charge.
    retried = pay(cc_body, cc_meta)
    assert (retried.status, retried.detail["statusCode"]) == (502, "outcome_unknown")
    assert len(cc.fake.live_charges()) == len(pl.fake.live_charges()) == 1


# -- refunds left unknown ----------------------------------------------------------------------------


def settled_payment(s: Side, amount: float = 60.0) -> str:
    paid = pay(s.payment(amount=amount))
    assert paid.status == 200
    s.fake.settle_all()
    return str(paid.detail["paymentTransactionId"])


def refund_request(s: Side, payment_id: str, **changes: Any) -> dict[str, Any]:
    gateway_type = 2 if s.name == "cardconnect" else 1
    return refund_body(payment_id, gatewayTypeId=gateway_type, merchantAccountId=s.account, **changes)


def refund_match(s: Side) -> str:
    return "PUT /cardconnect/rest/refund" if s.name == "cardconnect" else "POST /transactions"


@BOTH_STORES
@pytest.mark.parametrize("gateway", ["cardconnect", "payload"])
def test_unknown_refund_found_by_its_order_id_is_completed(
    gateways: Gateways, gateway: str, caplog: pytest.LogCaptureFixture
) -> None:
    s = side(gateways, gateway)
    body = refund_request(s, settled_payment(s), amount=25)
    s.fake.set_fault("slow", match=refund_match(s))
    meta = new_meta()
    assert refund(body, meta).detail["statusCode"] == "outcome_unknown"
    (made,) = s.refunds()

    caplog.set_level(logging.INFO)
    outcomes = reconcile()
    made_id = made.retref if isinstance(s.fake, CardConnectFake) else made.id
    assert [(o.decision, o.transaction_id) for o in outcomes] == [(Decision.REFUND_FOUND, made_id)]
    assert audit_lines(caplog)[-1]["data"]["status"] == "reconciled_refund_found"

    retried = refund(body, meta)
    assert retried.status == 200
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert retried.detail["paymentTransactionId"] == made_id
    assert f"reconciliation found the refund at the gateway (refund {made_id})" in retried.detail["responseDetail"]
    assert len(s.refunds()) == 1 and len(s.refund_requests()) == 1


@BOTH_STORES
@pytest.mark.parametrize("gateway", ["cardconnect", "payload"])
def test_unknown_refund_never_made_is_released_and_the_retry_refunds_once(gateways: Gateways, gateway: str) -> None:
    s = side(gateways, gateway)
    body = refund_request(s, settled_payment(s), amount=25)
    s.fake.set_fault("drop", carry_out=False, match=refund_match(s))
    meta = new_meta()
    assert refund(body, meta).detail["statusCode"] == "outcome_unknown"
    assert s.refunds() == []

    assert [o.decision for o in reconcile()] == [Decision.NOTHING_REFUNDED]
    assert gateways.service.idempotency.get(scope_of(meta, s.account, "refund")) is None

    retried = refund(body, meta)
    assert retried.status == 200 and retried.detail["responseDetail"] == "Refund approved"
    assert len(s.refunds()) == 1


# -- every record is purged after the retention, whatever its state ----------------------------------


@BOTH_STORES
def test_purge_removes_every_state_past_retention_and_keeps_the_rest(gateways: Gateways) -> None:
    store: IdempotencyStore = gateways.service.idempotency
    now = time.time()
    retention = gateways.service.settings.idempotency_retention_hours * 3600

    def add(state: State, age: float) -> Record:
        record = Record(f"payment:1000:{uuid.uuid4()}", "fp", state, now - age, now - age, status=502, body="{}",
                        context={"operation": "payment"}, reconciliation={"attempts": 12, "reason": "x"})
        assert store.claim(record)[0]
        return record

    old = [add(state, retention + 60) for state in State]
    fresh = [add(state, 60) for state in State]
    assert store.purge(now - retention) == len(State)
    assert all(store.get(r.scope) is None for r in old)
    assert all(store.get(r.scope) is not None for r in fresh)


@BOTH_STORES
def test_reconciler_purges_a_needs_attention_record_after_retention(gateways: Gateways) -> None:
    store = gateways.service.idempotency
    now = time.time()
    record = Record(f"payment:1000:{uuid.uuid4()}", "fp", State.NEEDS_ATTENTION, now, now,
                    status=502, body="{}", context={"operation": "payment"})
    assert store.claim(record)[0]
    assert reconcile(after=47 * 3600) == [] and store.get(record.scope) is not None
    assert reconcile(after=49 * 3600) == [] and store.get(record.scope) is None


@pytest.fixture
def listing_fails(simulator_service: PaymentService, monkeypatch: pytest.MonkeyPatch) -> Iterator[IdempotencyStore]:
    store = simulator_service.idempotency

    def broken(state: State, updated_before: float) -> Iterator[Record]:
        raise OSError("storage unreachable")

    monkeypatch.setattr(store, "in_state", broken)
    yield store


def test_purge_runs_even_when_the_listing_fails(listing_fails: IdempotencyStore) -> None:
    now = time.time()
    old = Record(f"payment:1000:{uuid.uuid4()}", "fp", State.UNKNOWN, now - 50 * 3600, now - 50 * 3600)
    assert listing_fails.claim(old)[0]
    assert reconcile() == []
    assert listing_fails.get(old.scope) is None


def test_max_attempts_setting() -> None:
    assert Settings.from_env({}).reconcile_max_attempts == 12
    assert Settings.from_env({"RECONCILE_MAX_ATTEMPTS": "3"}).reconcile_max_attempts == 3
    for bad in ("0", "-2", "two", "2.5"):
        with pytest.raises(SettingsError, match="RECONCILE_MAX_ATTEMPTS"):
            Settings.from_env({"RECONCILE_MAX_ATTEMPTS": bad})


def test_a_run_stops_taking_records_in_time_to_purge(simulator_service: PaymentService,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(3):
        assert pay(payment_body(account="4999006200620062")).status == 502
    # 100 s of function timeout, 30 s kept for the purge, records that take 50 s each: records are
    # taken during the first 70 s only, so two are settled and the third waits for the next run.
    settings = simulator_service.settings.model_copy(
        update=dict(function_timeout_seconds=100.0, gateway_timeout_seconds=0.0, gateway_connect_timeout_seconds=0.0)
    )
    install_service(settings, idempotency=simulator_service.idempotency)
    clock = iter(range(0, 1000, 50))
    monkeypatch.setattr("shared.reconcile.time.monotonic", lambda: float(next(clock)))
    old = Record(f"payment:1000:{uuid.uuid4()}", "fp", State.COMPLETED, 0.0, 0.0, status=200, body="{}")
    assert simulator_service.idempotency.claim(old)[0]
    assert [o.decision for o in reconcile()] == [Decision.VOIDED] * 2
    assert simulator_service.idempotency.get(old.scope) is None
    monkeypatch.undo()
    assert [o.decision for o in reconcile()] == [Decision.VOIDED]


def test_an_sqlite_file_from_before_the_reconciler_kept_progress_is_upgraded(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE idempotency (scope TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, state TEXT NOT NULL,"
            " created_at REAL NOT NULL, updated_at REAL NOT NULL, status INTEGER, body TEXT,"
            " context TEXT NOT NULL, version INTEGER NOT NULL)"
        )
        db.execute("INSERT INTO idempotency VALUES ('payment:1:k', 'fp', 'unknown', 1, 1, 502, NULL, '{}', 1)")
    store = SqliteIdempotencyStore(path)
    old = store.get("payment:1:k")
    assert old is not None and old.reconciliation == {}
    moved = store.transition(old, state=State.NEEDS_ATTENTION, reconciliation={"attempts": 12})
    assert moved is not None
    assert store.get("payment:1:k") == moved


@BOTH_STORES
@pytest.mark.parametrize("gateway", ["cardconnect", "payload"])
def test_batch_closing_between_the_lookup_and_the_void_is_refunded_by_the_next_run(
    gateways: Gateways, gateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = side(gateways, gateway)
    meta, body = unknown_charge(s)
    charge_id = s.charge_id(order_id(meta))
    real_handle = s.fake.handle

    def settle_after_inquiry(request: RecordedRequest) -> Reply:
        reply = real_handle(request)
        if request.method == "GET" and charge_id in request.path:
            s.fake.settle_all()  # the batch closes (the cut-off passes) right after the gateway said "voidable"
        return reply

    monkeypatch.setattr(s.fake, "handle", settle_after_inquiry)
    (first,) = reconcile()
    assert first.decision is Decision.STILL_UNKNOWN
    (refused,) = s.voids()
    if isinstance(s.fake, CardConnectFake):
        assert refused.status == 200 and first.reason is not None and "NotRefundable (27): Txn Batched" in first.reason
    else:
        assert refused.status == 400 and first.reason is not None and "already settled" in first.reason
    assert pay(body, meta).detail["statusCode"] == "request_in_progress"  # the reversal is under way

    monkeypatch.undo()
    assert [o.decision for o in reconcile()] == [Decision.REFUNDED]
    assert len(s.refunds()) == 1 and len(s.voids()) == 1
    assert pay(body, meta).detail["statusCode"] == "refunded_by_reconciliation"
