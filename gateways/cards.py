"""Card and money helpers every gateway and the flow share: the Luhn check, card-number redaction
in free text, and whole-cent amounts. A leaf: it imports only the gateway errors."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from gateways.errors import OutcomeUnknown, RequestRejected

CENT = Decimal("0.01")


def luhn_valid(digits: str) -> bool:
    """The card-number checksum; also how a digit run in text is recognised as a card number."""
    if not (digits.isascii() and digits.isdigit()) or len(digits) < 2:
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


_DIGITS = re.compile(r"\d+")  # any script's decimal digits: a card number in Arabic-Indic digits is one too
CARD_DIGITS = range(13, 20)


def redact_card_numbers(text: str, replacement: str = "[card number removed]") -> str:
    """`text` with every card number replaced: 13 to 19 digits that pass Luhn, written in one run or
    in groups joined by anything that is neither a letter nor a digit (spaces, dashes, dots,
    slashes, underscores, commas, line breaks, in any number), as people type them.

    Within a longer chain of numbers ("room 12, 4242 4242 4242 4242") each span of whole groups is
    tried, so a card next to other numbers is still found. A group longer than 19 digits is not a
    card. Digits that fail Luhn are left: every issued card number passes it, and removing every
    13-19 digit span would also remove the dates, phone numbers and references in free text that
    operations read (a mistyped card number is refused by the contract and the gateway anyway).
    """
    groups = list(_DIGITS.finditer(text))
    spans: list[tuple[int, int]] = []
    start = 0
    for index in range(1, len(groups) + 1):
        if index == len(groups) or not _separator(text[groups[index - 1].end() : groups[index].start()]):
            spans.extend(_card_spans(groups[start:index]))
            start = index
    for begin, end in reversed(_merged(spans)):
        text = text[:begin] + replacement + text[end:]
    return text


def _separator(between: str) -> bool:
    return not any(char.isalnum() for char in between)


def _card_spans(chain: list[re.Match[str]]) -> list[tuple[int, int]]:
    found = []
    for first in range(len(chain)):
        digits = ""
        for last in range(first, len(chain)):
            digits += "".join(str(int(char)) for char in chain[last].group())
            if len(digits) > CARD_DIGITS.stop - 1:
                break
            if len(digits) in CARD_DIGITS and luhn_valid(digits):
                found.append((chain[first].start(), chain[last].end()))
    return found


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for begin, end in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((begin, end))
    return merged


def whole_cents(amount: Decimal) -> Decimal:
    """`amount` with exactly two places; anything but a positive whole number of cents is refused
    before it can reach a gateway's wire."""
    try:
        exact = amount.is_finite() and amount > 0 and amount == amount.quantize(CENT)
    except InvalidOperation:
        exact = False
    if not exact:
        raise RequestRejected(f"amount {amount} is not a positive amount in cents", code="amount")
    return amount.quantize(CENT)


def answered_amount(value: object, gateway: str) -> Decimal:
    """An amount from a gateway's answer, to the cent. One that is not a finite decimal (NaN, a
    word, a list) means the answer is malformed: the gateway may have acted, so the outcome is
    unknown, never a plain failure."""
    try:
        amount = Decimal(str(value))
        if amount.is_finite():
            return amount.quantize(CENT)
    except (InvalidOperation, ValueError):
        pass
    raise OutcomeUnknown(f"{gateway} answered with an unreadable amount", code="unreadable_response", http_status=200)
