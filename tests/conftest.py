"""Shared fixtures: a service wired to the simulator, request builders, and the leak guard.

The leak guard is autouse: every test's log records (and printed output) are captured at DEBUG, and
the test fails if any of them holds a card number, however it is written (see `card_numbers_in`), a
card token of a shape no log legitimately holds (see `card_tokens_in`), or a value the test
registered as sensitive (a CVV, an expiry, a card token's value, a credential).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateways.cards import luhn_valid
from shared import runtime
from shared.flow import PaymentService
from tests import support
from tests.support import SIMULATOR_ACCOUNT, make_settings, write_credentials

PAYMENT_METHOD_ID = re.compile(r"(?<![0-9A-Za-z_])pm_[0-9A-Za-z]{6,}")
"""A payment method id from a browser tokenizer (Payload, Stripe): a card token, which charges the
card. The gateways' own transaction ids (`txn_`, `pi_`, ...) have other prefixes."""
pytest_plugins = ["pytester"]

UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name}: {text}")


@dataclass
class LeakGuard:
    capture: _Capture
    sensitive: set[str] = field(default_factory=set)

    def watch(self, *values: str) -> None:
        # Values shorter than 3 characters would match everywhere; real CVVs and secrets are longer.
        self.sensitive.update(v for v in values if v and len(v) >= 3)

    @property
    def text(self) -> str:
        return "\n".join(self.capture.lines)

    def leaks(self, text: str | None = None) -> list[str]:
        text = self.text if text is None else text
        found = card_numbers_in(text) + card_tokens_in(text)
        # A UUID's 4-hex groups can spell a watched expiry (`500de511-1239-...`) by chance; no
        # secret ever hides inside a UUID, so they are read as the ids they are.
        without_ids = UUID.sub("<uuid>", text)
        for value in self.sensitive:
            if re.search(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])", without_ids):
                found.append(f"<sensitive value of length {len(value)}>")
        return found


def card_tokens_in(text: str) -> list[str]:
    """Every payment-method token in `text`, by shape, whether or not a test registered it (a
    CardSecure token is all digits, so it is caught as a registered value or as a card number)."""
    return [f"<card token of length {len(match.group())}>" for match in PAYMENT_METHOD_ID.finditer(text)]


def card_numbers_in(text: str) -> list[str]:
    """Every card number in `text` as digits: 13-19 digits (any script's) passing Luhn, in one run
    or in groups joined by one and the same separator of anything but letters and digits
    (`4242.4242.4242.4242`, `4242/4242/...`, `4242_4242_...`, `[4242, 4242, ...]`). Kept apart
    from `redact_card_numbers` on purpose, so that a bug there is caught here.

    What logs legitimately hold stays quiet: timestamps mix separators (`2026-12-03 15:23:14,482`);
    two groups joined by one point are a decimal number, whose fraction starts no card either; a
    run glued to a letter, or groups joined by `-`, `_`, `.` or `/` inside a token that holds a
    letter, are part of an id, a host or a path (a UUID, `sim_` + hex), not a number someone typed.
    """
    groups = list(re.finditer(r"\d+", text))
    found = []
    for first, start in enumerate(groups):
        before = text[max(start.start() - 2, 0) : start.start()]
        if before[-1:].isalpha() or (before[-1:] == "." and before[:1].isdigit()):
            continue
        digits, separator = "", ""
        for last in range(first, len(groups)):
            if last > first:
                between = text[groups[last - 1].end() : groups[last].start()]
                if any(c.isalnum() for c in between) or (separator and between != separator):
                    break
                separator = between
            digits += "".join(str(int(c)) for c in groups[last].group())
            if len(digits) > 19:
                break
            end = groups[last].end()
            glued = end < len(text) and text[end].isalpha()
            decimal = last == first + 1 and separator == "."
            if len(digits) >= 13 and not glued and not decimal and not _in_a_token_with_letters(
                text, start.start(), end, separator
            ) and luhn_valid(digits):
                found.append(digits)
    return found


def _in_a_token_with_letters(text: str, begin: int, end: int, separator: str) -> bool:
    if separator not in ("-", "_", ".", "/"):
        return False
    while begin > 0 and (text[begin - 1].isalnum() or text[begin - 1] == separator):
        begin -= 1
    while end < len(text) and (text[end].isalnum() or text[end] == separator):
        end += 1
    return any(c.isalpha() for c in text[begin:end])


@pytest.fixture(autouse=True)
def leak_guard(request: pytest.FixtureRequest) -> Iterator[LeakGuard]:
    root = logging.getLogger()
    capture = _Capture()
    previous = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    guard = LeakGuard(capture)
    request.node.stash[GUARD_KEY] = guard
    support.CURRENT_GUARD = guard
    try:
        yield guard
    finally:
        support.CURRENT_GUARD = None
        root.removeHandler(capture)
        root.setLevel(previous)
    leaks = guard.leaks()
    if leaks:
        pytest.fail(f"log output leaked card data or secrets: {leaks[:5]}")


GUARD_KEY = pytest.StashKey[LeakGuard]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Printed output counts too: a test whose captured stdout or stderr holds a card number or a
    value it registered fails, like one whose logs do."""
    report = yield
    guard = item.stash.get(GUARD_KEY, None)
    if guard is not None and report.when == "call" and report.passed:
        leaks = guard.leaks(report.capstdout + report.capstderr)
        if leaks:
            report.outcome = "failed"
            report.longrepr = f"printed output leaked card data or secrets: {leaks[:5]}"
    return report


@pytest.fixture
def simulator_service(tmp_path: Path) -> Iterator[PaymentService]:
    """The process's service on the simulator with file credentials and SQLite idempotency."""
    settings = make_settings(tmp_path)
    write_credentials(
        settings.local_credentials_file,
        {SIMULATOR_ACCOUNT: {"gatewayTypeId": 900, "credentials": {}}, 1002: {"gatewayTypeId": 900}},
    )
    service = runtime.build_service(settings)
    runtime.install(service)
    yield service
    runtime.install(None)




@pytest.fixture(scope="session")
def azurite() -> Iterator[str]:
    """A connection string for Azurite's Table service, started once per session."""
    from tests.azurite import azurite_table

    with azurite_table() as connection_string:
        yield connection_string
