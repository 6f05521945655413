"""The gateway's answer means what the service says it means, end to end through `main(req)`:
partial approvals, each merchant account's currency, Payload's statuses, CardConnect's decline codes
and field limits, against the stateful fakes (and the simulator)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateways.simulator import LEDGER, PARTIAL_CARD
from shared import runtime
from tests.conftest import LeakGuard
from tests.fakes import CardConnectFake, PayloadFake
from tests.fakes.cardconnect import PREPAID_BALANCE, PREPAID_CARD
from tests.fakes.payload import HOLD_CARD, PROCESSING_CARD
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

CC_ACCOUNT, PL_ACCOUNT, PL_CAD_ACCOUNT, SIM_ACCOUNT = 2101, 3101, 3102, 1001
CC_MID, CC_USER, CC_PASSWORD = "496160873801", "cc-user-semantics", "cc-password-semantics"
PL_KEY, PL_PROCESSING = "test_secret_key_usd1", "acct_usd"
PL_CAD_KEY, PL_CAD_PROCESSING = "test_secret_key_cad1", "acct_cad"
BOTH_STORES = pytest.mark.parametrize("world", ["sqlite", "table"], indirect=True)


@dataclass
class World:
    cc: CardConnectFake
    pl: PayloadFake


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path, leak_guard: LeakGuard) -> Iterator[World]:
    """A CardConnect merchant with partial authorization; a USD and a CAD Payload account (the CAD
    one says so in its secret); the simulator. SQLite unless the test asks for Table storage."""
    leak_guard.watch(CC_PASSWORD, PL_KEY, PL_CAD_KEY, "987", "1239")
    with CardConnectFake(merchants={CC_MID: (CC_USER, CC_PASSWORD)}, partial_auth=frozenset({CC_MID})) as cc, \
            PayloadFake(accounts={PL_KEY: PL_PROCESSING, PL_CAD_KEY: PL_CAD_PROCESSING},
                        currencies={PL_CAD_PROCESSING: "CAD"}) as pl:
        settings = make_settings(
            tmp_path, gateway_url_overrides={"CARDCONNECT_URL": cc.base_url, "PAYLOAD_API_URL": pl.base_url},
            gateway_timeout_seconds=CLIENT_READ_SECONDS,
        )
        write_credentials(
            settings.local_credentials_file,
            {
                CC_ACCOUNT: {"gatewayTypeId": 2, "credentials": {"username": CC_USER, "password": CC_PASSWORD,
                                                                 "merchantId": CC_MID}},
                PL_ACCOUNT: {"gatewayTypeId": 1, "credentials": {"apiKey": PL_KEY, "processingId": PL_PROCESSING}},
                PL_CAD_ACCOUNT: {"gatewayTypeId": 1, "currency": "CAD",
                                 "credentials": {"apiKey": PL_CAD_KEY, "processingId": PL_CAD_PROCESSING}},
                SIM_ACCOUNT: {"gatewayTypeId": 900, "credentials": {}},
            },
        )
        store = None
        if getattr(request, "param", "sqlite") == "table":
            from azure.data.tables import TableServiceClient

            from shared.table_store import TableIdempotencyStore

            service_client = TableServiceClient.from_connection_string(request.getfixturevalue("azurite"))
            store = TableIdempotencyStore(service_client.get_table_client("sem" + uuid.uuid4().hex[:12]))
        install_service(settings, idempotency=store)
        yield World(cc, pl)
        runtime.install(None)


def cc_payment(**changes: Any) -> dict[str, Any]:
    fields = {"gatewayTypeId": 2, "gatewayTypeName": "CardConnect", "merchantAccountId": CC_ACCOUNT,
              "account": "4788250000121443"}
    return payment_body(**{**fields, **changes})


def pl_payment(**changes: Any) -> dict[str, Any]:
    fields = {"gatewayTypeId": 1, "gatewayTypeName": "Payload", "merchantAccountId": PL_ACCOUNT}
    return payment_body(**{**fields, **changes})


def auths(fake: CardConnectFake) -> list[dict[str, Any]]:
    return [r.body for r in fake.requests if r.path.endswith("/auth")]


# --- partial approvals ----------------------------------------------------------------------


@BOTH_STORES
def test_cardconnect_partial_approval_is_voided_and_answered_as_a_decline(world: World) -> None:
    meta = new_meta()
    answer = pay(cc_payment(account=PREPAID_CARD, amount=25.00), meta)

    assert answer.status == 400, answer.body
    assert answer.detail["success"] is False
    assert (answer.detail["statusCode"], answer.detail["errorCode"]) == ("partial_approval", "partial_approval")
    assert "10.00 of the 25.00" in answer.detail["responseDetail"]
    assert "voided" in answer.detail["responseDetail"] and "nothing was charged" in answer.detail["responseDetail"]
    [partial] = [t for t in world.cc.transactions.values() if t.kind == "auth"]
    assert (partial.amount, partial.respcode, partial.setlstat) == (PREPAID_BALANCE, "10", "Voided")
    voids = [r.body for r in world.cc.requests if r.path.endswith("/void")]
    assert voids == [{"merchid": CC_MID, "retref": partial.retref}]
    assert world.cc.live_charges() == []

    again = pay(cc_payment(account=PREPAID_CARD, amount=25.00), meta)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.body == answer.body
    assert len(auths(world.cc)) == 1


@BOTH_STORES
def test_partial_approval_whose_void_fails_is_unknown_then_settled_by_the_retry(world: World) -> None:
    world.cc.set_fault("http500", match="PUT /cardconnect/rest/void")
    meta = new_meta()
    first = pay(cc_payment(account=PREPAID_CARD, amount=25.00), meta)

    assert first.status == 502, first.body
    assert first.detail["statusCode"] == "outcome_unknown"
    assert "nothing" not in first.detail["responseMessage"].lower()
    assert "may still stand" in first.detail["responseMessage"]
    assert len(world.cc.live_charges()) == 1  # the partial approval still stands

    retried = pay(cc_payment(account=PREPAID_CARD, amount=25.00), meta)

    assert retried.status == 400, retried.body
    assert retried.detail["errorCode"] == "partial_approval"
    assert world.cc.live_charges() == []
    assert len(auths(world.cc)) == 1  # found and voided, never charged again


def test_payload_answer_for_another_amount_is_never_a_success(world: World) -> None:
    world.pl.approve_up_to["4242424242424242"] = Decimal("5.00")
    answer = pay(pl_payment(amount=25.00))

    assert answer.status == 400, answer.body
    assert answer.detail["errorCode"] == "partial_approval"
    assert world.pl.requests[-1].method == "PUT" and world.pl.requests[-1].body == {"status": "voided"}
    assert world.pl.live_charges() == []


def test_simulator_partial_approval_is_never_a_success(world: World) -> None:
    answer = pay(payment_body(account=PARTIAL_CARD, amount=25.00))

    assert answer.status == 400, answer.body
    assert answer.detail["errorCode"] == "partial_approval"
    [payment] = [p for p in LEDGER.payments(SIM_ACCOUNT) if p.transaction_id == answer.detail["paymentTransactionId"]]
    assert payment.voided


# --- currencies -----------------------------------------------------------------------------


@BOTH_STORES
@pytest.mark.parametrize(
    ("body", "takes"),
    [
        (pl_payment(currencyType=124), "USD"),
        (pl_payment(merchantAccountId=PL_CAD_ACCOUNT, currencyType=840), "CAD"),
        (cc_payment(currencyType=124), "USD"),
        (payment_body(currencyType=978), "USD"),
    ],
)
def test_a_request_in_another_currency_than_the_accounts_is_refused_before_any_call(
    world: World, body: dict[str, Any], takes: str
) -> None:
    meta = new_meta()
    answer = pay(body, meta)

    assert answer.status == 422, answer.body
    assert answer.detail["statusCode"] == "currency_mismatch"
    assert answer.detail["errors"][0]["field"] == "currencyType"
    assert f"takes {takes}" in answer.detail["responseDetail"]
    assert world.pl.requests == [] and world.cc.requests == []
    again = pay(body, meta)  # nothing was charged, so nothing was kept: the same refusal, still no call
    assert again.status == 422 and "Idempotent-Replayed" not in again.headers
    assert world.pl.requests == [] and world.cc.requests == []


def test_a_cad_account_charges_cad(world: World) -> None:
    answer = pay(pl_payment(merchantAccountId=PL_CAD_ACCOUNT, currencyType=124))

    assert answer.status == 200, answer.body
    assert world.pl.transactions[answer.detail["paymentTransactionId"]].currency == "CAD"


def test_a_refund_naming_another_currency_is_refused(world: World) -> None:
    paid = pay(pl_payment()).detail["paymentTransactionId"]
    world.pl.clear_requests()

    answer = refund(refund_body(paid, gatewayTypeId=1, merchantAccountId=PL_ACCOUNT, currencyType=124))

    assert answer.status == 422 and answer.detail["statusCode"] == "currency_mismatch"
    assert world.pl.requests == []
    ok = refund(refund_body(paid, gatewayTypeId=1, merchantAccountId=PL_ACCOUNT, currencyType=840))
    assert ok.status == 200, ok.body


def test_a_secret_with_a_malformed_currency_is_unavailable(world: World, tmp_path: Path) -> None:
    write_credentials(
        tmp_path / "credentials.json",
        {PL_ACCOUNT: {"gatewayTypeId": 1, "currency": "dollars",
                      "credentials": {"apiKey": PL_KEY, "processingId": PL_PROCESSING}}},
    )
    answer = pay(pl_payment())
    assert answer.status == 503
    assert "currency" in answer.detail["responseDetail"]
    assert world.pl.requests == []


# --- Payload statuses -----------------------------------------------------------------------


def test_payload_hold_is_completed_into_a_sale(world: World) -> None:
    answer = pay(pl_payment(account=HOLD_CARD))

    assert answer.status == 200, answer.body
    assert world.pl.transactions[answer.detail["paymentTransactionId"]].status == "processed"


@BOTH_STORES
def test_payload_processing_is_unknown_and_the_retry_never_charges_again(world: World) -> None:
    meta = new_meta()
    first = pay(pl_payment(account=PROCESSING_CARD), meta)
    assert first.status == 502 and first.detail["statusCode"] == "outcome_unknown"

    still = pay(pl_payment(account=PROCESSING_CARD), meta)
    assert still.status == 502 and still.detail["statusCode"] == "outcome_unknown"

    [charge] = world.pl.live_charges()
    world.pl.finish(charge.id, "processed")
    done = pay(pl_payment(account=PROCESSING_CARD), meta)

    assert done.status == 200, done.body
    assert done.detail["paymentTransactionId"] == charge.id
    posts = [r for r in world.pl.requests if r.method == "POST"]
    assert len(posts) == 1


def test_payload_capitalised_statuses_are_understood(world: World) -> None:
    world.pl.capitalised = True
    paid = pay(pl_payment())
    assert paid.status == 200, paid.body
    voided = refund(refund_body(paid.detail["paymentTransactionId"], gatewayTypeId=1, merchantAccountId=PL_ACCOUNT))
    assert voided.status == 200, voided.body
    assert world.pl.live_charges() == []


# --- CardConnect decline codes and field limits ---------------------------------------------


def test_cardconnect_generic_decline_is_not_reported_as_insufficient_funds(world: World) -> None:
    world.cc.decline_cards["4000000000001091"] = ("FNOR", "51", "Decline")
    answer = pay(cc_payment(account="4000000000001091"))

    assert answer.status == 400
    assert (answer.detail["statusCode"], answer.detail["errorCode"]) == ("51", "declined")


def test_cardconnect_long_address_is_cut_and_zip_plus_four_sent_without_the_dash(world: World) -> None:
    answer = pay(cc_payment(street="12345 North Very Long Boulevard Name Apartment 678", city="Springfield",
                            state="OR", country="US", zip="97201-1234"))

    assert answer.status == 200, answer.body
    [wire] = auths(world.cc)
    assert (wire["address"], wire["postal"], wire["country"]) == ("12345 North Very Long Boulevar", "972011234", "US")


def test_cardconnect_refuses_a_country_that_is_not_two_letters(world: World) -> None:
    answer = pay(cc_payment(country="USA"))

    assert answer.status == 400, answer.body
    assert answer.detail["statusCode"] == "country"
    assert "2-letter" in answer.detail["responseDetail"]
    assert world.cc.requests == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"zip": "1234567890"}, "zip"),
        ({"zip": "97201-12345"}, "zip"),
        ({"zip": "K1C 2N6", "country": "US"}, "zip"),
        ({"zip": "9720", "country": "us"}, "zip"),
    ],
)
def test_postal_codes_no_gateway_could_take_are_refused_at_the_contract(
    world: World, changes: dict[str, Any], field: str
) -> None:
    answer = pay(cc_payment(**changes))

    assert answer.status == 422, answer.body
    assert [e["field"] for e in answer.detail["errors"]] == [field]
    assert world.cc.requests == []


def test_postal_codes_that_fit_are_accepted(world: World) -> None:
    for changes in ({"zip": "97201"}, {"zip": "972011234"}, {"zip": "97201-1234", "country": "US"},
                    {"zip": "K1C 2N6", "country": "CA"}, {"zip": 97201}):
        assert pay(cc_payment(**changes)).status == 200, changes
