"""Many merchants, one shared HttpPool: every request carries its own merchant's credentials, and
connections are pooled rather than opened per request."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from gateways.base import Gateway, GatewayResult
from gateways.http import HttpPool
from tests.fakes import CardConnectFake, PayloadFake
from tests.gateways.helpers import (
    APPROVE_PL,
    CC_MERCHANTS,
    CC_MID,
    PL_ACCOUNTS,
    PL_KEY,
    TIMEOUTS,
    cardconnect,
    payload,
    sale,
)

THREADS = 32


def pay_concurrently(gateways: list[Gateway], number: str) -> dict[str, GatewayResult]:
    """32 sales at once, round-robin over `gateways`; order id -> result."""
    start = threading.Barrier(THREADS)

    def one(index: int) -> tuple[str, GatewayResult]:
        order_id = f"ord-{index:03d}-m{index % len(gateways)}"
        start.wait()
        return order_id, gateways[index % len(gateways)].charge(sale(order_id=order_id, number=number))

    with ThreadPoolExecutor(THREADS) as executor:
        return dict(executor.map(one, range(THREADS)))


def test_cardconnect_merchants_never_mix(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    merchids = sorted(CC_MERCHANTS)
    results = pay_concurrently([cardconnect(cc_fake, pool, merchid=m) for m in merchids], "4788250000121443")

    assert cc_fake.auth_failures == 0
    charges = {c.orderid: c for c in cc_fake.live_charges()}
    assert len(charges) == THREADS
    for order_id, result in results.items():
        charge = charges[order_id]
        assert charge.retref == result.transaction_id
        assert charge.merchid == merchids[int(order_id[-1])]
    for request in cc_fake.requests:
        assert request.basic_auth == CC_MERCHANTS[request.body["merchid"]]


def test_payload_tenants_never_mix(pl_fake: PayloadFake, pool: HttpPool) -> None:
    keys = sorted(PL_ACCOUNTS)
    results = pay_concurrently([payload(pl_fake, pool, api_key=k) for k in keys], APPROVE_PL)

    assert pl_fake.auth_failures == 0
    charges = {c.order_number: c for c in pl_fake.live_charges()}
    assert len(charges) == THREADS
    for order_id, result in results.items():
        assert charges[order_id].id == result.transaction_id
        assert charges[order_id].processing_id == PL_ACCOUNTS[keys[int(order_id[-1])]]
    for request in pl_fake.requests:
        assert request.basic_auth is not None
        assert PL_ACCOUNTS[request.basic_auth[0]] == request.body["processing_id"]


def sequential_connections(
    fake: CardConnectFake | PayloadFake, gateway_for: Callable[[HttpPool], Gateway], number: str
) -> int:
    """TCP connections 20 sequential sales for one account open through a fresh pool."""
    pool = HttpPool(TIMEOUTS)
    gateway = gateway_for(pool)
    for n in range(20):
        gateway.charge(sale(order_id=f"ord-seq-{n}", number=number))
    pool.close()
    return len(fake.client_ports())


def test_sequential_sales_reuse_connections(cc_fake: CardConnectFake, pl_fake: PayloadFake) -> None:
    cc_fake.sets_cookies = pl_fake.sets_cookies = True  # refusing cookies must not cost the pooling
    assert sequential_connections(cc_fake, lambda p: cardconnect(cc_fake, p, merchid=CC_MID), "4788250000121443") <= 2
    assert sequential_connections(pl_fake, lambda p: payload(pl_fake, p, api_key=PL_KEY), APPROVE_PL) <= 2
    assert len(cc_fake.live_charges()) == len(pl_fake.live_charges()) == 20


def test_a_cookie_set_on_one_merchants_answer_never_reaches_another(
    cc_fake: CardConnectFake, pl_fake: PayloadFake, pool: HttpPool
) -> None:
    cc_fake.sets_cookies = pl_fake.sets_cookies = True
    for n, merchid in enumerate(sorted(CC_MERCHANTS)):
        cardconnect(cc_fake, pool, merchid=merchid).charge(sale(order_id=f"ord-cookie-{n}"))
    for n, key in enumerate(sorted(PL_ACCOUNTS)):
        payload(pl_fake, pool, api_key=key).charge(sale(order_id=f"ord-cookie-{n}", number=APPROVE_PL))

    requests = [*cc_fake.requests, *pl_fake.requests]
    assert len(requests) == 8 and all(r.status == 200 for r in requests)
    assert [r.headers.get("Cookie") for r in requests] == [None] * 8
