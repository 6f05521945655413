"""verify_credentials: a read-only call that charges nobody and says whether the gateway accepts."""

from __future__ import annotations

import pytest

from gateways.errors import CredentialsRejected
from gateways.http import HttpPool
from tests.fakes import CardConnectFake, PayloadFake
from tests.gateways.helpers import CC_MID, PL_KEY, cardconnect, payload


def test_cardconnect_verify_uses_inquire_merchant(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    cardconnect(cc_fake, pool).verify_credentials()
    assert [(r.method, r.path) for r in cc_fake.requests] == [("GET", f"/cardconnect/rest/inquireMerchant/{CC_MID}")]
    with pytest.raises(CredentialsRejected):
        cardconnect(cc_fake, pool, password="wrong-password").verify_credentials()
    assert cc_fake.live_charges() == []


def test_payload_verify_is_a_read_only_search(pl_fake: PayloadFake, pool: HttpPool) -> None:
    payload(pl_fake, pool).verify_credentials()
    assert [r.method for r in pl_fake.requests] == ["GET"]
    with pytest.raises(CredentialsRejected):
        payload(pl_fake, pool, api_key="test_secret_key_nobody").verify_credentials()
    assert pl_fake.live_charges() == [] and PL_KEY
