"""The registry finds every gateway file on its own: adding a gateway is adding one file."""

from __future__ import annotations

import pytest

from gateways.base import CredentialField, Gateway
from gateways.registry import check_credential_fields, gateway_type, gateway_types
from shared.errors import CredentialsMalformed
from shared.factory import normalise_credentials


def test_registry_finds_each_gateway_file() -> None:
    found = {type_id: cls.name for type_id, cls in gateway_types().items()}
    # At least these: a gateway added by dropping in its file is registered without editing this test.
    assert {1: "Payload", 2: "CardConnect", 900: "Simulator"}.items() <= found.items()
    assert len({cls.__module__ for cls in gateway_types().values()}) == len(found), "one file per gateway"
    assert gateway_type(9999) is None


def test_declared_credential_fields_fit_the_monolith_table() -> None:
    for cls in gateway_types().values():
        check_credential_fields(cls)
    names = {cls.name: [(f.name, f.label, f.display_order) for f in cls.credential_fields]
             for cls in gateway_types().values()}
    assert names["CardConnect"] == [
        ("username", "Login", 1),
        ("password", "Password", 2),
        ("merchantId", "MerchantId", 3),
    ]
    assert names["Payload"] == [("apiKey", "ApiKey", 1), ("processingId", "ProcessingId", 2)]


def test_more_than_seven_fields_is_refused() -> None:
    class TooMany(Gateway):
        type_id = 999
        name = "TooMany"
        credential_fields = tuple(CredentialField(f"f{i}", f"F{i}", i) for i in range(1, 9))

    with pytest.raises(RuntimeError, match="at most 7"):
        check_credential_fields(TooMany)


def test_an_option_is_kept_when_the_secret_has_it_and_not_required() -> None:
    fields = (CredentialField("apiKey", "ApiKey", 1), CredentialField("policy", "Policy", 2, required=False))
    assert normalise_credentials(fields, {"APIKEY": "k-1"}, 5) == {"apiKey": "k-1"}
    assert normalise_credentials(fields, {"apiKey": "k-1", "policy": "accept", "other": "x"}, 5) == {
        "apiKey": "k-1", "policy": "accept"}
    with pytest.raises(CredentialsMalformed, match="lack apiKey"):
        normalise_credentials(fields, {"policy": "accept"}, 5)
