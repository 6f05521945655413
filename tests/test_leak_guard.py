"""The suite-wide leak guard itself: what it catches and what it leaves alone."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from tests import support
from tests.conftest import LeakGuard, _Capture


def guard_with(*lines: str) -> LeakGuard:
    capture = _Capture()
    for line in lines:
        capture.emit(logging.LogRecord("t", logging.INFO, __file__, 1, line, None, None))
    return LeakGuard(capture)


def test_catches_luhn_valid_card_numbers_and_registered_values() -> None:
    guard = guard_with("charged 4242424242424242 ok", "cvv 8642 sent", "user leak-user")
    guard.watch("8642", "leak-user", "12")  # too short a value is not watched: it would match anywhere
    assert sorted(guard.leaks()) == [
        "4242424242424242",
        "<sensitive value of length 4>",
        "<sensitive value of length 9>",
    ]


def test_leaves_non_cards_alone() -> None:
    guard = guard_with(
        "retref 123456789012 and 4242424242424241",  # too short; fails Luhn
        "updated_at 1764305362.05646447597258",  # a fraction, not a card
        "order BVP8642ab and port :18642",  # a watched value inside other characters
    )
    guard.watch("8642")
    assert guard.leaks() == []



def test_a_watched_expiry_spelled_by_a_uuids_group_is_not_a_leak() -> None:
    in_an_id = guard_with('{"transactionId": "500de511-1239-4e1f-9a3b-0c5d2f7e8a91"}')
    in_an_id.watch("1239")
    assert in_an_id.leaks() == []
    bare = guard_with('{"transactionId": "500de511-1239-4e1f-9a3b-0c5d2f7e8a91"}', "expiry 1239 logged")
    bare.watch("1239")
    assert bare.leaks() == ["<sensitive value of length 4>"]

def test_the_expiry_is_watched_also_as_gateways_write_it_and_responses_are_checked(
    leak_guard: LeakGuard,
) -> None:
    support.watch_sent({"cvv2": "8642", "expDate": "0931"})
    support.check_no_leaks('{"responseMessage": "declined [removed]"}')
    for echoed in ("exp 09/31", "exp 0931", "cvv 8642", "card 4242424242424242"):
        with pytest.raises(AssertionError, match="a response leaked"):
            support.check_no_leaks(f'{{"responseMessage": "{echoed}"}}')


@pytest.mark.parametrize(
    "written",
    [
        "4788250000121443",
        "4788 2500 0012 1443",
        "4788-2500-0012-1443",
        "4788.2500.0012.1443",
        "4788/2500/0012/1443",
        "4788_2500_0012_1443",
        "4788 / 2500 / 0012 / 1443",
        "[4788, 2500, 0012, 1443]",
        "\u0664\u0667\u0668\u0668\u0662\u0665\u0660\u0660\u0660\u0660\u0661\u0662\u0661\u0664\u0664\u0663",
    ],
)
def test_catches_a_card_number_with_any_separators(written: str) -> None:
    guard = guard_with(f"charged {written} ok")
    assert len(guard.leaks()) == 1, written


def test_catches_a_card_number_in_the_audit_lines_free_text_fields() -> None:
    for field in ("gatewayTypeName", "comment", "name", "street", "userName", "paymentTransactionId"):
        line = json.dumps({"service": "PaymentGatewayAPI", "data": {"status": 200, field: "x 4788.2500.0012.1443"}})
        assert guard_with(line).leaks(), field


@pytest.mark.parametrize(
    "line",
    [
        "updated_at 1764305362.0564644759",  # a decimal number, not a card written with dots
        "2026-12-03 15:23:14,482 devhost listening on http://127.0.0.1:39915\n2026-12-03 15:23:14,482",
        "transactionId e1ac20fc-4022-4057-9094-103412345678 and 2b8a6f39-1220-4a95-9302-120020403155",
        "GET /inquire/1234567890123/496160873888 and v1.2026.1203.1523",
        "paymentTransactionId sim_4788250000121443ab and sim_ab4788250000121443",  # digits inside an id
        "4788.2500.0012.1442",  # fails Luhn
        '{"universityId": 7, "userId": 42, "amount": "25.00", "currencyType": 840}',
    ],
)
def test_leaves_decimals_ids_and_non_cards_alone(line: str) -> None:
    assert guard_with(line).leaks() == []


@pytest.mark.parametrize(
    "line",
    [
        "charging payment method pm_3bW9JMoHcb1u4GHb8m7Dl",  # Payload Secure Input
        '{"payment_method": "pm_1PqRsTuVwXyZ0123456789ab"}',  # Stripe Elements
        "payment_method_id=pm_Q7x2LmN9",
    ],
)
def test_catches_a_payment_method_token_in_a_log_line_unregistered(line: str) -> None:
    token = re.search(r"pm_\w+", line)
    assert token is not None and guard_with(line).leaks() == [f"<card token of length {len(token.group())}>"]


def test_catches_a_sent_card_token_in_a_log_line_and_in_a_response(leak_guard: LeakGuard) -> None:
    cardsecure = "9418594164531111"  # CardSecure tokens need not pass Luhn: caught as the value sent
    opaque = "eyJjb2RlIjoiNTBfMl8wNjAwMDUz"  # an Accept.js nonce
    for token in ({"type": "cardsecure", "value": cardsecure}, {"type": "authorizenet_opaque", "value": opaque}):
        support.watch_sent({"token": token, "expDate": "1239"})
    assert leak_guard.leaks(f"account {cardsecure} sent") == ["<sensitive value of length 16>"]
    assert leak_guard.leaks(f"dataValue={opaque}") == ["<sensitive value of length 28>"]
    with pytest.raises(AssertionError, match="a response leaked"):
        support.check_no_leaks(f'{{"responseMessage": "token {cardsecure} declined"}}')


def test_a_token_in_a_log_line_fails_the_test(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the autouse fixture itself, in a separate pytest run (whose log lines this test's own
    guard does not see): a test that logs a token fails, one that logs its transaction id passes."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    pytester.makeconftest("from tests.conftest import leak_guard, pytest_runtest_makereport  # noqa: F401")
    pytester.makepyfile(
        """
        import logging

        def test_logs_a_payment_method():
            logging.getLogger("paymentgateway.flow").info("sale with pm_3bW9JMoHcb1u4GHb8m7Dl")

        def test_logs_its_transaction_only():
            logging.getLogger("paymentgateway.flow").info("sale txn_3bW9JMoHcb1u4GHb8m7Dl approved")
        """
    )
    # Its output is printed into this test's own, where the guard would find the token: no captured
    # logs and one-line tracebacks keep it to what the inner guard says.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--show-capture=no", "--tb=line")
    result.assert_outcomes(passed=2, errors=1)
    assert "log output leaked card data or secrets: ['<card token of length 24>']" in result.stdout.str()
    assert "ERROR at teardown of test_logs_a_payment_method" in result.stdout.str()


def test_leaves_the_gateways_transaction_ids_alone() -> None:
    assert guard_with("sale txn_3bW9JMoHcb1u4GHb8m7Dl and pi_3PqRsTuVwXyZ01 and spm_abcdefgh approved").leaks() == []
