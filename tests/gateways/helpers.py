"""Builders shared by the gateway tests: merchants, cards, sales and gateways wired to the fakes."""

from __future__ import annotations

import base64
from dataclasses import replace
from decimal import Decimal
from typing import Any

from gateways.base import BillingAddress, Card, GatewayContext, SaleRequest
from gateways.cardconnect import CardConnectGateway
from gateways.http import HttpPool, Timeouts
from gateways.payload import PayloadGateway
from tests.fakes import CardConnectFake, PayloadFake
from tests.timing import CLIENT_CONNECT_SECONDS, CLIENT_READ_SECONDS

CC_MERCHANTS = {f"80000000000{n}": (f"cc-user-{n}", f"cc-secret-{n}") for n in range(1, 5)}
PL_ACCOUNTS = {f"test_secret_key_tenant{n}": f"acct_tenant{n}" for n in range(1, 5)}
CC_MID = "800000000001"
PL_KEY = "test_secret_key_tenant1"
APPROVE_CC = "4788250000121443"
APPROVE_PL = "4242424242424242"
TIMEOUTS = Timeouts(connect=CLIENT_CONNECT_SECONDS, read=CLIENT_READ_SECONDS)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def card(number: str, cvv: str = "123") -> Card:
    return Card(number=number, exp_month=12, exp_year=2028, cvv=cvv)


def sale(order_id: str = "ord-1001-a", amount: str = "19.99", number: str = APPROVE_CC, **changes: Any) -> SaleRequest:
    billing = BillingAddress(
        name="Pat Learner", street="1 College Ave", city="Springfield", state="IL", postal_code="62701", country="US"
    )
    request = SaleRequest(
        order_id=order_id,
        amount=Decimal(amount),
        currency="USD",
        card=card(number),
        billing=billing,
        comment="Course 101 enrolment",
    )
    return replace(request, **changes)


def cardconnect(
    fake: CardConnectFake,
    pool: HttpPool,
    merchid: str = CC_MID,
    base_url: str | None = None,
    password: str | None = None,
) -> CardConnectGateway:
    user, secret = CC_MERCHANTS[merchid]
    credentials = {"username": user, "password": password or secret, "merchantId": merchid}
    return CardConnectGateway(credentials, GatewayContext(1001, base_url or fake.base_url, pool))


def payload(
    fake: PayloadFake,
    pool: HttpPool,
    api_key: str = PL_KEY,
    base_url: str | None = None,
    processing_id: str | None = None,
) -> PayloadGateway:
    credentials = {"apiKey": api_key, "processingId": processing_id or PL_ACCOUNTS.get(api_key, "acct_unknown")}
    return PayloadGateway(credentials, GatewayContext(1002, base_url or fake.base_url, pool))
