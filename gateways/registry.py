"""Which gateway class serves which `gatewayTypeId`.

Every module in this package except the infrastructure ones below is imported once and each
`Gateway` subclass with a `type_id` in it is registered, so adding a gateway is adding one file.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Mapping
from types import MappingProxyType

import gateways
from gateways.base import Gateway

_NOT_GATEWAYS = frozenset({"base", "registry", "http"})
MAX_CREDENTIAL_FIELDS = 7
"""The monolith's MicroservicePaymentGatewayAccountType row has Field1..Field7."""
_lock = threading.Lock()
_types: Mapping[int, type[Gateway]] | None = None


def _discover() -> Mapping[int, type[Gateway]]:
    found: dict[int, type[Gateway]] = {}
    for module_info in pkgutil.iter_modules(gateways.__path__):
        if module_info.name in _NOT_GATEWAYS or module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"gateways.{module_info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Gateway)
                and value.__module__ == module.__name__
                and "type_id" in vars(value)
            ):
                check_credential_fields(value)
                check_urls(value)
                if value.type_id in found:
                    raise RuntimeError(
                        f"gateway type id {value.type_id} is claimed by both "
                        f"{found[value.type_id].__name__} and {value.__name__}"
                    )
                found[value.type_id] = value
    return MappingProxyType(found)


def check_credential_fields(cls: type[Gateway]) -> None:
    fields = cls.credential_fields
    orders = [spec.display_order for spec in fields]
    if len(fields) > MAX_CREDENTIAL_FIELDS or len(set(orders)) != len(orders):
        raise RuntimeError(
            f"{cls.__name__} must declare at most {MAX_CREDENTIAL_FIELDS} credential fields with distinct "
            "display orders (the monolith's table has Field1..Field7)"
        )


def check_urls(cls: type[Gateway]) -> None:
    """A gateway called at a URL declares both its URLs and the setting that overrides them; one
    called at none (the simulator) declares none of them."""
    declared = [bool(cls.test_url), bool(cls.live_url), bool(cls.url_setting)]
    if any(declared) and not all(declared):
        raise RuntimeError(f"{cls.__name__} must declare test_url, live_url and url_setting together")


def url_settings() -> tuple[str, ...]:
    """Every app setting a registered gateway's URL may come from, in type id order."""
    return tuple(name for _, cls in sorted(gateway_types().items()) for name in cls.url_settings())


def gateway_types() -> Mapping[int, type[Gateway]]:
    """Every registered gateway class by its type id (discovered once per process)."""
    global _types
    if _types is None:
        with _lock:
            if _types is None:
                _types = _discover()
    return _types


def gateway_type(type_id: int) -> type[Gateway] | None:
    return gateway_types().get(type_id)
