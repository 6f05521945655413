"""Telemetry is beside the audit line, not instead of it (issue 15): with the OpenTelemetry SDK
recording, every call still writes exactly the audit line it writes with telemetry off."""

from __future__ import annotations

from typing import Any

from shared import runtime
from shared.telemetry import OFF
from tests.conftest import LeakGuard
from tests.support import audit_lines, pay
from tests.test_telemetry import CC_SALE, DECLINED_CARD, World, cc_payment
from tests.test_telemetry import world as world

# Each call's own identifiers: the caller's transactionId and the gateway's new transaction id.
PER_CALL = ("transactionId", "paymentTransactionId")


def sale_decline_unknown(telemetry_world: World) -> None:
    assert pay(cc_payment(amount=19.99)).status == 200
    assert pay(cc_payment(account=DECLINED_CARD)).status == 400
    telemetry_world.cc.set_fault("drop", match=CC_SALE)
    assert pay(cc_payment(amount=40)).status == 502
    telemetry_world.cc.clear_faults()


def without_per_call_ids(line: dict[str, Any]) -> dict[str, Any]:
    data = {key: value for key, value in line["data"].items() if key not in PER_CALL}
    return {**{key: value for key, value in line.items() if key not in PER_CALL}, "data": data}


def test_the_audit_lines_are_the_same_with_telemetry_on_and_off(world: World, leak_guard: LeakGuard) -> None:
    sale_decline_unknown(world)
    on = audit_lines(leak_guard)
    assert world.exported.named("payment"), "telemetry recorded the calls"

    runtime.install(runtime.build_service(world.service.settings, telemetry=OFF))
    sale_decline_unknown(world)
    off = audit_lines(leak_guard)[len(on):]

    assert [line["level"] for line in on] == ["AUDIT", "ERROR", "ERROR"]
    assert [line["data"]["status"] for line in on] == [200, 400, 502]
    assert [without_per_call_ids(line) for line in on] == [without_per_call_ids(line) for line in off]
    assert [sorted(line["data"]) for line in on] == [sorted(line["data"]) for line in off]
