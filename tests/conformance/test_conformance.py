"""The conformance suite: every registered gateway, through the service, against its own fake.

Each gateway in `gateways.registry.gateway_types()` runs the same behaviour tests: the monolith's
requests go through `ProcessPayment` / `ProcessRefund` `main(req)` for a merchant account whose URL
setting (`url_setting`) points at the gateway's fake, and each test asserts the exact envelope and
that the fake's ledger agrees (what was charged, voided and refunded; nothing charged twice). A
gateway is picked up by being registered; its fake module `tests/fakes/<gateway module>.py` must
export `PROFILE` (`tests/fakes/kit.py` says what it holds), or `test_every_gateway_has_a_profile`
fails for it. Select one gateway's cases with `-k <gateway module>`.

The simulator (type 900) is not in the suite. It is an in-process stand-in with no wire, no URL and
no credentials: five of the cases (credentials rejected, rate limited, 5xx, a dropped answer, the
scrub of a recorded transcript) have nothing in it to exercise, and a profile faking them would test
the fake, not the gateway. Its ledger behaviour is covered by `tests/test_flow_simulator.py`. The
suite takes every gateway that declares a URL setting, so a new wire gateway cannot be left out.
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateways.base import Gateway, expiry_forms
from gateways.registry import gateway_types
from shared import runtime
from shared.contract import CURRENCIES
from shared.flow import Operation, order_id_for
from shared.reconcile import REFUNDED_DETAIL, Decision, reconcile_unknown
from shared.settings import Settings
from tests.conftest import LeakGuard
from tests.fakes import kit
from tests.fakes.kit import KitFake, Profile, TestCard, Txn
from tests.support import Called, install_service, new_meta, pay, payment_body, refund, refund_body, write_credentials
from tests.timing import CLIENT_READ_SECONDS

ACCOUNT, REFUSED_ACCOUNT = 7001, 7002
"""The merchant account on the fake, and the same merchant with credentials the gateway refuses."""
UNKNOWN_DETAIL = (
    "The gateway may have carried out this request but its answer was lost, so the outcome is not known. "
    "Retry with the same transactionId (or Idempotency-Key) to learn it; do not start a new payment, which "
    "could charge the card twice."
)
RECONCILED_DETAIL = (
    "The earlier attempt's outcome was unknown and nobody retried it in time, so reconciliation voided the "
    "charge before it settled: the card was not charged. Start a new payment if one is still wanted."
)


def wire_gateways() -> list[type[Gateway]]:
    return [cls for _, cls in sorted(gateway_types().items()) if getattr(cls, "url_setting", "")]


def module_name(cls: type[Gateway]) -> str:
    return cls.__module__.rsplit(".", 1)[-1]


GATEWAYS = pytest.mark.parametrize("gateway", wire_gateways(), ids=module_name)


def profile_for(cls: type[Gateway]) -> Profile:
    name = f"tests.fakes.{module_name(cls)}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError:
        pytest.fail(f"{cls.__name__} is registered but has no fake: write {name.replace('.', '/')}.py")
    profile = getattr(module, "PROFILE", None)
    if not isinstance(profile, Profile):
        pytest.fail(f"{name} must export PROFILE, a tests.fakes.kit.Profile (see tests/fakes/kit.py)")
    return profile


@dataclass
class World:
    """One gateway served through the functions, its fake, and what went over the wire."""

    cls: type[Gateway]
    profile: Profile
    fake: KitFake
    service: Any
    transcript: list[str] = field(default_factory=list)

    def payment(self, card: TestCard | None = None, account: int = ACCOUNT, **changes: Any) -> dict[str, Any]:
        card = card or self.profile.approving
        currency = {code: number for number, code in CURRENCIES.items()}[self.profile.currency]
        fields: dict[str, Any] = {"gatewayTypeId": self.cls.type_id, "gatewayTypeName": self.cls.name,
                                  "merchantAccountId": account, "account": card.number, "expDate": card.exp,
                                  "cvv2": card.cvv, "amount": float(card.amount), "currencyType": currency}
        if card.token is not None:  # a token-only gateway: the token instead of the card
            kind, value = card.token
            fields.update(account=None, expDate=None, cvv2=None, token={"type": kind, "value": value})
        return payment_body(**{**fields, **changes})

    def refund(self, payment_id: str, amount: Decimal | None = None, meta: dict[str, Any] | None = None) -> Called:
        body = refund_body(payment_id, gatewayTypeId=self.cls.type_id, gatewayTypeName=self.cls.name,
                           merchantAccountId=ACCOUNT, amount=None if amount is None else float(amount))
        return refund(body, meta)

    def paid(self) -> Txn:
        """Pay with the approving card and return the ledger's payment."""
        answer = pay(self.payment())
        assert answer.status == 200, answer.body
        return self.entry(answer.detail["paymentTransactionId"])

    def entry(self, txn_id: str) -> Txn:
        [found] = [txn for txn in self.fake.ledger if txn.id == txn_id]
        return found

    def payments(self) -> list[Txn]:
        return [txn for txn in self.fake.ledger if txn.kind == "payment"]

    def live(self) -> list[Txn]:
        return self.fake.ledger.live_payments(self.profile.merchant or None)

    def refunds(self) -> list[Txn]:
        return [txn for txn in self.fake.ledger if txn.kind == "refund" and txn.status == kit.APPROVED]

    def sales(self) -> list[Any]:
        return [r for r in self.fake.requests if re.search(self.profile.sale, self.fake.request_line(r))]

    def settle(self, payment_id: str) -> None:
        self.profile.settle(self.fake, payment_id)

    def approved(self, detail: str, transaction_id: str, fields: Any = None) -> dict[str, Any]:
        """The envelope's detail of an approval."""
        return {"success": True, **(fields or self.profile.approved), "gatewayHttpStatusCode": 200,
                "responseDetail": detail, "paymentTransactionId": transaction_id, "merchantAccountId": ACCOUNT,
                "errorCode": None}

    def failed(self, status_code: str, message: str, detail: str, error_code: str, **more: Any) -> dict[str, Any]:
        return {"success": False, "statusCode": status_code, "gatewayHttpStatusCode": None,
                "responseMessage": message, "responseDetail": detail, "paymentTransactionId": None,
                "merchantAccountId": ACCOUNT, "errorCode": error_code, **more}

    def no_charge_twice(self) -> None:
        assert self.fake.ledger.charged_twice() == {}


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path, leak_guard: LeakGuard) -> Iterator[World]:
    cls: type[Gateway] = request.param
    profile = profile_for(cls)
    card = profile.approving
    leak_guard.watch(card.cvv, card.exp, profile.declining.cvv)
    leak_guard.watch(*(test.token[1] for test in (card, profile.declining) if test.token is not None))
    with profile.start() as fake:
        env = {
            cls.url_setting: fake.base_url,
            "LOCAL_CREDENTIALS_FILE": str(tmp_path / "credentials.json"),
            "IDEMPOTENCY_SQLITE_PATH": str(tmp_path / "idempotency.sqlite"),
            "GATEWAY_CONNECT_TIMEOUT_SECONDS": "1",
            "GATEWAY_TIMEOUT_SECONDS": str(CLIENT_READ_SECONDS),
        }
        settings = Settings.from_env(env)
        write_credentials(settings.local_credentials_file, {
            ACCOUNT: {"gatewayTypeId": cls.type_id, "currency": profile.currency,
                      "credentials": dict(profile.credentials)},
            REFUSED_ACCOUNT: {"gatewayTypeId": cls.type_id, "currency": profile.currency,
                              "credentials": dict(profile.wrong_credentials)},
        })
        service = install_service(settings)
        world = World(cls, profile, fake, service)
        service.factory._http.transcript = world.transcript.append
        yield world
        runtime.install(None)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "world" in metafunc.fixturenames:
        metafunc.parametrize("world", wire_gateways(), ids=module_name, indirect=True)


