"""Card tokens at CardConnect (a CardSecure token in `account`, with the expiry) and Payload (a
payment method id charged server-side), against their fakes: the exact wire requests, declines,
the card's last four from the answer, and transcripts that never keep a token."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from gateways.base import Card, CardToken, RefundRequest
from gateways.cardconnect import CardConnectGateway
from gateways.cards import luhn_valid
from gateways.errors import Declined, RequestRejected
from gateways.http import HttpPool
from gateways.payload import PayloadGateway
from shared.refunds import refund_or_void
from tests.fakes import CardConnectFake, PayloadFake
from tests.gateways.helpers import (
    APPROVE_CC,
    APPROVE_PL,
    CC_MID,
    PL_ACCOUNTS,
    PL_KEY,
    TIMEOUTS,
    cardconnect,
    payload,
    sale,
)


def cardsecure(fake: CardConnectFake, number: str = APPROVE_CC) -> CardToken:
    return CardToken(kind="cardsecure", value=fake.tokenize(number), exp_month=12, exp_year=2028)


def payment_method(fake: PayloadFake, number: str = APPROVE_PL, key: str = PL_KEY) -> CardToken:
    return CardToken(kind="payload_payment_method", value=fake.save_payment_method(PL_ACCOUNTS[key], number))


def test_the_gateways_declare_the_token_kinds_they_take() -> None:
    assert CardConnectGateway.token_kinds == frozenset({"cardsecure"}) and CardConnectGateway.accepts_cards
    assert PayloadGateway.token_kinds == frozenset({"payload_payment_method"}) and PayloadGateway.accepts_cards


def test_a_cardsecure_token_goes_in_account_with_its_expiry_no_cvv(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    token = cardsecure(cc_fake)
    assert token.value.startswith("947") and token.value.endswith(APPROVE_CC[-4:]) and len(token.value) == 16
    result = cardconnect(cc_fake, pool).charge(sale(card=None, token=token))
    (auth,) = cc_fake.requests
    assert auth.path == "/cardconnect/rest/auth"
    assert auth.body["account"] == token.value and auth.body["expiry"] == "1228"
    assert "cvv2" not in auth.body
    assert {k: auth.body[k] for k in ("merchid", "capture", "ecomind", "orderid")} == {
        "merchid": CC_MID, "capture": "Y", "ecomind": "E", "orderid": "ord-1001-a"}
    assert result.action == "sale" and result.amount == Decimal("19.99") and result.last_four == APPROVE_CC[-4:]
    charged = cc_fake.transactions[result.transaction_id]
    assert charged.last_four == APPROVE_CC[-4:] and charged.live


def test_a_token_that_fails_luhn_is_charged_as_a_token(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    number = next(n for n in ("4788250000121443", "4111111111111111", "5454545454545454", "4242424242424242")
                  if not luhn_valid(cc_fake.tokenize(n)))
    result = cardconnect(cc_fake, pool).charge(sale(card=None, token=cardsecure(cc_fake, number)))
    assert result.last_four == number[-4:]


def test_a_token_for_a_declining_card_declines(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    with pytest.raises(Declined) as declined:
        cardconnect(cc_fake, pool).charge(sale(card=None, token=cardsecure(cc_fake, "4387751111111038")))
    assert (declined.value.code, declined.value.message) == ("05", "Do not honor")
    assert cc_fake.live_charges() == []


def test_a_token_cardsecure_never_issued_is_an_invalid_card(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    unknown = CardToken(kind="cardsecure", value="9412345678901111", exp_month=12, exp_year=2028)
    with pytest.raises(Declined) as refused:
        cardconnect(cc_fake, pool).charge(sale(card=None, token=unknown))
    assert refused.value.code == "11"
    assert "9412345678901111" not in f"{refused.value} {refused.value.code}"


def test_a_token_sale_is_voided_then_refunded_after_settlement(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    gateway = cardconnect(cc_fake, pool)
    first = gateway.charge(sale(card=None, token=cardsecure(cc_fake)))
    voided = refund_or_void(gateway, RefundRequest(first.transaction_id, None, "ref-1"))
    assert voided.action == "void" and not cc_fake.transactions[first.transaction_id].live
    # CardSecure tokens are reusable: the same token pays again.
    second = gateway.charge(sale(order_id="ord-1001-b", card=None, token=cardsecure(cc_fake)))
    cc_fake.settle(second.transaction_id)
    refunded = refund_or_void(gateway, RefundRequest(second.transaction_id, Decimal("5.00"), "ref-2"))
    assert refunded.action == "refund" and cc_fake.transactions[second.transaction_id].refunded == Decimal("5.00")


def test_cardconnect_refuses_another_kind_of_token_itself(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    other = CardToken(kind="payload_payment_method", value="pm_3bW9JMoHcb1u4GHb8m7Dl")
    with pytest.raises(RequestRejected) as refused:
        cardconnect(cc_fake, pool).charge(sale(card=None, token=other))
    assert refused.value.code == "token_not_accepted" and cc_fake.requests == []


def test_a_payment_method_id_is_charged_without_card_fields(pl_fake: PayloadFake, pool: HttpPool) -> None:
    token = payment_method(pl_fake)
    result = payload(pl_fake, pool).charge(sale(card=None, token=token))
    (create,) = pl_fake.requests
    assert create.method == "POST" and create.path == "/transactions"
    assert create.body == {
        "amount": Decimal("19.99"),
        "processing_id": "acct_tenant1",
        "description": "Course 101 enrolment",
        "order_number": "ord-1001-a",
        "payment_method_id": token.value,
        "type": "payment",
    }
    assert list(create.body) == ["amount", "processing_id", "description", "order_number", "payment_method_id", "type"]
    assert result.last_four == APPROVE_PL[-4:] and pl_fake.transactions[result.transaction_id].status == "processed"


def test_a_payment_method_is_reusable_and_refunds_like_any_payment(pl_fake: PayloadFake, pool: HttpPool) -> None:
    gateway, token = payload(pl_fake, pool), payment_method(pl_fake)
    first = gateway.charge(sale(card=None, token=token))
    assert refund_or_void(gateway, RefundRequest(first.transaction_id, None, "ref-1")).action == "void"
    second = gateway.charge(sale(order_id="ord-1001-b", card=None, token=token))
    pl_fake.settle(second.transaction_id)
    refunded = refund_or_void(gateway, RefundRequest(second.transaction_id, Decimal("4.99"), "ref-2"))
    assert refunded.action == "refund" and pl_fake.transactions[second.transaction_id].refunded == Decimal("4.99")


def test_a_payment_method_of_a_declining_card_declines(pl_fake: PayloadFake, pool: HttpPool) -> None:
    with pytest.raises(Declined) as declined:
        payload(pl_fake, pool).charge(sale(card=None, token=payment_method(pl_fake, "4000000000000002")))
    assert declined.value.code == "general_decline" and pl_fake.live_charges() == []


def test_another_accounts_payment_method_is_refused_and_nothing_charged(pl_fake: PayloadFake, pool: HttpPool) -> None:
    theirs = payment_method(pl_fake, key="test_secret_key_tenant2")
    with pytest.raises(RequestRejected) as refused:
        payload(pl_fake, pool).charge(sale(card=None, token=theirs))
    assert refused.value.http_status == 400 and pl_fake.live_charges() == []
    assert theirs.value not in f"{refused.value} {refused.value.code}"


def test_payload_refuses_another_kind_of_token_itself(pl_fake: PayloadFake, pool: HttpPool) -> None:
    other = CardToken(kind="cardsecure", value="9424242424244242", exp_month=12, exp_year=2028)
    with pytest.raises(RequestRejected) as refused:
        payload(pl_fake, pool).charge(sale(card=None, token=other))
    assert refused.value.code == "token_not_accepted" and pl_fake.requests == []


def test_transcripts_of_token_sales_keep_no_token(cc_fake: CardConnectFake, pl_fake: PayloadFake) -> None:
    lines: list[str] = []
    recording = HttpPool(TIMEOUTS, transcript=lines.append)
    try:
        cc_token, pl_token = cardsecure(cc_fake), payment_method(pl_fake)
        cardconnect(cc_fake, recording).charge(sale(card=None, token=cc_token))
        payload(pl_fake, recording).charge(sale(card=None, token=pl_token))
    finally:
        recording.close()
    raw = "\n".join(lines)
    assert cc_token.value in raw and pl_token.value in raw  # the transcript is the raw wire
    scrubbed = PayloadGateway.scrub(CardConnectGateway.scrub(raw))
    assert cc_token.value not in scrubbed and pl_token.value not in scrubbed
    wire = json.dumps({"payment_method_id": pl_token.value})
    assert PayloadGateway.scrub(wire) == '{"payment_method_id": "[FILTERED]"}'


def test_a_card_sale_is_unchanged_and_tells_the_last_four_too(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    result = cardconnect(cc_fake, pool).charge(sale(card=Card(APPROVE_CC, 12, 2028, "123")))
    (auth,) = cc_fake.requests
    assert (auth.body["account"], auth.body["expiry"], auth.body["cvv2"]) == (APPROVE_CC, "1228", "123")
    assert result.last_four == APPROVE_CC[-4:]
