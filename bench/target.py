"""The gateway the benchmark runs against, from its own declarations (`gateways/<module>.py`) and its
fake's conformance profile (`tests/fakes/<module>.py`): nothing here names a gateway."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from gateways.base import Gateway
from gateways.registry import gateway_type
from tests.fakes.kit import Profile

GATEWAY_TYPE = 2
"""The gateway type the README's figures are measured against."""


@dataclass(frozen=True)
class Target:
    gateway: type[Gateway]
    profile: Profile

    @property
    def type_id(self) -> int:
        return self.gateway.type_id

    def payment_body(self) -> dict[str, Any]:
        """A payment as the monolith sends it, with the profile's approving card."""
        card = self.profile.approving
        return {
            "gatewayTypeId": self.type_id, "gatewayTypeName": self.gateway.name, "merchantAccountId": 2001,
            "account": card.number, "expDate": card.exp, "cvv2": card.cvv, "amount": float(card.amount),
            "currencyType": 840, "userId": 42, "name": "Bench Learner", "zip": "97201", "comment": "bench",
        }


def target(type_id: int = GATEWAY_TYPE) -> Target:
    cls = gateway_type(type_id)
    if cls is None or not cls.url_setting:
        raise SystemExit(f"gateway type {type_id} is not a registered gateway called at a URL")
    module = cls.__module__.rsplit(".", 1)[-1]
    return Target(cls, importlib.import_module(f"tests.fakes.{module}").PROFILE)