@GATEWAYS
def test_every_gateway_has_a_profile(gateway: type[Gateway]) -> None:
    profile = profile_for(gateway)
    assert isinstance(profile.start(), KitFake), "PROFILE.start must make a fake on the kit"
    assert profile.approving != profile.declining


def test_only_in_process_gateways_are_left_out() -> None:
    """A gateway outside the suite has no URL and no credentials: nothing of it travels a wire."""
    left_out = [cls for cls in gateway_types().values() if cls not in wire_gateways()]
    assert all(not cls.credential_fields for cls in left_out), left_out


def test_approve(world: World) -> None:
    meta = new_meta()
    answer = pay(world.payment(), meta)

    [charge] = world.live()
    assert answer.status == 200, answer.body
    assert answer.detail == world.approved("Payment approved", charge.id)
    card = world.profile.approving
    assert (charge.amount, charge.requested, charge.currency) == (card.amount, card.amount, world.profile.currency)
    assert charge.order_id == order_id_for(Operation.PAYMENT, meta["transactionId"])
    assert len(world.sales()) == 1, "the profile's `sale` must match the sale request exactly once"


def test_decline(world: World) -> None:
    answer = pay(world.payment(world.profile.declining))

    [declined] = world.payments()
    assert answer.status == 400, answer.body
    declined_fields = {"gatewayHttpStatusCode": 200, **world.profile.declined}
    assert answer.detail == {"success": False, **declined_fields,
                             "responseDetail": f"Declined: {world.profile.declined['responseMessage']}",
                             "paymentTransactionId": declined.id, "merchantAccountId": ACCOUNT}
    assert declined.status == kit.DECLINED and world.live() == []


