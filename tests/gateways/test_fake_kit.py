"""The fake kit's ledger and faults (`tests/fakes/kit.py`): the rules every fake built on it inherits."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fakes import kit
from tests.fakes.kit import KitFake, Ledger, Refused
from tests.fakes.payload import PayloadFake
from tests.gateways.helpers import PL_KEY


def paid(ledger: Ledger, amount: str = "30.00", status: str = kit.APPROVED, order: str = "ord-1") -> kit.Txn:
    return ledger.pay("m1", Decimal(amount), "USD", order, card="4242424242424242", status=status)


def refused(reason: str) -> Any:
    return pytest.raises(Refused, match=f"^{reason}$")


def test_refunds_from_many_threads_never_exceed_the_payment() -> None:
    ledger = Ledger()
    payment = paid(ledger)
    ledger.settle(payment.id)
    outcomes: list[str] = []

    def refund() -> None:
        try:
            ledger.refund("m1", payment.id, Decimal("7.00"), "ord-r")
            outcomes.append("refunded")
        except Refused as refusal:
            outcomes.append(refusal.reason)

    threads = [threading.Thread(target=refund) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["amount"] * 16 + ["refunded"] * 4
    [entry] = [t for t in ledger if t.id == payment.id]
    assert (entry.refunded, entry.left, len(entry.refunds)) == (Decimal("28.00"), Decimal("2.00"), 4)


def test_void_only_before_settlement_and_in_part_only_while_held() -> None:
    ledger = Ledger()
    sale, held = paid(ledger), paid(ledger, status=kit.AUTHORIZED, order="ord-2")
    with refused("partial"):
        ledger.void("m1", sale.id, Decimal("10.00"))
    assert ledger.void("m1", held.id, Decimal("10.00"))[0].amount == Decimal("20.00")
    with refused("not_found"):
        ledger.void("m2", sale.id)  # another merchant's payment is not found, never voided
    ledger.settle_all()
    with refused("settled"):
        ledger.void("m1", sale.id)
    assert ledger.get(held.id) is not None and not ledger.get(held.id).settled  # type: ignore[union-attr]
    assert ledger.void("m1", held.id)[1] == Decimal("20.00")
    with refused("voided"):
        ledger.void("m1", held.id)


def test_refunds_need_a_settled_live_payment_and_a_voided_refund_gives_its_amount_back() -> None:
    ledger = Ledger()
    payment, declined = paid(ledger), paid(ledger, status=kit.DECLINED, order="ord-2")
    with refused("not_settled"):
        ledger.refund("m1", payment.id, None, "r1")
    ledger.settle_all()
    with refused("declined"):
        ledger.refund("m1", declined.id, None, "r1")
    first = ledger.refund("m1", payment.id, Decimal("10.00"), "r1")
    with refused("not_a_payment"):
        ledger.refund("m1", first.id, None, "r2")
    with refused("amount"):
        ledger.refund("m1", payment.id, Decimal("20.01"), "r2")
    ledger.void("m1", first.id)
    assert ledger.refund("m1", payment.id, None, "r3").amount == Decimal("30.00")
    with refused("amount"):
        ledger.refund("m1", payment.id, None, "r4")


def test_partial_approvals_duplicates_and_settle_hooks() -> None:
    ledger = Ledger()
    settled: list[str] = []
    ledger.on_settle.append(lambda txn: settled.append(txn.id))
    partial = ledger.pay("m1", Decimal("25.00"), "USD", "ord-1", approved=Decimal("10.00"))
    again = paid(ledger, order="ord-1")
    paid(ledger, status=kit.DECLINED, order="ord-3")
    paid(ledger, order="ord-3")

    assert (partial.amount, partial.requested) == (Decimal("10.00"), Decimal("25.00"))
    assert ledger.charged_twice() == {"ord-1": 2} and ledger.charged_twice("m2") == {}
    assert [t.id for t in ledger.by_order("m1", "ord-1")] == [partial.id, again.id]
    ledger.settle_all()
    assert settled == [partial.id, again.id, ledger.by_order("m1", "ord-3")[1].id]


def test_pending_payments_finish_once() -> None:
    ledger = Ledger()
    pending = paid(ledger, status=kit.PENDING)
    assert pending.live and ledger.finish(pending.id, approved=False).status == kit.DECLINED
    with pytest.raises(ValueError):
        ledger.finish(pending.id, approved=True)
    assert ledger.live_payments() == []


def test_rate_limit_fault_refuses_before_acting_with_retry_after(pl_fake: PayloadFake) -> None:
    pl_fake.set_fault("http429", match="POST /transactions$")
    sale = {"type": "payment", "amount": "5.00", "payment_method": {"card": {"card_number": "4242424242424242",
                                                                             "expiry": "12/28"}}}
    limited = requests.post(f"{pl_fake.base_url}/transactions", json=sale, auth=(PL_KEY, ""), timeout=5)
    served = requests.post(f"{pl_fake.base_url}/transactions", json=sale, auth=(PL_KEY, ""), timeout=5)

    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "1")
    assert limited.json()["error_type"] == "TooManyRequests"
    assert served.status_code == 200 and len(pl_fake.live_charges()) == 1
    assert [r.fault for r in pl_fake.requests] == ["http429", None]


def test_fakes_share_one_lock_with_their_ledger() -> None:
    fake = KitFake()
    assert fake.lock is fake.ledger.lock
    assert fake.new_id() != KitFake().new_id()


def test_a_fake_for_a_gateway_like_payload_stays_small() -> None:
    """The kit's promise (issue 12): a REST gateway's stateful fake needs under 150 lines."""
    from tests.fakes import payload

    assert len(Path(payload.__file__).read_text(encoding="utf-8").splitlines()) < 150
