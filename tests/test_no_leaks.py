"""Card numbers, CVVs, expiry dates and credentials never reach a log, an exception, a stored record
or a response, whatever the outcome. (The autouse leak guard checks every other test's logs too.)"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateways.base import Card, GatewayError
from shared import errors, runtime
from shared.contract import PaymentBody
from shared.credentials import MerchantAccount
from shared.settings import Settings
from tests.conftest import LeakGuard
from tests.fakes import CardConnectFake
from tests.support import install_service, make_settings, new_meta, pay, payment_body, refund, refund_body

PAN, CVV, EXPIRY = "4788250000121443", "8642", "0741"
USER, PASSWORD, MID = "leak-user-name", "leak-password-value", "496160873888"


@pytest.fixture
def cardconnect(tmp_path: Path, leak_guard: LeakGuard) -> Iterator[CardConnectFake]:
    leak_guard.watch(CVV, EXPIRY, USER, PASSWORD)
    with CardConnectFake(merchants={MID: (USER, PASSWORD)}) as fake:
        settings = make_settings(tmp_path, cardconnect_url=fake.base_url, gateway_timeout_seconds=0.5)
        settings.local_credentials_file.write_text(json.dumps({
            "2001": {"gatewayTypeId": 2, "credentials": {"username": USER, "password": PASSWORD, "merchantId": MID}},
            "2002": {"gatewayTypeId": 2, "credentials": {"username": USER, "password": "wrong", "merchantId": MID}},
        }))
        install_service(settings)
        yield fake
        runtime.install(None)


def body(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"gatewayTypeId": 2, "merchantAccountId": 2001, "account": PAN, "cvv2": CVV,
                              "expDate": EXPIRY, "comment": f"card {PAN} typed into the comment"}
    return payment_body(**{**fields, **changes})


def test_no_outcome_leaks_card_data_or_credentials(
    cardconnect: CardConnectFake, leak_guard: LeakGuard, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    raised: list[str] = []
    original = errors.from_gateway_error

    def record_exception_text(error: GatewayError, detail: str) -> errors.Failure:
        raised.append(f"{type(error).__name__}: {error} {error.message} {error.code}")
        return original(error, detail)

    monkeypatch.setattr("shared.flow.from_gateway_error", record_exception_text)
    answers = [
        pay(body()),  # approved
        pay(body(account="4387751111111053")),  # declined
        pay(body(merchantAccountId=2002)),  # credentials rejected
        pay(body(cvv2="12")),  # validation error
        pay(body(credentials={"username": USER, "password": PASSWORD})),  # credentials in the body
        pay(json.dumps(body()).encode()[:-5]),  # truncated JSON holding the card
    ]
    cardconnect.set_fault("slow", seconds=1.5, match="PUT /cardconnect/rest/auth")
    answers.append(pay(body(), new_meta()))  # outcome unknown
    payment_id = answers[0].detail["paymentTransactionId"]
    answers.append(refund(refund_body(payment_id, gatewayTypeId=2, merchantAccountId=2001,
                                      maskedCardNumber="xxxxxxxxxxxx1443")))

    assert [a.status for a in answers] == [200, 400, 503, 422, 400, 422, 502, 200]
    assert raised, "the gateway failures should have raised"
    everything = "\n".join([*(a.text for a in answers), *(json.dumps(a.headers) for a in answers), *raised,
                            leak_guard.text])
    assert PAN not in everything
    assert leak_guard.leaks(everything) == []
    assert "[card number removed]" in leak_guard.text  # the comment was redacted, not dropped

    store = runtime.service().idempotency
    stored = [store.get(f"payment:2001:{a.headers['BVMeta'] and json.loads(a.headers['BVMeta'])['transactionId']}")
              for a in answers if a.status in (200, 400, 502)]
    stored_text = json.dumps([[r.fingerprint, r.body, r.context] for r in stored if r is not None])
    assert PAN not in stored_text and leak_guard.leaks(stored_text) == []


def test_reprs_hide_secrets() -> None:
    card = Card(PAN, 7, 2041, CVV)
    account = MerchantAccount(2001, 2, {"username": USER, "password": PASSWORD}, "v1")
    settings = Settings(idempotency_hmac_key="hmac-secret-value", storage_connection_string="AccountKey=abc")
    parsed = PaymentBody.model_validate(body(comment=None), context={})
    text = " ".join(map(repr, (card, account, settings, parsed)))
    for secret in (PAN, CVV, PASSWORD, USER, "hmac-secret-value", "AccountKey=abc", EXPIRY):
        assert secret not in text
    assert "1443" in repr(card)


@pytest.mark.usefixtures("simulator_service")
def test_a_gateway_message_echoing_a_card_number_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateways.base import Declined
    from gateways.simulator import SimulatorGateway

    def echoing_decline(gateway: SimulatorGateway, sale: Any) -> Any:
        raise Declined("card 4242 4242 4242 4242 was declined", code="card_declined")

    monkeypatch.setattr(SimulatorGateway, "process_payment", echoing_decline)
    declined = pay(payment_body())
    assert declined.status == 400
    assert "4242 4242 4242 4242" not in declined.text
    assert "[card number removed]" in declined.detail["responseMessage"]
