"""Credentials in the body (ALLOW_REQUEST_CREDENTIALS=true, the migration period only), over HTTP
through the devhost against the stateful CardConnect fake.

Whose credentials a request carries is part of the request; credentials the gateway refuses are the
caller's mistake (a 4xx, never retried and never a reason to re-read ours); and an account that has a
stored secret stays at the gateway that secret names, whatever the body claims.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import LeakGuard
from tests.devhost_process import devhost
from tests.fakes import CardConnectFake
from tests.support import new_meta, payment_body
from tests.timing import CLIENT_READ_SECONDS

MID_A, USER_A, PASSWORD_A = "496160873888", "tenant-a-user", "tenant-a-password"
MID_B, USER_B, PASSWORD_B = "496160873999", "tenant-b-user", "tenant-b-password"
CREDENTIALS_A = {"username": USER_A, "password": PASSWORD_A, "merchantId": MID_A}
CREDENTIALS_B = {"username": USER_B, "password": PASSWORD_B, "merchantId": MID_B}
STORED_CARDCONNECT_ACCOUNT = 2001  # has a stored secret: a CardConnect account
UNMIGRATED_ACCOUNT = 3001  # no stored secret yet: the body's credentials are all there is


@dataclass
class Host:
    base: str
    cardconnect: CardConnectFake
    log: Path

    def pay(self, body: dict[str, Any], meta: dict[str, Any] | None = None) -> requests.Response:
        headers = {"BVMeta": json.dumps(meta or new_meta())}
        return requests.post(f"{self.base}/paymentGateway/processPayment", headers=headers, json=body, timeout=15)

    def auth_requests(self) -> list[Any]:
        return [r for r in self.cardconnect.requests if r.path.endswith("/auth")]


@pytest.fixture
def host(tmp_path: Path, leak_guard: LeakGuard) -> Iterator[Host]:
    leak_guard.watch(USER_A, PASSWORD_A, USER_B, PASSWORD_B, "wrong-password-value")
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({
        str(STORED_CARDCONNECT_ACCOUNT): {"gatewayTypeId": 2, "credentials": CREDENTIALS_A},
    }))
    with CardConnectFake(merchants={MID_A: (USER_A, PASSWORD_A), MID_B: (USER_B, PASSWORD_B)}) as fake:
        env = {
            "CREDENTIAL_SOURCE": "file",
            "LOCAL_CREDENTIALS_FILE": str(credentials),
            "ENABLE_SIMULATOR": "true",
            "ALLOW_REQUEST_CREDENTIALS": "true",
            "CARDCONNECT_URL": fake.base_url,
            "GATEWAY_TIMEOUT_SECONDS": str(CLIENT_READ_SECONDS),
            "IDEMPOTENCY_STORE": "sqlite",
            "IDEMPOTENCY_SQLITE_PATH": str(tmp_path / "idempotency.sqlite"),
            "DEVHOST_LOG": str(tmp_path / "devhost.log"),
        }
        with devhost(env, "--no-timers") as (base, log_path):
            yield Host(base, fake, log_path)
    log = log_path.read_text()
    assert "unexpected" not in log
    for secret in (PASSWORD_A, PASSWORD_B, "wrong-password-value"):
        assert secret not in log
    # The messages only: the devhost's own timestamps and access lines are digits joined by
    # separators, which the guard would read as numbers to check.
    messages = [line.split(" ", 4)[-1] for line in log.splitlines() if " werkzeug " not in line]
    assert leak_guard.leaks("\n".join(messages)) == []


def cardconnect_body(credentials: dict[str, str], **changes: Any) -> dict[str, Any]:
    fields = {"gatewayTypeId": 2, "gatewayTypeName": "CardConnect", "merchantAccountId": UNMIGRATED_ACCOUNT,
              "credentials": credentials}
    return payment_body(**{**fields, **changes})


def test_a_retry_of_an_unknown_outcome_with_other_credentials_is_refused_not_charged_again(host: Host) -> None:
    meta = new_meta()
    host.cardconnect.set_fault("drop", match="/auth")  # charged at A, the answer lost
    first = host.pay(cardconnect_body(CREDENTIALS_A), meta)
    assert first.status_code == 502, first.text
    assert first.json()["detail"]["statusCode"] == "outcome_unknown"
    assert len(host.cardconnect.live_charges(MID_A)) == 1

    other = host.pay(cardconnect_body(CREDENTIALS_B), meta)
    assert other.status_code == 422, other.text
    assert other.json()["detail"]["statusCode"] == "idempotency_key_reused"
    assert host.cardconnect.live_charges(MID_B) == []
    assert [r for r in host.cardconnect.requests if MID_B in r.path or MID_B in json.dumps(r.body)] == []

    # The same request again finds the charge it made at A instead of making another.
    same = host.pay(cardconnect_body(CREDENTIALS_A), meta)
    assert same.status_code == 200, same.text
    (charge,) = host.cardconnect.live_charges(MID_A)
    assert same.json()["detail"]["paymentTransactionId"] == charge.retref


def test_credentials_the_gateway_refuses_are_the_callers_400_not_retried_and_not_re_read(host: Host) -> None:
    meta = new_meta()
    wrong = {**CREDENTIALS_A, "password": "wrong-password-value"}
    for _ in range(2):  # the key was given back: a retry is refused the same way, no 409, no replay
        refused = host.pay(cardconnect_body(wrong), meta)
        assert refused.status_code == 400, refused.text
        assert refused.json()["detail"]["statusCode"] == "invalid_request_credentials"
        assert "Retry-After" not in refused.headers
        assert "wrong-password-value" not in refused.text
    assert len(host.auth_requests()) == 2  # one per call: no second try with re-read credentials
    assert host.cardconnect.live_charges() == []

    paid = host.pay(cardconnect_body(CREDENTIALS_A), meta)
    assert paid.status_code == 200, paid.text


@pytest.mark.parametrize(
    ("credentials", "status"),
    [
        ({"username": USER_A, "merchantId": MID_A}, 400),  # a field missing
        ({**CREDENTIALS_A, "password": ""}, 400),
        ({**CREDENTIALS_A, "password": {"nested": PASSWORD_A}}, 422),  # not text
        ({f"field{i}": "x" for i in range(17)}, 422),  # more fields than any gateway has
    ],
)
def test_incomplete_or_malformed_body_credentials_are_4xx_without_a_gateway_call(
    host: Host, credentials: dict[str, Any], status: int
) -> None:
    refused = host.pay(cardconnect_body(credentials))
    assert refused.status_code == status, refused.text
    expected = "invalid_request_credentials" if status == 400 else "validation_error"
    assert refused.json()["detail"]["statusCode"] == expected
    assert "Retry-After" not in refused.headers
    assert PASSWORD_A not in refused.text
    assert host.cardconnect.requests == []


def test_an_account_with_a_stored_secret_stays_at_its_gateway(host: Host) -> None:
    elsewhere = host.pay(payment_body(merchantAccountId=STORED_CARDCONNECT_ACCOUNT, credentials={}))
    assert elsewhere.status_code == 400, elsewhere.text
    assert elsewhere.json()["detail"]["statusCode"] == "gateway_type_mismatch"

    at_its_gateway = host.pay(cardconnect_body(CREDENTIALS_A, merchantAccountId=STORED_CARDCONNECT_ACCOUNT))
    assert at_its_gateway.status_code == 200, at_its_gateway.text
    assert len(host.cardconnect.live_charges(MID_A)) == 1

    # An account without a stored secret is taken at the request's word: that is the setting's point.
    unmigrated = host.pay(payment_body(merchantAccountId=UNMIGRATED_ACCOUNT, credentials={}))
    assert unmigrated.status_code == 200, unmigrated.text
