"""Each gateway declares its URLs and the setting that overrides them; the settings say only which
environment to call and carry the overrides that are set, gathered from the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateways.base import CredentialField, Gateway
from gateways.cardconnect import CardConnectGateway
from gateways.http import HttpPool, Timeouts
from gateways.payload import PayloadGateway
from gateways.registry import check_urls, gateway_types, url_settings
from shared.credentials import FileCredentialStore
from shared.factory import GatewayFactory
from shared.settings import Settings, SettingsError
from tests.support import make_settings, write_credentials

CALLED_AT_A_URL = sorted(
    (cls for cls in gateway_types().values() if cls.url_setting), key=lambda cls: cls.type_id
)


def test_the_gateways_declare_their_urls() -> None:
    assert (CardConnectGateway.test_url, CardConnectGateway.live_url, CardConnectGateway.url_setting) == (
        "https://fts-uat.cardconnect.com/cardconnect/rest",
        "https://fts.cardconnect.com/cardconnect/rest",
        "CARDCONNECT_URL",
    )
    assert (PayloadGateway.test_url, PayloadGateway.live_url, PayloadGateway.url_setting) == (
        "https://api.payload.com", "https://api.payload.com", "PAYLOAD_API_URL",
    )
    # These among them: a gateway dropped in adds its own without editing this test.
    assert {"PAYLOAD_API_URL", "CARDCONNECT_URL", "CARDCONNECT_HOSTNAME"} <= set(url_settings())
    assert len(set(url_settings())) == len(url_settings())


@pytest.mark.parametrize("cls", CALLED_AT_A_URL, ids=lambda cls: cls.name)
def test_the_environment_picks_the_declared_url_and_the_setting_overrides_it(cls: type[Gateway]) -> None:
    assert cls.test_url.startswith("https://") and cls.live_url.startswith("https://")
    for environment, declared in (("test", cls.test_url), ("live", cls.live_url)):
        settings = Settings.from_env({"GATEWAY_ENVIRONMENT": environment})
        assert settings.gateway_url_overrides == {}
        assert cls.base_url(settings.gateway_environment, settings.gateway_url_overrides) == declared
        moved = Settings.from_env({"GATEWAY_ENVIRONMENT": environment, cls.url_setting: " https://gw.example/v2/ "})
        assert moved.gateway_url_overrides == {cls.url_setting: "https://gw.example/v2/"}
        assert cls.base_url(moved.gateway_environment, moved.gateway_url_overrides) == "https://gw.example/v2"


def test_only_the_gateways_url_settings_are_carried_and_only_when_set() -> None:
    settings = Settings.from_env({"CARDCONNECT_URL": "https://a.example", "PAYLOAD_API_URL": "", "OTHER_URL": "x"})
    assert settings.gateway_url_overrides == {"CARDCONNECT_URL": "https://a.example"}


def test_the_environment_is_test_unless_live() -> None:
    assert Settings.from_env({}).gateway_environment == "test"
    assert Settings.from_env({"GATEWAY_ENVIRONMENT": " Live "}).gateway_environment == "live"
    with pytest.raises(SettingsError, match=r"^GATEWAY_ENVIRONMENT must be test or live$"):
        Settings.from_env({"GATEWAY_ENVIRONMENT": "production"})


def test_the_factory_calls_each_gateway_at_its_url(tmp_path: Path) -> None:
    accounts: dict[int, dict[str, Any]] = {
        2001: {"gatewayTypeId": 2, "credentials": {"username": "u", "password": "p", "merchantId": "m1"}},
        1001: {"gatewayTypeId": 1, "credentials": {"apiKey": "k", "processingId": "acct_1"}},
    }
    live = make_settings(
        tmp_path, gateway_environment="live", gateway_url_overrides={"PAYLOAD_API_URL": "https://pl.example/"}
    )
    write_credentials(live.local_credentials_file, accounts)
    factory = GatewayFactory(live, FileCredentialStore(live.local_credentials_file), HttpPool(Timeouts(1.0, 1.0)))
    cardconnect, _ = factory.create(CardConnectGateway, 2001)
    payload, _ = factory.create(PayloadGateway, 1001)
    assert cardconnect.context.base_url == "https://fts.cardconnect.com/cardconnect/rest"
    assert payload.context.base_url == "https://pl.example"


def test_a_gateway_declares_its_urls_and_their_setting_together() -> None:
    class HalfDeclared(Gateway):
        type_id = 998
        name = "HalfDeclared"
        credential_fields = (CredentialField("key", "Key", 1),)
        test_url = "https://sandbox.example"

    with pytest.raises(RuntimeError, match="test_url, live_url and url_setting together"):
        check_urls(HalfDeclared)
