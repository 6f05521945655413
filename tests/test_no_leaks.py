"""Card numbers, CVVs, expiry dates and credentials never reach a log, an exception, a stored record
or a response, whatever the outcome. (The autouse leak guard checks every other test's logs too.)"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateways.base import Card
from gateways.errors import GatewayError
from shared import errors, runtime
from shared.contract import PaymentBody
from shared.credentials import MerchantAccount
from shared.settings import Settings
from tests.conftest import LeakGuard, card_numbers_in
from tests.fakes import CardConnectFake
from tests.support import install_service, make_settings, new_meta, pay, payment_body, refund, refund_body
from tests.timing import CLIENT_READ_SECONDS

PAN, CVV, EXPIRY = "4788250000121443", "8642", "0741"
USER, PASSWORD, MID = "leak-user-name", "leak-password-value", "496160873888"


@pytest.fixture
def cardconnect(tmp_path: Path, leak_guard: LeakGuard) -> Iterator[CardConnectFake]:
    leak_guard.watch(CVV, EXPIRY, USER, PASSWORD)
    with CardConnectFake(merchants={MID: (USER, PASSWORD)}) as fake:
        settings = make_settings(
            tmp_path,
            gateway_url_overrides={"CARDCONNECT_URL": fake.base_url},
            gateway_timeout_seconds=CLIENT_READ_SECONDS,
        )
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

    def record_exception_text(error: GatewayError, merchant_account_id: int | None = None) -> errors.Answer:
        raised.append(f"{type(error).__name__}: {error} {error.message} {error.code}")
        return original(error, merchant_account_id)

    monkeypatch.setattr("shared.flow.from_gateway_error", record_exception_text)
    answers = [
        pay(body()),  # approved
        pay(body(account="4387751111111053")),  # declined
        pay(body(merchantAccountId=2002)),  # credentials rejected
        pay(body(cvv2="12")),  # validation error
        pay(body(credentials={"username": USER, "password": PASSWORD})),  # credentials in the body
        pay(json.dumps(body()).encode()[:-5]),  # truncated JSON holding the card
    ]
    cardconnect.set_fault("slow", match="PUT /cardconnect/rest/auth")
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
    from gateways.errors import Declined
    from gateways.simulator import SimulatorGateway

    def echoing_decline(gateway: SimulatorGateway, sale: Any) -> Any:
        raise Declined("card 4242 4242 4242 4242 was declined", code="card_declined")

    monkeypatch.setattr(SimulatorGateway, "charge", echoing_decline)
    declined = pay(payment_body())
    assert declined.status == 400
    assert "4242 4242 4242 4242" not in declined.text
    assert "[card number removed]" in declined.detail["responseMessage"]


# --- the redactor ----------------------------------------------------------------------------

REMOVED = "[card number removed]"


@pytest.mark.parametrize(
    "written",
    [
        "4242424242424242",
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "4242.4242.4242.4242",
        "4242/4242/4242/4242",
        "4242_4242_4242_4242",
        "4242 - 4242 - 4242 - 4242",
        "4242, 4242, 4242, 4242",
        "[4242][4242][4242][4242]",
        "4 2 4 2 4 2 4 2 4 2 4 2 4 2 4 2",
        "3782.822463.10005",  # Amex grouping, 15 digits
        "4788\t2500\n0012\r1443",
        "\u0664\u0662" * 8,  # Arabic-Indic digits
        " ".join(["\uff14\uff12\uff14\uff12"] * 4),  # fullwidth digits
    ],
)
def test_a_card_number_with_any_separators_is_redacted(written: str) -> None:
    from gateways.cards import redact_card_numbers

    for text in (written, f"pay with {written} please", f"order 12, card {written}.", f"card:{written}"):
        redacted = redact_card_numbers(text)
        assert REMOVED in redacted, text
        assert "4242" not in redacted and "1443" not in redacted and "10005" not in redacted, redacted


@pytest.mark.parametrize(
    "text",
    [
        "4242.4242.4242.4241",  # fails Luhn: not a card number (decision: see redact_card_numbers)
        "424242424242",  # 12 digits
        "42424242424242424242",  # 20 digits in one run: no card is that long
        "Course 101, 2026-01-15",
        "retref 123456789012 for order BVP6f1c2a0e3b7e4f7a",
        "4242x4242x4242x4242",  # letters are not separators
    ],
)
def test_text_without_a_card_number_is_left_alone(text: str) -> None:
    from gateways.cards import redact_card_numbers

    assert redact_card_numbers(text) == text


def test_only_the_card_is_removed_from_a_longer_run_of_numbers() -> None:
    from gateways.cards import redact_card_numbers

    redacted = redact_card_numbers("room 12, 4242 4242 4242 4242, 7 seats")
    assert redacted == f"room 12, {REMOVED}, 7 seats"


@pytest.mark.usefixtures("simulator_service")
@pytest.mark.parametrize("separator", [" ", "-", ".", "/", "_", " / "])
def test_free_text_reaches_the_audit_line_without_card_numbers(
    separator: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="paymentgateway.audit")
    card = separator.join(["4788", "2500", "0012", "1443"])
    free_text = {"comment": f"card {card}", "gatewayTypeName": f"Sim {card}"[:100], "name": f"Ada {card}",
                 "street": f"{card} Main St", "userName": f"ada{separator}{card}"}
    paid = pay(payment_body(**free_text))
    assert paid.status == 200, paid.text
    refunded = refund(refund_body(paid.detail["paymentTransactionId"], comment=f"refund {card}",
                                  gatewayTypeName=f"Sim {card}"))
    assert refunded.status == 200, refunded.text
    declined = pay(payment_body(account="4000000000000002", gatewayTypeName=f"Sim {card}", comment=card))
    assert declined.status == 400
    lines = [r.getMessage() for r in caplog.records if r.name == "paymentgateway.audit"]
    assert len(lines) == 3
    for line in lines:
        data = json.loads(line)["data"]
        for name in ("gatewayTypeName", "comment"):
            assert REMOVED in data[name] and "1443" not in data[name] and "4788" not in data[name], line
        assert card_numbers_in(line) == [], line


@pytest.mark.usefixtures("simulator_service")
def test_an_approval_message_echoing_a_card_number_is_redacted_in_the_answer_and_the_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gateways.base import GatewayResult
    from gateways.simulator import SimulatorGateway

    def echoing_approval(gateway: SimulatorGateway, sale: Any) -> GatewayResult:
        return GatewayResult("sim_echo", "sale", "approved", "approved card 4242.4242.4242.4242", 200)

    monkeypatch.setattr(SimulatorGateway, "charge", echoing_approval)
    meta = new_meta()
    paid = pay(payment_body(), meta)
    assert paid.status == 200
    assert paid.detail["responseMessage"] == f"approved card {REMOVED}"
    record = runtime.service().idempotency.get(f"payment:1001:{meta['transactionId']}")
    assert record is not None and record.body is not None
    assert "4242.4242" not in record.body and REMOVED in record.body


@pytest.mark.usefixtures("simulator_service")
def test_the_audit_line_keeps_the_transaction_id_whole(caplog: pytest.LogCaptureFixture) -> None:
    # Its digit groups 022-4057-9094-103 read as a Luhn-valid 14-digit number, which a redactor of
    # free text would remove; the key operations search by must stay whole.
    from gateways.cards import redact_card_numbers

    key = "e1ac20fc-a022-4057-9094-103cf80ba14d"
    assert redact_card_numbers(key) != key
    caplog.set_level(logging.INFO, logger="paymentgateway.audit")
    assert pay(payment_body(), new_meta(transactionId=key)).status == 200
    (line,) = [r.getMessage() for r in caplog.records if r.name == "paymentgateway.audit"]
    assert json.loads(line)["transactionId"] == key