def test_dropped_answer_is_unknown_then_settled_by_the_retry(world: World) -> None:
    world.fake.set_fault("drop", match=world.profile.sale)
    meta = new_meta()
    first = pay(world.payment(), meta)

    [sale] = world.sales()
    [charge] = world.live()  # carried out: the card was charged though nobody heard
    assert first.status == 502, first.body
    message = (f"{sale.method} to 127.0.0.1:{world.fake.port}: connection failed after sending (ConnectionError); "
               "the request may have been carried out")
    assert first.detail == world.failed("outcome_unknown", message, UNKNOWN_DETAIL, "processing_error")

    retried = pay(world.payment(), meta)
    assert retried.status == 200, retried.body
    assert retried.detail == world.approved("Payment approved", charge.id)
    assert len(world.sales()) == 1 and len(world.live()) == 1, "the retry found the charge by order id"
    world.no_charge_twice()


def test_dropped_request_is_unknown_then_charged_once_by_the_retry(world: World) -> None:
    world.fake.set_fault("drop", match=world.profile.sale, carry_out=False)
    meta = new_meta()
    first = pay(world.payment(), meta)
    assert (first.status, first.detail["statusCode"]) == (502, "outcome_unknown")
    assert world.payments() == []

    retried = pay(world.payment(), meta)
    [charge] = world.live()
    assert retried.status == 200 and retried.detail == world.approved("Payment approved", charge.id)
    assert charge.order_id == order_id_for(Operation.PAYMENT, meta["transactionId"])


def test_lookup_by_order_id_lets_reconciliation_void_an_unknown_charge(world: World) -> None:
    world.fake.set_fault("drop", match=world.profile.sale)
    meta = new_meta()
    assert pay(world.payment(), meta).status == 502
    [charge] = world.live()

    outcomes = reconcile_unknown(world.service, now=time.time() + 601)

    if world.profile.settles_at_once:  # nothing to void: the charge is refunded in full
        [given] = world.refunds()
        assert [o.decision for o in outcomes] == [Decision.REFUNDED]
        assert (given.payment_id, given.amount) == (charge.id, charge.amount)
        answer = pay(world.payment(), meta)
        assert answer.status == 400, answer.body
        detail = REFUNDED_DETAIL.format(who="reconciliation", refund_id=given.id)
        assert answer.detail == {**world.approved(detail, charge.id), "success": False,
                                 "statusCode": "refunded_by_reconciliation"}
        assert len(world.sales()) == 1
        return
    assert [o.decision for o in outcomes] == [Decision.VOIDED]
    assert world.entry(charge.id).status == kit.VOIDED and world.live() == []
    answer = pay(world.payment(), meta)
    assert answer.status == 400, answer.body
    voided = world.profile.voided or world.profile.approved
    assert answer.detail == {**world.approved(RECONCILED_DETAIL, charge.id, voided), "success": False,
                             "statusCode": "voided_by_reconciliation"}
    assert len(world.sales()) == 1


def test_void_before_settlement(world: World) -> None:
    charge = world.paid()
    answer = world.refund(charge.id)

    assert answer.status == 200, answer.body
    if world.profile.settles_at_once:  # no void: a refund of the whole, at once
        [given] = world.refunds()
        assert answer.detail == world.approved("Refund approved", given.id)
        assert (given.payment_id, given.amount) == (charge.id, charge.amount)
        assert world.entry(charge.id).status == kit.APPROVED and world.entry(charge.id).left == 0
        return
    detail = "Payment voided before settlement; the card will not be charged"
    assert answer.detail == world.approved(detail, charge.id, world.profile.voided)
    assert world.entry(charge.id).status == kit.VOIDED and world.refunds() == []


