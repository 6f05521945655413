"""ActiveMerchant's requests as a cross-check of ours (more-gateways reference §1.1 and §1.10, from
`authorize_net.rb` at ca45b1b0): for the same sale and refund, our request carries the fields
ActiveMerchant sends, in the order it sends them (the schema's sequence, which Authorize.Net checks),
except the few it sends that this service has no value for, each named below with the reason."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from gateways.http import HttpPool
from tests.gateways.test_canned_authorizenet import (
    Canned,
    details_response,
    gateway,
    sale,
    successful_purchase_response,
    successful_refund_response,
)

# ActiveMerchant's sale (`purchase` -> `add_auth_purchase`), element by element, in its order.
ACTIVEMERCHANT_SALE: list[str] = [
    "refId",  # the order id cut to 20 characters
    "transactionRequest.transactionType",
    "transactionRequest.amount",
    "transactionRequest.payment.creditCard.cardNumber",
    "transactionRequest.payment.creditCard.expirationDate",
    "transactionRequest.payment.creditCard.cardCode",
    "transactionRequest.order",
    "transactionRequest.customer.id",
    "transactionRequest.customer.email",
    "transactionRequest.billTo",
    "transactionRequest.customerIP",
    "transactionRequest.transactionSettings",
    "transactionRequest.userFields.x_currency_code",
    "transactionRequest.userFields.x_solution_id",
]

NOT_SENT_BECAUSE = {
    "transactionRequest.customer.id": "the gateway interface carries no learner id (BVMeta.userId stays in the "
    "service's audit line)",
    "transactionRequest.customer.email": "the V1 contract has no e-mail address",
    "transactionRequest.customerIP": "the learner's IP never reaches this service (the LMS calls it server to server)",
    "transactionRequest.userFields.x_currency_code": "a legacy AIM field ActiveMerchant tunnels through userFields; "
    "the account's processor fixes its currency and the flow refuses any other before a call",
    "transactionRequest.userFields.x_solution_id": "ActiveMerchant's own partner id",
}

# ActiveMerchant's refund (`refund` -> `normal_refund`): the last four digits and a masked expiry.
ACTIVEMERCHANT_REFUND: list[str] = [
    "transactionRequest.transactionType",
    "transactionRequest.amount",
    "transactionRequest.payment.creditCard.cardNumber",
    "transactionRequest.payment.creditCard.expirationDate",
    "transactionRequest.refTransId",
]


def paths(node: Any, prefix: str = "") -> list[str]:
    """Every key path in `node`, parents before children, in the order the keys were sent."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            found.append(path)
            found += paths(value, path)
    elif isinstance(node, list):
        for item in node:
            found += paths(item, prefix)
    return found


def in_order(ours: list[str], theirs: list[str]) -> list[str]:
    """`theirs` restricted to what we send, in our order: equal to `theirs` restricted likewise when
    both send the shared fields in the same order."""
    return [path for path in ours if path in theirs]


@pytest.fixture
def canned() -> Iterator[Canned]:
    with Canned() as server:
        yield server



def test_our_sale_carries_what_activemerchant_sends(canned: Canned, pool: HttpPool) -> None:
    canned.answers.append(successful_purchase_response)
    gateway(canned, pool).charge(sale())
    ours = paths(canned.sent())
    missing = [path for path in ACTIVEMERCHANT_SALE if path not in ours and path not in NOT_SENT_BECAUSE]
    assert missing == []
    assert [path for path in NOT_SENT_BECAUSE if path in ours] == [], "a field named as not sent is sent"
    shared = [path for path in ACTIVEMERCHANT_SALE if path in ours]
    assert in_order(ours, shared) == shared, "our shared fields are not in ActiveMerchant's (the schema's) order"


def test_our_refund_carries_what_activemerchant_sends(canned: Canned, pool: HttpPool) -> None:
    canned.answers += [details_response("settledSuccessfully"), successful_refund_response]
    gateway(canned, pool).refund("2157047189", Decimal("5.00"), "BVRREFUNDORDERAAAAAAAAAAAAAAAAA")
    ours = paths(canned.sent())
    assert [path for path in ACTIVEMERCHANT_REFUND if path not in ours] == []
    assert in_order(ours, ACTIVEMERCHANT_REFUND) == ACTIVEMERCHANT_REFUND
    refund = canned.sent()["transactionRequest"]
    assert refund["payment"]["creditCard"] == {"cardNumber": "1111", "expirationDate": "XXXX"}
