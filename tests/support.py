"""Request builders and service wiring shared by the tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import azure.functions as func

from gateways.base import Gateway, GatewayResult, PaymentStatus, SaleRequest
from shared import runtime
from shared.credentials import FileCredentialStore
from shared.factory import GatewayFactory
from shared.flow import PaymentService
from shared.idempotency import SqliteIdempotencyStore
from shared.settings import Settings

CURRENT_GUARD: Any = None
"""The running test's leak guard (set by the autouse fixture): what a test sends is watched."""


def watch_sent(body: Any) -> None:
    """Register the CVV, expiry, card-token and credential values a test sends, so the leak guard
    fails the test if any of them reaches a log or a response. The expiry is watched also as gateways
    write it on the wire (MM/YY for Payload), since a gateway may echo it in that form."""
    if CURRENT_GUARD is None or not isinstance(body, dict):
        return
    values = [body.get("cvv2"), body.get("expDate")]
    token = body.get("token")
    if isinstance(token, dict):
        values.append(token.get("value"))
    expiry = body.get("expDate")
    if isinstance(expiry, str) and len(expiry) == 4 and expiry.isdigit():
        values += [f"{expiry[:2]}/{expiry[2:]}", f"{expiry[:2]}/20{expiry[2:]}"]
    credentials = body.get("credentials")
    if isinstance(credentials, dict):
        values.extend(str(v) for v in credentials.values())
    CURRENT_GUARD.watch(*(str(v) for v in values if isinstance(v, str | int)))


def check_no_leaks(text: str) -> None:
    """Fail unless `text` (a response) is free of card numbers and of every value the test watches:
    what reaches a log must not reach a response or a stored record either."""
    leaks = CURRENT_GUARD.leaks(text) if CURRENT_GUARD is not None else []
    assert not leaks, f"a response leaked card data or secrets: {leaks[:5]}"


PAYMENT_URL = "http://localhost/paymentGateway/processPayment"
REFUND_URL = "http://localhost/paymentGateway/processRefund"
SIMULATOR_ACCOUNT = 1001


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "credential_source": "file",
        "local_credentials_file": tmp_path / "credentials.json",
        "enable_simulator": True,
        "idempotency_sqlite_path": tmp_path / "idempotency.sqlite",
        "gateway_connect_timeout_seconds": 1.0,
        "gateway_timeout_seconds": 2.0,
    }
    values.update(overrides)
    return Settings(**values)


def write_credentials(path: Path, accounts: dict[int, dict[str, Any]]) -> None:
    for account in accounts.values():
        watch_sent({"credentials": account.get("credentials") or {}})
    path.write_text(json.dumps({str(k): v for k, v in accounts.items()}), encoding="utf-8")


def install_service(settings: Settings, credentials: Any = None, idempotency: Any = None) -> PaymentService:
    """Install a service built from `settings`, optionally with a given credential/idempotency store."""
    service = runtime.build_service(settings)
    if credentials is not None or idempotency is not None:
        factory = GatewayFactory(settings, credentials or FileCredentialStore(settings.local_credentials_file),
                                 service.factory._http)
        service = PaymentService(
            settings,
            factory,
            idempotency or SqliteIdempotencyStore(settings.idempotency_sqlite_path),
            runtime.fingerprint_key_source(settings),
        )
    runtime.install(service)
    return service


def new_meta(**overrides: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"transactionId": str(uuid.uuid4()), "universityId": 7, "userId": 42}
    meta.update(overrides)
    return meta


def payment_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "gatewayTypeId": 900,
        "gatewayTypeName": "Simulator",
        "merchantAccountId": SIMULATOR_ACCOUNT,
        "account": "4242424242424242",
        "expDate": "1239",
        "cvv2": "987",
        "amount": 25.00,
        "currencyType": 840,
        "userId": 42,
        "name": "Ada Learner",
        "zip": "97201",
        "comment": "Course 101",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def refund_body(payment_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "gatewayTypeId": 900,
        "gatewayTypeName": "Simulator",
        "merchantAccountId": SIMULATOR_ACCOUNT,
        "paymentTransactionId": payment_id,
        "userId": 42,
        "maskedCardNumber": "xxxxxxxxxxxx4242",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def http_request(
    method: str,
    url: str,
    body: Any,
    meta: dict[str, Any] | str | None,
    headers: dict[str, str] | None = None,
) -> func.HttpRequest:
    all_headers = dict(headers or {})
    if meta is not None:
        all_headers["BVMeta"] = meta if isinstance(meta, str) else json.dumps(meta)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return func.HttpRequest(method=method, url=url, headers=all_headers, body=raw)


@dataclass
class Called:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    text: str

    @property
    def detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = self.body["detail"]
        return detail


def call(main: Callable[[func.HttpRequest], func.HttpResponse], request: func.HttpRequest) -> Called:
    response = main(request)
    text = response.get_body().decode()
    check_no_leaks(text)
    return Called(response.status_code, json.loads(text), dict(response.headers), text)


def pay(body: dict[str, Any] | bytes, meta: dict[str, Any] | str | None = None,
        headers: dict[str, str] | None = None) -> Called:
    from ProcessPayment import main

    watch_sent(body)
    return call(main, http_request("POST", PAYMENT_URL, body, new_meta() if meta is None else meta, headers))


def refund(body: dict[str, Any] | bytes, meta: dict[str, Any] | str | None = None,
           headers: dict[str, str] | None = None) -> Called:
    from ProcessRefund import main

    return call(main, http_request("PATCH", REFUND_URL, body, new_meta() if meta is None else meta, headers))


def audit_lines(guard: Any) -> list[dict[str, Any]]:
    """The audit lines the running test's leak guard captured, parsed, oldest first."""
    prefix = "paymentgateway.audit: "
    return [json.loads(line[len(prefix):]) for line in guard.capture.lines if line.startswith(prefix)]


class UncalledGateway(Gateway):
    """A base for test gateways that only declare themselves (the registry, the CLIs): every
    primitive fails the test if called."""

    def charge(self, sale: SaleRequest) -> GatewayResult:
        raise AssertionError("charge is not called in this test")

    def payment_status(self, payment_id: str) -> PaymentStatus:
        raise AssertionError("payment_status is not called in this test")

    def void(self, payment_id: str, amount: Decimal | None = None) -> GatewayResult:
        raise AssertionError("void is not called in this test")

    def refund(
        self, payment_id: str, amount: Decimal | None, order_id: str, comment: str | None = None
    ) -> GatewayResult:
        raise AssertionError("refund is not called in this test")

    def find_payment(self, order_id: str) -> GatewayResult | None:
        raise AssertionError("find_payment is not called in this test")

    def find_refund(self, order_id: str) -> GatewayResult | None:
        raise AssertionError("find_refund is not called in this test")

    def verify_credentials(self) -> None:
        raise AssertionError("verify_credentials is not called in this test")

    @staticmethod
    def scrub(transcript: str) -> str:
        raise AssertionError("scrub is not called in this test")