def test_refund_after_settlement(world: World) -> None:
    charge = world.paid()
    world.settle(charge.id)
    answer = world.refund(charge.id)

    [given] = world.refunds()
    assert answer.status == 200, answer.body
    assert answer.detail == world.approved("Refund approved", given.id)
    assert (given.payment_id, given.amount) == (charge.id, charge.amount)
    assert world.entry(charge.id).refunded == charge.amount and world.entry(charge.id).status == kit.APPROVED


def test_a_refund_whose_answer_was_lost_is_found_by_the_retry_not_given_twice(world: World) -> None:
    charge = world.paid()
    world.settle(charge.id)
    assert world.refund(charge.id, Decimal("5.00")).status == 200
    # The refund's own wire request, whatever the gateway calls it: the last one the first refund sent.
    refund_line = world.fake.request_line(world.fake.requests[-1])
    world.fake.set_fault("drop", match=f"^{re.escape(refund_line)}$")
    meta = new_meta()
    lost = world.refund(charge.id, Decimal("5.00"), meta)

    first, second = world.refunds()  # carried out: the card was refunded though nobody heard
    assert (lost.status, lost.detail["statusCode"]) == (502, "outcome_unknown"), lost.body
    sent = len(world.fake.requests)
    retried = world.refund(charge.id, Decimal("5.00"), meta)

    assert retried.status == 200 and retried.detail["success"] is True, retried.body
    assert retried.detail["paymentTransactionId"] == second.id, "the retry answers with the refund it found"
    assert world.refunds() == [first, second] and world.entry(charge.id).refunded == Decimal("10.00")
    assert not [r for r in world.fake.requests[sent:] if world.fake.request_line(r) == refund_line], \
        "the retry looked the refund up by its order id and sent no refund"


def test_partial_refunds_after_settlement_and_not_before(world: World) -> None:
    charge = world.paid()
    if not world.profile.settles_at_once:  # a gateway that settles at once refunds in part at once
        early = world.refund(charge.id, Decimal("10.00"))
        message = ("partial refunds are possible only after the payment settles; refund the full amount now "
                   "(a void) or the part after settlement")
        assert early.status == 409, early.body
        assert early.detail == world.failed("partial_before_settlement", message, f"NotRefundable: {message}",
                                            "processing_error")
        assert world.refunds() == [] and world.entry(charge.id).status == kit.APPROVED
        world.settle(charge.id)
    part = world.refund(charge.id, Decimal("10.00"))
    rest = world.refund(charge.id, charge.amount - Decimal("10.00"))

    first, second = world.refunds()
    assert part.status == 200 and part.detail == world.approved("Refund approved", first.id)
    assert rest.status == 200 and rest.detail == world.approved("Refund approved", second.id)
    assert [first.amount, second.amount] == [Decimal("10.00"), charge.amount - Decimal("10.00")]
    assert world.entry(charge.id).left == 0 and first.payment_id == second.payment_id == charge.id


def test_refund_above_the_payment_is_refused_before_the_gateway(world: World) -> None:
    charge = world.paid()
    world.settle(charge.id)
    asked = charge.amount + Decimal("0.01")
    sent = len(world.fake.requests)
    over = world.refund(charge.id, asked)

    message = f"refund amount {asked} exceeds the payment's {charge.amount}"
    assert over.status == 400, over.body
    assert over.detail == world.failed("amount_too_large", message, f"RequestRejected: {message}", "processing_error")
    assert world.refunds() == [] and len(world.fake.requests) == sent + 1, "only the status was read"


def test_refund_above_what_is_left_is_refused(world: World) -> None:
    charge = world.paid()
    world.settle(charge.id)
    assert world.refund(charge.id, Decimal("10.00")).status == 200

    over = world.refund(charge.id, charge.amount - Decimal("9.99"))

    # Refused by the policy where the gateway reports what was refunded, by the gateway otherwise.
    assert over.status in (400, 409) and over.detail["success"] is False, over.body
    [given] = world.refunds()
    assert given.amount == Decimal("10.00") and world.entry(charge.id).refunded == Decimal("10.00")


