"""Property tests of the contract's field rules, through the parser the service uses.

Bodies are JSON text parsed by `shared.flow.parse_body` (Decimal from the text, never a float), so
what is tested is what a request meets. `today` and `max_amount` come in through the same context
the service passes.
"""

from __future__ import annotations

import datetime as dt
import json
import string
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from shared import runtime
from shared.contract import CURRENCIES, MAX_ID, PaymentBody, RefundBody, luhn_valid
from shared.errors import InvalidRequest
from shared.flow import Operation, parse_body
from shared.settings import Settings
from tests.support import make_settings, new_meta, write_credentials

MAX_AMOUNT = Settings().max_amount
TODAY = dt.date(2031, 7, 9)
CONTEXT = {"max_amount": MAX_AMOUNT, "today": TODAY}
PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

BASE_PAYMENT: dict[str, Any] = {
    "gatewayTypeId": 900,
    "merchantAccountId": 1001,
    "userId": 42,
    "account": "4242424242424242",
    "expDate": "1239",
    "cvv2": "123",
    "amount": "25.00",  # raw JSON number text, see _payment_json
    "currencyType": 840,
}


def _payment_json(**overrides: Any) -> bytes:
    """JSON text of a payment; `amount` is given as the literal number text to put in the body."""
    values = {**BASE_PAYMENT, **overrides}
    amount = values.pop("amount")
    text = json.dumps(values)
    return (text[:-1] + f', "amount": {amount}}}').encode()


def _parse(body: bytes, model: type = PaymentBody, context: dict[str, Any] | None = None) -> Any:
    return parse_body(model, body, context or CONTEXT)


def _accepted(body: bytes, model: type = PaymentBody) -> bool:
    try:
        _parse(body, model)
    except InvalidRequest:
        return False
    return True


def _fields(error: InvalidRequest) -> set[str]:
    return {e["field"] for e in error.errors or []}


# --- card numbers ----------------------------------------------------------------------------


@st.composite
def luhn_cards(draw: st.DrawFn) -> str:
    length = draw(st.integers(min_value=13, max_value=19))
    body = draw(st.text(alphabet=string.digits, min_size=length - 1, max_size=length - 1))
    return next(body + d for d in string.digits if luhn_valid(body + d))


@PROPERTY_SETTINGS
@given(card=luhn_cards(), data=st.data())
@example(card="4242424242424242", data=None)
def test_a_luhn_valid_card_is_accepted_and_any_single_digit_change_is_refused(card: str, data: Any) -> None:
    request = _parse(_payment_json(account=card))
    assert request.account == card
    if data is None:
        position, digit = 0, "5"
    else:
        position = data.draw(st.integers(min_value=0, max_value=len(card) - 1))
        digit = data.draw(st.sampled_from([d for d in string.digits if d != card[position]]))
    changed = card[:position] + digit + card[position + 1 :]
    with pytest.raises(InvalidRequest) as refused:
        _parse(_payment_json(account=changed))
    assert _fields(refused.value) == {"account"}


@PROPERTY_SETTINGS
@given(length=st.integers(min_value=2, max_value=25).filter(lambda n: not 13 <= n <= 19), data=st.data())
def test_a_card_of_the_wrong_length_is_refused_even_when_luhn_valid(length: int, data: Any) -> None:
    digits = data.draw(st.text(alphabet=string.digits, min_size=length - 1, max_size=length - 1))
    card = next(digits + d for d in string.digits if luhn_valid(digits + d))
    assert not _accepted(_payment_json(account=card))


@PROPERTY_SETTINGS
@given(
    card=luhn_cards(), junk=st.sampled_from(["-", " 4", "a", "\u0664", "\uff14", "\u00b9", "\u0000"]), data=st.data()
)
def test_a_card_with_anything_but_ascii_digits_inside_is_refused(card: str, junk: str, data: Any) -> None:
    position = data.draw(st.integers(min_value=1, max_value=len(card) - 1))
    assert not _accepted(_payment_json(account=card[:position] + junk + card[position:]))


# --- expiry ----------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(month=st.integers(min_value=0, max_value=99), year=st.integers(min_value=0, max_value=99))
@example(month=TODAY.month, year=TODAY.year % 100)  # this month: still valid
@example(month=TODAY.month - 1, year=TODAY.year % 100)  # last month: expired
@example(month=1, year=TODAY.year % 100 + 1)
@example(month=12, year=TODAY.year % 100 - 1)
def test_expiry_is_accepted_iff_month_is_1_to_12_and_not_before_this_month(month: int, year: int) -> None:
    exp = f"{month:02d}{year:02d}"
    expected = 1 <= month <= 12 and (2000 + year, month) >= (TODAY.year, TODAY.month)
    assert _accepted(_payment_json(expDate=exp)) == expected, exp


@PROPERTY_SETTINGS
@given(exp=st.text(alphabet=string.digits + "/ -a٣", min_size=0, max_size=6))
def test_expiry_that_is_not_four_ascii_digits_is_refused(exp: str) -> None:
    assume(not (len(exp.strip()) == 4 and exp.strip().isascii() and exp.strip().isdigit()))
    assert not _accepted(_payment_json(expDate=exp))


