"""The card-token definitions of the gateway interface: a sale carries a card or a token, never
both; a token never shows its value; and a gateway that echoes it gives nothing of it back."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateways.base import (
    ECHO_REMOVED,
    Card,
    CardToken,
    Gateway,
    GatewayContext,
    GatewayResult,
    SaleRequest,
    require_card,
)
from gateways.errors import Declined, RequestRejected
from gateways.simulator import SimulatorGateway

TOKEN = CardToken(kind="payload_payment_method", value="pm_2xT9bQwLr7VnD4kZ")
CARDSECURE = CardToken(kind="cardsecure", value="9418594164531111", exp_month=7, exp_year=2031)
"""Fails Luhn, as CardSecure tokens may: found as an echo, not as a card number."""
CARD = Card(number="4242424242424242", exp_month=12, exp_year=2030, cvv="123")


def sale(**changes: object) -> SaleRequest:
    fields: dict[str, object] = {"order_id": "BVPTOKENS", "amount": Decimal("10.00"), "currency": "USD"}
    fields.update(changes)
    return SaleRequest(**fields)  # type: ignore[arg-type]


def test_a_sale_carries_a_card_or_a_token_exactly_one() -> None:
    assert sale(card=CARD).token is None
    assert sale(token=TOKEN).card is None
    with pytest.raises(ValueError, match="exactly one"):
        sale()
    with pytest.raises(ValueError, match="exactly one"):
        sale(card=CARD, token=TOKEN)


def test_a_token_shows_its_kind_never_its_value() -> None:
    assert repr(TOKEN) == "CardToken(kind='payload_payment_method')"
    assert "pm_2xT9" not in repr(sale(token=TOKEN)) and "9418594164531111" not in str(CARDSECURE)


def test_gateways_declare_their_token_kinds_and_whether_they_take_cards() -> None:
    assert Gateway.token_kinds == frozenset() and Gateway.accepts_cards is True
    assert "cardsecure" in SimulatorGateway.token_kinds and SimulatorGateway.accepts_cards is True
    assert GatewayResult("t1", "sale", "00", "Approval", 200).last_four is None


def test_a_card_only_path_refuses_a_token_by_itself() -> None:
    with pytest.raises(RequestRejected) as refused:
        require_card(sale(token=TOKEN), "Simulator")
    assert refused.value.code == "token_not_accepted"
    assert require_card(sale(card=CARD), "Simulator") is CARD


def test_echoes_of_a_token_sale_hold_the_value_and_the_expiry_sent_beside_it() -> None:
    gateway = SimulatorGateway({}, GatewayContext(1001, ""))
    echoes = gateway.echoes(sale(token=CARDSECURE))
    assert echoes.scrub("account 9418594164531111 expiry 0731 / 07/31") == (
        f"account {ECHO_REMOVED} expiry {ECHO_REMOVED} / {ECHO_REMOVED}"
    )
    assert gateway.echoes(sale(token=TOKEN)).scrub("payment method pm_2xT9bQwLr7VnD4kZ not found") == (
        f"payment method {ECHO_REMOVED} not found"
    )


class EchoingGateway(SimulatorGateway):
    """Answers with the token it was sent, as a careless gateway or proxy might."""

    def charge(self, sale: SaleRequest) -> GatewayResult:
        assert sale.token is not None
        if sale.amount > 100:
            raise Declined(f"declined: {sale.token.value}", code=sale.token.value, transaction_id=sale.token.value)
        return GatewayResult("sim_1", "sale", sale.token.value, f"approved {sale.token.value}", 200)


def test_a_token_echoed_in_a_gateway_answer_or_error_never_leaves_the_operation() -> None:
    gateway = EchoingGateway({}, GatewayContext(1001, ""))
    result = gateway.charge(sale(token=TOKEN))
    assert result.code == ECHO_REMOVED and result.message == f"approved {ECHO_REMOVED}"
    with pytest.raises(Declined) as declined:
        gateway.charge(sale(token=TOKEN, amount=Decimal("500.00")))
    error = declined.value
    assert TOKEN.value not in f"{error} {error.code} {error.transaction_id} {error.args}"