def test_a_refund_is_not_a_payment(world: World) -> None:
    charge = world.paid()
    world.settle(charge.id)
    given = world.refund(charge.id, Decimal("5.00")).detail["paymentTransactionId"]

    answer = world.refund(given)

    message = f"transaction {given} is not a payment"
    assert answer.status == 400, answer.body
    assert answer.detail == world.failed("not_a_payment", message, f"RequestRejected: {message}", "processing_error")
    assert [(t.id, t.status) for t in world.refunds()] == [(given, kit.APPROVED)]
    assert world.entry(charge.id).refunded == Decimal("5.00")


def test_credentials_rejected(world: World) -> None:
    answer = pay(world.payment(account=REFUSED_ACCOUNT))

    assert answer.status == 503 and answer.headers.get("Retry-After"), answer.body
    message = f"{world.cls.name} did not accept the merchant's credentials"
    assert answer.detail == world.failed("credentials_rejected", message, f"CredentialsRejected: {message}",
                                         "config_error", gatewayHttpStatusCode=world.profile.refused_status,
                                         merchantAccountId=REFUSED_ACCOUNT)
    assert world.payments() == [] and world.fake.auth_failures >= 1


def test_rate_limited_is_refused_before_acting(world: World) -> None:
    world.fake.set_fault("http429", match=world.profile.sale)
    meta = new_meta()
    limited = pay(world.payment(), meta)

    assert limited.status == 503 and limited.headers.get("Retry-After"), limited.body
    message = f"{world.cls.name} rate limit reached; nothing was done"
    assert limited.detail == world.failed("gateway_unreachable", message, f"GatewayUnreachable: {message}",
                                          "processing_error", gatewayHttpStatusCode=429)
    assert world.payments() == []
    retried = pay(world.payment(), meta)
    [charge] = world.live()
    assert retried.status == 200 and retried.detail == world.approved("Payment approved", charge.id)


@pytest.mark.parametrize("carried_out", [False, True], ids=["not_carried_out", "carried_out"])
def test_server_error_is_unknown_then_settled_by_the_retry(world: World, carried_out: bool) -> None:
    world.fake.set_fault("http500", match=world.profile.sale, carry_out=carried_out)
    meta = new_meta()
    first = pay(world.payment(), meta)

    assert first.status == 502, first.body
    message = f"127.0.0.1:{world.fake.port} answered HTTP 500; the request may have been carried out"
    assert first.detail == world.failed("outcome_unknown", message, UNKNOWN_DETAIL, "processing_error",
                                        gatewayHttpStatusCode=500)
    assert len(world.live()) == int(carried_out)
    retried = pay(world.payment(), meta)
    [charge] = world.live()
    assert retried.status == 200 and retried.detail == world.approved("Payment approved", charge.id)
    world.no_charge_twice()


def test_scrub_of_a_recorded_transcript(world: World) -> None:
    charge = world.paid()
    world.settle(charge.id)
    assert world.refund(charge.id, Decimal("5.00")).status == 200
    assert pay(world.payment(world.profile.declining)).status == 400
    recorded = "".join(world.transcript)

    scrubbed = world.cls.scrub(recorded)

    card = world.profile.approving
    credentials = {value for value in world.profile.credentials.values() if len(value) >= 3}
    if card.token is not None:  # a token-only gateway: the tokens are what the transcript holds
        tokens = {test.token[1] for test in (card, world.profile.declining) if test.token is not None}
        sent = {*tokens, *credentials}
        assert all(found(token, recorded) for token in tokens), "the transcript holds the tokens as sent"
    else:
        expiries = expiry_forms(int(card.exp[:2]), 2000 + int(card.exp[2:]))
        sent = {card.number, world.profile.declining.number, card.cvv, *expiries, *credentials}
        assert found(card.number, recorded) and found(card.cvv, recorded), "the transcript holds the card as sent"
        assert any(found(expiry, recorded) for expiry in expiries)
    assert len(world.transcript) >= 3
    left = [value for value in sorted(sent) if found(value, scrubbed)]
    assert left == [], f"{world.cls.__name__}.scrub left card data or credentials in the transcript"
    authorization = re.findall(r"(?im)^authorization:.*$", scrubbed)
    assert all("[FILTERED]" in line for line in authorization), authorization


def found(value: str, text: str) -> bool:
    """`value` as a whole word of `text` (a CVV of 987 inside a port number is not the CVV)."""
    return re.search(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])", text) is not None