def test_expiry_uses_the_real_clock_without_a_given_today() -> None:
    now = dt.datetime.now(dt.UTC).date()
    this_month = f"{now.month:02d}{now.year % 100:02d}"
    last = now.replace(day=1) - dt.timedelta(days=1)
    last_month = f"{last.month:02d}{last.year % 100:02d}"
    context = {"max_amount": MAX_AMOUNT}
    assert parse_body(PaymentBody, _payment_json(expDate=this_month), context).expDate == this_month
    with pytest.raises(InvalidRequest):
        parse_body(PaymentBody, _payment_json(expDate=last_month), context)


# --- amounts ---------------------------------------------------------------------------------

two_places = st.decimals(min_value=Decimal("0.01"), max_value=MAX_AMOUNT, places=2, allow_nan=False)


@PROPERTY_SETTINGS
@given(amount=two_places, style=st.sampled_from(["plain", "trailing-zero", "exponent"]))
@example(amount=Decimal("0.01"), style="plain")
@example(amount=MAX_AMOUNT, style="plain")
@example(amount=Decimal("0.57"), style="plain")  # 57 * 0.01 is 0.5700000000000001 as a float
@example(amount=Decimal("1234567.89").min(MAX_AMOUNT), style="plain")
def test_an_amount_with_at_most_two_places_in_range_is_accepted_exactly(amount: Decimal, style: str) -> None:
    text = {"plain": f"{amount:f}", "trailing-zero": f"{amount:f}0", "exponent": f"{amount.scaleb(2):f}e-2"}[style]
    for model, make in ((PaymentBody, _payment_json), (RefundBody, _refund_json)):
        parsed = _parse(make(amount=text), model).amount
        assert parsed == amount and isinstance(parsed, Decimal), (text, parsed)
        assert str(parsed.normalize()) == str(amount.normalize())


@PROPERTY_SETTINGS
@given(
    amount=st.integers(min_value=3, max_value=8)
    .flatmap(lambda p: st.decimals(min_value=Decimal("0.001"), max_value=MAX_AMOUNT, places=p, allow_nan=False))
    .filter(lambda d: d != d.quantize(Decimal("0.01")))
)
@example(amount=Decimal("0.001"))
@example(amount=Decimal("25.005"))
def test_an_amount_with_more_than_two_places_is_refused(amount: Decimal) -> None:
    with pytest.raises(InvalidRequest) as refused:
        _parse(_payment_json(amount=f"{amount:f}"))
    assert _fields(refused.value) == {"amount"}
    assert not _accepted(_refund_json(amount=f"{amount:f}"), RefundBody)


@PROPERTY_SETTINGS
@given(amount=st.decimals(max_value=Decimal(0), places=2, allow_nan=False, allow_infinity=False))
@example(amount=Decimal("0"))
@example(amount=Decimal("-0.00"))
def test_an_amount_of_zero_or_less_is_refused(amount: Decimal) -> None:
    assert not _accepted(_payment_json(amount=f"{amount:f}"))
    assert not _accepted(_refund_json(amount=f"{amount:f}"), RefundBody)


