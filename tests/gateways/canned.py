"""Canned answers for a gateway's interpreters, ActiveMerchant style: a stand-in for `HttpPool` that
answers each request with the next recorded response body, no server.

    pool = CannedPool(successful_purchase_response)
    gateway = AcmeGateway(credentials, GatewayContext(1001, "https://acme.test/v1", pool))
    result = gateway.charge(sale)
    [sent] = pool.sent                        # what the gateway would have sent
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gateways.http import NO_STATUSES, HttpReply, StatusError, status_error


@dataclass(frozen=True)
class Sent:
    method: str
    url: str
    json: Any
    params: Mapping[str, str] | None
    auth: Any


class CannedPool:
    """Answers each `send` with the next canned body: a JSON string (HTTP 200) or (status, JSON
    string). Statuses are mapped as `HttpPool.send` maps them (`status_error`, with the gateway's
    own `statuses`), so the gateway file reads exactly what it would read from the real pool."""

    def __init__(self, *answers: str | tuple[int, str]) -> None:
        self._answers = [(200, answer) if isinstance(answer, str) else answer for answer in answers]
        self.sent: list[Sent] = []

    def send(
        self,
        method: str,
        url: str,
        *,
        auth: Any,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        gateway: str = "",
        endpoint: str = "",
        url_setting: str = "",
        statuses: Mapping[int, StatusError] = NO_STATUSES,
    ) -> HttpReply:
        self.sent.append(Sent(method, url, json, params, auth))
        assert self._answers, f"no canned answer left for {method} {url}"
        status, text = self._answers.pop(0)
        reply = HttpReply(status, parsed(text), text)
        error = status_error(reply, gateway, url_setting, statuses)
        if error is not None:
            raise error
        return reply


def parsed(text: str) -> Any:
    """The body as `HttpPool` parses it: floats as Decimal, None when it is not JSON."""
    try:
        return json.loads(text, parse_float=Decimal) if text.strip() else None
    except ValueError:
        return None
