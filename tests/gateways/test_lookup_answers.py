"""A look-up by order id the gateway answers with something unreadable is unknown, never "nothing
found": a charge may hide behind it, and "nothing found" lets a retry charge again."""

from __future__ import annotations

from typing import Any

import pytest

from gateways.errors import OutcomeUnknown
from gateways.http import HttpPool
from tests.fakes import CardConnectFake, PayloadFake
from tests.fakes._server import RecordedRequest, Reply
from tests.gateways.helpers import cardconnect, payload, sale


def answer_lookups_with(fake: CardConnectFake | PayloadFake, monkeypatch: pytest.MonkeyPatch, body: Any) -> None:
    real = fake.handle

    def handle(request: RecordedRequest) -> Reply:
        lookup = "/inquireByOrderid/" in request.path or (request.method == "GET" and request.path == "/transactions")
        return Reply(200, body) if lookup else real(request)

    monkeypatch.setattr(fake, "handle", handle)


@pytest.mark.parametrize("body", ["<html>maintenance</html>", [], [{"respstat": "C"}, "x"], {"message": "later"}])
def test_cardconnect_unreadable_inquire_by_order_id_is_unknown(
    cc_fake: CardConnectFake, pool: HttpPool, monkeypatch: pytest.MonkeyPatch, body: Any
) -> None:
    gateway = cardconnect(cc_fake, pool)
    gateway.charge(sale(order_id="ord-lookup-1"))
    answer_lookups_with(cc_fake, monkeypatch, body)
    for find in (gateway.find_payment, gateway.find_refund):
        with pytest.raises(OutcomeUnknown) as raised:
            find("ord-lookup-1")
        assert raised.value.code == "unreadable_response"


def test_cardconnect_not_found_is_still_nothing_found(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    gateway = cardconnect(cc_fake, pool)
    assert gateway.find_payment("ord-never-sent") is None
    assert gateway.find_refund("ord-never-sent") is None


@pytest.mark.parametrize(
    "body",
    [{"object": "error"}, {"object": "list"}, {"object": "list", "values": "none"}, {"object": "list", "values": [1]}],
)
def test_payload_unreadable_search_is_unknown(
    pl_fake: PayloadFake, pool: HttpPool, monkeypatch: pytest.MonkeyPatch, body: Any
) -> None:
    gateway = payload(pl_fake, pool)
    gateway.charge(sale(order_id="ord-lookup-2"))
    answer_lookups_with(pl_fake, monkeypatch, body)
    for find in (gateway.find_payment, gateway.find_refund):
        with pytest.raises(OutcomeUnknown) as raised:
            find("ord-lookup-2")
        assert raised.value.code == "unreadable_response"


def test_payload_empty_list_is_still_nothing_found(pl_fake: PayloadFake, pool: HttpPool) -> None:
    gateway = payload(pl_fake, pool)
    assert gateway.find_payment("ord-never-sent") is None
    assert gateway.find_refund("ord-never-sent") is None