@PROPERTY_SETTINGS
@given(excess=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1e12"), places=2, allow_nan=False))
def test_an_amount_over_the_maximum_is_refused(excess: Decimal) -> None:
    amount = MAX_AMOUNT + excess
    with pytest.raises(InvalidRequest) as refused:
        _parse(_payment_json(amount=f"{amount:f}"))
    assert _fields(refused.value) == {"amount"}
    assert not _accepted(_refund_json(amount=f"{amount:f}"), RefundBody)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e400", "true", "null", "[1]"])
def test_amounts_that_are_not_finite_numbers_are_refused(text: str) -> None:
    assert not _accepted(_payment_json(amount=text))


@PROPERTY_SETTINGS
@given(amount=st.one_of(two_places.map(lambda d: f"{d:f}"), st.text(max_size=12)))
@example(amount="\u0661\u0662\u0663")
@example(amount="1_000")
@example(amount="\uff11\uff12\uff13")
@example(amount=" 25.00 ")
def test_an_amount_sent_as_a_json_string_is_refused_whatever_it_holds(amount: str) -> None:
    for model, make in ((PaymentBody, _payment_json), (RefundBody, _refund_json)):
        with pytest.raises(InvalidRequest) as refused:
            _parse(make(amount=json.dumps(amount)), model)
        assert _fields(refused.value) == {"amount"}


def _refund_json(**overrides: Any) -> bytes:
    values = {"gatewayTypeId": 900, "merchantAccountId": 1001, "userId": 42, "paymentTransactionId": "p1"}
    amount = overrides.pop("amount")
    values.update(overrides)
    return (json.dumps(values)[:-1] + f', "amount": {amount}}}').encode()


# --- cvv2, currency --------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(cvv=st.text(alphabet=string.digits + "a\u0663\uff13\u00b3-x", min_size=0, max_size=6))
@example(cvv="123")
@example(cvv="1234")
@example(cvv="12")
@example(cvv="12345")
@example(cvv="١٢٣")
def test_cvv_is_accepted_iff_three_or_four_ascii_digits(cvv: str) -> None:
    expected = 3 <= len(cvv) <= 4 and all(c in string.digits for c in cvv)
    assert _accepted(_payment_json(cvv2=cvv)) == expected, cvv


@pytest.mark.parametrize("padded", [" 123", "123 ", "\t1234\n"])
def test_surrounding_whitespace_is_trimmed_before_the_rules(padded: str) -> None:
    assert _parse(_payment_json(cvv2=padded)).cvv2 == padded.strip()


@PROPERTY_SETTINGS
@given(currency=st.integers(min_value=-(2**40), max_value=2**40))
def test_currency_is_accepted_iff_one_of_the_four(currency: int) -> None:
    assert _accepted(_payment_json(currencyType=currency)) == (currency in CURRENCIES)


ID_FIELDS = ("gatewayTypeId", "merchantAccountId", "userId")


@PROPERTY_SETTINGS
@given(
    field=st.sampled_from(ID_FIELDS),
    value=st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.sampled_from(["true", "false", "null"]),
        st.integers(min_value=1, max_value=MAX_ID).map(lambda i: f'"{i}"'),
        st.integers(min_value=1, max_value=MAX_ID).map(lambda i: f"{i}.0"),
    ),
)
@example(field="merchantAccountId", value=str(MAX_ID))
@example(field="merchantAccountId", value=str(MAX_ID + 1))
@example(field="merchantAccountId", value="1" + "0" * 1000)
@example(field="userId", value="true")
@example(field="userId", value="0")
@example(field="merchantAccountId", value="0")
def test_an_id_is_accepted_iff_a_json_integer_in_range(field: str, value: str) -> None:
    """`value` is the JSON text put in the body. A user id may be 0 (none); ids looked up may not."""
    values = {k: v for k, v in BASE_PAYMENT.items() if k not in (field, "amount")}
    body = json.dumps(values)[:-1] + f', "{field}": {value}, "amount": 25.00}}'
    lowest = 0 if field == "userId" else 1
    expected = value.lstrip("-").isdigit() and lowest <= int(value) <= MAX_ID
    assert _accepted(body.encode()) == expected, body


# --- nothing of the card in a 422 ------------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp: Path = tmp_path_factory.mktemp("properties")
    settings_ = make_settings(tmp)
    write_credentials(settings_.local_credentials_file, {1001: {"gatewayTypeId": 900, "credentials": {}}})
    return runtime.build_service(settings_)


card_like = st.one_of(
    luhn_cards(),
    st.text(alphabet=string.digits, min_size=8, max_size=25),
    st.builds(lambda c, s: c[:s] + "x" + c[s:], luhn_cards(), st.integers(1, 12)),
)


@PROPERTY_SETTINGS
@given(
    card=card_like,
    broken=st.sampled_from(["expDate", "cvv2", "amount", "currencyType", "none"]),
    as_number=st.booleans(),
)
def test_a_422_never_contains_the_submitted_card_number(service: Any, card: str, broken: str, as_number: bool) -> None:
    breakage: dict[str, Any] = {
        "expDate": {"expDate": "1399"},
        "cvv2": {"cvv2": card[:5]},
        "amount": {"amount": "0.001"},
        "currencyType": {"currencyType": 1},
        "none": {},
    }[broken]
    account: Any = int(card) if as_number and card.isdigit() else card
    body = _payment_json(account=account, **breakage)
    reply = service.handle(Operation.PAYMENT, {"BVMeta": json.dumps(new_meta())}, body)
    if reply.status != 422:
        # Nothing was broken and the card was valid: the simulator charged or declined it.
        assert broken == "none" and reply.status in (200, 400, 502), reply.body
        return
    detail = json.loads(reply.body)["detail"]
    assert detail["errors"], reply.body
    assert card not in reply.body
    for part in (card[i : i + 8] for i in range(0, max(len(card) - 7, 1))):
        if part.isdigit() and len(part) == 8:
            assert part not in reply.body, part


# str.isdigit() is Unicode-aware: superscript, Arabic-Indic or fullwidth digits must not pass as
# the last four (they would reach the audit log as such).
@pytest.mark.parametrize(
    "masked",
    ["xxxxxxxxxxxx\u00b9\u00b2\u00b3\u2074", "xxxxxxxx\u0664\u0664\u0664\u0664", "xxxx\uff11\uff12\uff13\uff14"],
)
def test_masked_card_number_needs_ascii_digits(masked: str) -> None:
    body = {
        "gatewayTypeId": 900,
        "merchantAccountId": 1001,
        "userId": 1,
        "paymentTransactionId": "p1",
        "maskedCardNumber": masked,
    }
    assert not _accepted(json.dumps(body).encode(), RefundBody)
