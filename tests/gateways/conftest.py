"""Fixtures for the gateway tests: started fakes and a shared pool with short timeouts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateways.http import HttpPool
from tests.fakes import CardConnectFake, PayloadFake
from tests.gateways.helpers import CC_MERCHANTS, PL_ACCOUNTS, TIMEOUTS


@pytest.fixture
def pool() -> Iterator[HttpPool]:
    shared = HttpPool(TIMEOUTS)
    yield shared
    shared.close()


@pytest.fixture
def cc_fake() -> Iterator[CardConnectFake]:
    with CardConnectFake(merchants=CC_MERCHANTS) as fake:
        yield fake


@pytest.fixture
def pl_fake() -> Iterator[PayloadFake]:
    with PayloadFake(accounts=PL_ACCOUNTS) as fake:
        yield fake
