"""What must never be written down: each gateway's `scrub` on a real captured wire transcript, and
every log record emitted while the gateways work."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable
from decimal import Decimal

import pytest

from gateways.base import Card, Gateway, RefundRequest
from gateways.cardconnect import CardConnectGateway
from gateways.errors import CredentialsRejected, Declined, GatewayError
from gateways.http import HttpPool
from gateways.payload import PayloadGateway
from shared.refunds import refund_or_void
from tests.fakes import CardConnectFake, PayloadFake
from tests.gateways.helpers import (
    APPROVE_CC,
    APPROVE_PL,
    CC_MERCHANTS,
    CC_MID,
    PL_KEY,
    TIMEOUTS,
    card,
    cardconnect,
    payload,
    sale,
)

CVV = "987"
Scenario = tuple[Gateway, list[str], list[str], list[str]]
"""(gateway, secrets the wire carries, secrets that never appear in any form, error texts)"""
CC_USER, CC_PASSWORD = CC_MERCHANTS[CC_MID]
PL_PROCESSING = "acct_tenant1"


def secrets_for(gateway: Gateway, pan: str) -> tuple[list[str], list[str]]:
    """(what the wire carries and scrub must remove, what must never appear in any form)."""
    if isinstance(gateway, CardConnectGateway):
        basic = base64.b64encode(f"{CC_USER}:{CC_PASSWORD}".encode()).decode()
        # The merchant id rides in every body and every GET path (inquire/<retref>/<merchid>).
        return [pan, f'"cvv2": "{CVV}"', '"expiry": "1228"', basic, CC_MID], [CC_USER, CC_PASSWORD, f'"{CVV}"']
    basic = base64.b64encode(f"{PL_KEY}:".encode()).decode()
    return [pan, f'"card_code": "{CVV}"', '"expiry": "12/28"', basic, PL_PROCESSING], [PL_KEY, f'"{CVV}"']


def exercise(gateway: Gateway, pan: str, declined_pan: str, settle: Callable[[], None], bad: Gateway) -> list[str]:
    """A sale, a void, a settled refund, a decline and a credentials error; the texts of the errors."""
    errors: list[str] = []
    paid = gateway.charge(sale(order_id="ord-scrub-1", number=pan, card=_card(pan)))
    refund_or_void(gateway, RefundRequest(payment_id=paid.transaction_id, amount=None, order_id="ord-scrub-r1"))
    paid = gateway.charge(sale(order_id="ord-scrub-2", number=pan, card=_card(pan)))
    settle()
    partial = RefundRequest(payment_id=paid.transaction_id, amount=Decimal("1.00"), order_id="ord-scrub-r2")
    refund_or_void(gateway, partial)
    for failing, number in ((gateway, declined_pan), (bad, pan)):
        with pytest.raises((Declined, CredentialsRejected)) as error:
            failing.charge(sale(order_id="ord-scrub-3", number=number, card=_card(number)))
        assert isinstance(error.value, GatewayError)
        errors.append(f"{error.value!s} {error.value.code} {error.value!r}")
    assert gateway.find_payment("ord-scrub-2") is not None
    return errors


def _card(number: str) -> Card:
    return card(number, cvv=CVV)


@pytest.fixture(params=["cardconnect", "payload"])
def scenario(request: pytest.FixtureRequest) -> Callable[[HttpPool], Scenario]:
    """A function running the exercise through a given pool: (gateway, secrets, error texts)."""

    def run(pool: HttpPool) -> Scenario:
        if request.param == "cardconnect":
            with CardConnectFake(merchants=CC_MERCHANTS) as cc:
                cc_gateway = cardconnect(cc, pool)
                bad = cardconnect(cc, pool, password="wrong-password")
                errors = exercise(cc_gateway, APPROVE_CC, "4387751111111053", cc.settle_all, bad)
                return (cc_gateway, *secrets_for(cc_gateway, APPROVE_CC), errors)
        with PayloadFake(accounts={PL_KEY: PL_PROCESSING}) as pl:
            pl_gateway = payload(pl, pool)
            wrong_key = payload(pl, pool, api_key="test_secret_key_wrong", processing_id=PL_PROCESSING)
            errors = exercise(pl_gateway, APPROVE_PL, "4111111111119904", pl.settle_all, wrong_key)
            return (pl_gateway, *secrets_for(pl_gateway, APPROVE_PL), errors)

    return run


def test_scrub_removes_every_secret_from_a_real_transcript(scenario: Callable[[HttpPool], Scenario]) -> None:
    exchanges: list[str] = []
    gateway, on_the_wire, never, _ = scenario(HttpPool(TIMEOUTS, transcript=exchanges.append))
    transcript = "\n".join(exchanges)

    assert len(exchanges) >= 7
    for secret in on_the_wire:
        assert secret in transcript, f"the transcript should have carried {secret!r} before scrubbing"
    scrubbed = type(gateway).scrub(transcript)
    for secret in [*on_the_wire, *never]:
        assert secret not in scrubbed
    assert "Authorization: Basic [FILTERED]" in scrubbed


def test_logs_and_error_texts_hold_no_card_data_or_credentials(
    scenario: Callable[[HttpPool], Scenario], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, on_the_wire, never, errors = scenario(HttpPool(TIMEOUTS))

    assert caplog.records, "the HTTP layer logs at DEBUG"
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for secret in [*on_the_wire, *never]:
        assert secret not in logged
        assert all(secret not in text for text in errors)
    # The bare CVV only as a number of its own: the fake's random port (say 42987) may end in it.
    bare_cvv = re.compile(rf"(?<!\d){CVV}(?!\d)")
    assert not bare_cvv.search(logged)
    assert not any(bare_cvv.search(text) for text in errors)


def test_scrub_is_a_static_method_on_each_gateway() -> None:
    assert CardConnectGateway.scrub('{"account": "4788250000121443"}') == '{"account": "[FILTERED]"}'
    assert PayloadGateway.scrub('{"card_code": "987"}') == '{"card_code": "[FILTERED]"}'


@pytest.mark.parametrize(
    ("line", "scrubbed"),
    [
        ('{"merchid": "496160873888"}', '{"merchid": "[FILTERED]"}'),
        ("GET https://h/cardconnect/rest/inquire/123456789012/496160873888 HTTP/1.1",
         "GET https://h/cardconnect/rest/inquire/123456789012/[FILTERED] HTTP/1.1"),
        ("GET https://h/cardconnect/rest/inquireByOrderid/BVPab12/496160873888/1",
         "GET https://h/cardconnect/rest/inquireByOrderid/BVPab12/[FILTERED]/1"),
        ("GET https://h/cardconnect/rest/inquireMerchant/496160873888\n", "GET https://h/cardconnect/rest/inquireMerchant/[FILTERED]\n"),
    ],
)
def test_cardconnect_scrub_removes_the_merchant_id_from_bodies_and_paths(line: str, scrubbed: str) -> None:
    # merchantId is a credential field of the secret: the accounts CLI masks it and urllib3's
    # request logging is off because these paths carry it. Transcripts treat it the same way.
    assert CardConnectGateway.scrub(line) == scrubbed


def test_payload_scrub_removes_the_processing_id_from_bodies_and_queries() -> None:
    text = '{"processing_id": "acct_tenant1"}\nGET https://h/transactions?processing_id=acct_tenant1&limit=1'
    assert PayloadGateway.scrub(text) == (
        '{"processing_id": "[FILTERED]"}\nGET https://h/transactions?processing_id=[FILTERED]&limit=1'
    )


def test_every_public_operation_of_every_gateway_is_wrapped_by_the_echo_scrubber() -> None:
    from gateways.base import Gateway
    from gateways.registry import gateway_types

    public = {name for name, value in vars(Gateway).items() if callable(value) and not name.startswith("_")}
    operations = public - {"echoes", "scrub", "base_url", "is_transaction_id", "http"}
    assert operations == set(Gateway.OPERATIONS)
    for cls in gateway_types().values():
        for name in Gateway.OPERATIONS:
            if name in vars(cls):
                operation = getattr(cls, name)
                assert operation.__wrapped__ is not None and operation.__module__ == cls.__module__, (cls, name)
                assert not hasattr(operation.__wrapped__, "__wrapped__"), (cls, name)  # wrapped exactly once
