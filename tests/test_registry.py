"""The registry finds every gateway file on its own: adding a gateway is adding one file."""

from __future__ import annotations

import pytest

from gateways.base import CredentialField, Gateway
from gateways.registry import check_credential_fields, gateway_type, gateway_types


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
