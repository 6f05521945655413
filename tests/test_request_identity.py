"""One request is one request: however the key is spelled, however the body writes its values.

The key is canonicalised once (scope and order id both use it); the fingerprint compares values, not
spellings, and holds no CVV; order ids never contain a digit run CardPointe would mask.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateways.cardconnect import ORDER_ID
from gateways.cards import luhn_valid
from gateways.payload import ORDER_NUMBER
from shared.contract import PaymentBody
from shared.flow import Operation, PaymentService, canonical_key, order_id_for, request_identity
from shared.idempotency import IdempotencyStore
from tests.fakes.cardconnect import CardConnectFake, masked_order_id
from tests.support import SIMULATOR_ACCOUNT, new_meta, pay, payment_body, refund, refund_body
from tests.test_flow_gateways import Gateways, cc_payment

# Fixtures of those modules, imported under their own names so pytest finds them here.
from tests.test_flow_gateways import gateways as gateways
from tests.test_idempotency import GatewaySpy, live_charges
from tests.test_idempotency import service as service
from tests.test_idempotency import spy as spy
from tests.test_idempotency import store as store

CARD_RUN = re.compile(r"\d{13,}")


def luhn_run(text: str) -> str | None:
    """The first 13-19 digit stretch of `text` that passes Luhn (what CardPointe masks)."""
    for match in CARD_RUN.finditer(text):
        digits = match.group()
        for length in range(13, min(19, len(digits)) + 1):
            for start in range(len(digits) - length + 1):
                if luhn_valid(digits[start : start + length]):
                    return digits[start : start + length]
    return None


def legacy_order_id(operation: Operation, key: str) -> str:
    """The generator this service used before: `BVP` + the UUID's 32 hex digits."""
    prefix = "BVP" if operation is Operation.PAYMENT else "BVR"
    try:
        return prefix + uuid.UUID(key).hex
    except ValueError:
        return prefix + hashlib.sha256(key.encode()).hexdigest()[:32]


# A version 4 UUID whose hex holds a Luhn-valid run (0.7% of random ones do).
MASKED_KEY = "230d977e-e225-4159-8720-771f8ca81811"


def spellings(key: str) -> list[str]:
    parsed = uuid.UUID(key)
    return [str(parsed), str(parsed).upper(), "{" + str(parsed) + "}", parsed.hex, parsed.urn]


# -- the key -----------------------------------------------------------------------------------


def test_every_spelling_of_a_uuid_is_one_key() -> None:
    key = str(uuid.uuid4())
    assert {canonical_key(spelling) for spelling in spellings(key)} == {key}
    assert len({order_id_for(Operation.PAYMENT, spelling) for spelling in spellings(key)}) == 1
    assert canonical_key("attempt-1/run") == "attempt-1/run"  # not a UUID: kept as sent


@pytest.mark.parametrize("where", ["transactionId", "Idempotency-Key"])
def test_five_spellings_of_one_uuid_charge_once(
    where: str, service: PaymentService, spy: GatewaySpy, store: IdempotencyStore
) -> None:
    key = str(uuid.uuid4())
    answers = []
    for spelling in spellings(key):
        if where == "transactionId":
            answers.append(pay(payment_body(), new_meta(transactionId=spelling)))
        else:
            answers.append(pay(payment_body(), new_meta(), headers={"Idempotency-Key": spelling}))
    assert [a.status for a in answers] == [200] * 5
    assert spy.calls["charge"] == 1
    assert len({a.text for a in answers}) == 1
    assert [a.headers.get("Idempotent-Replayed") for a in answers] == [None] + ["true"] * 4
    assert len(live_charges(order_id_for(Operation.PAYMENT, key))) == 1
    assert store.get(f"payment:{SIMULATOR_ACCOUNT}:{key}") is not None


def test_a_card_number_sent_as_the_key_is_never_stored(
    service: PaymentService, spy: GatewaySpy, store: IdempotencyStore
) -> None:
    # A careless client may put the card number in the key; the key is stored in the record's scope.
    key = f"4111 1111 1111 1111 {uuid.uuid4().hex[:8]}"  # unique: the simulator outlives each store's run
    first = pay(payment_body(), new_meta(), headers={"Idempotency-Key": key})
    again = pay(payment_body(), new_meta(), headers={"Idempotency-Key": key})
    assert (first.status, again.status, again.headers.get("Idempotent-Replayed")) == (200, 200, "true")
    assert spy.calls["charge"] == 1
    assert store.get(f"payment:{SIMULATOR_ACCOUNT}:{key}") is None
    stored = store.get(f"payment:{SIMULATOR_ACCOUNT}:{canonical_key(key)}")
    assert stored is not None and "4111" not in stored.scope
    assert canonical_key(key) == canonical_key(key) != canonical_key("4111 1111 1111 1112")


# -- the fingerprint ----------------------------------------------------------------------------


def parsed(body: dict[str, Any]) -> PaymentBody:
    return PaymentBody.model_validate(json.loads(json.dumps(body), parse_float=Decimal))


@pytest.mark.parametrize(
    "first, retry",
    [
        ('"amount": 10.00', '"amount": 10.0'),
        ('"amount": 10.00', '"amount": 10'),
        ('"amount": 10.00', '"amount": 1e1'),
        ('"zip": "97201"', '"zip": 97201'),
        ('"name": "Ada Learner"', '"name": "  Ada Learner "'),
        ('"comment": "Course 101"', '"comment": "Course 101\\t"'),
        ('"cvv2": "987"', '"cvv2": "321"'),
    ],
)
@pytest.mark.usefixtures("service")
def test_a_retry_written_differently_is_the_same_request(first: str, retry: str, spy: GatewaySpy) -> None:
    meta = new_meta()
    body = payment_body(amount=10.00, zip="97201", name="Ada Learner", comment="Course 101", cvv2="987")
    text = json.dumps(body).replace('"amount": 10.0', '"amount": 10.00')
    assert first in text
    original = pay(text.encode(), meta)
    again = pay(text.replace(first, retry).encode(), meta)
    assert original.status == 200, original.body
    assert (again.status, again.body) == (200, original.body)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert spy.calls["charge"] == 1


@pytest.mark.usefixtures("service")
def test_a_retry_after_an_unknown_outcome_learns_it_whatever_the_amount_spelling(spy: GatewaySpy) -> None:
    meta = new_meta()
    body = payment_body(account="4999006200620062")
    text = json.dumps(body).replace('"amount": 25.0', '"amount": 25.00')
    assert pay(text.encode(), meta).status == 502
    learned = pay(text.replace('"amount": 25.00', '"amount": 25').encode(), meta)
    assert learned.status == 200, learned.body
    assert spy.calls["charge"] == 1


@pytest.mark.usefixtures("service")
def test_a_different_request_under_the_same_key_is_still_refused(spy: GatewaySpy) -> None:
    meta = new_meta()
    assert pay(payment_body(amount=10), meta).status == 200
    for changed in (payment_body(amount=10.01), payment_body(account="5555555555554444"),
                    payment_body(currencyType=124)):
        reused = pay(changed, meta)
        assert (reused.status, reused.detail["statusCode"]) == (422, "idempotency_key_reused")
    assert spy.calls["charge"] == 1


def test_the_fingerprint_holds_no_cvv_or_expiry() -> None:
    body = payment_body(cvv2="7319", expDate="0941")
    identity = request_identity(Operation.PAYMENT, parsed(body))
    for cvv in ("7319", "0001", "123"):
        assert request_identity(Operation.PAYMENT, parsed({**body, "cvv2": cvv})) == identity
    assert request_identity(Operation.PAYMENT, parsed({**body, "expDate": "1240"})) == identity
    assert b"7319" not in identity and b"0941" not in identity
    assert request_identity(Operation.PAYMENT, parsed({**body, "amount": 25.01})) != identity


def test_no_cvv_can_be_recovered_from_a_stored_fingerprint(service: PaymentService, store: IdempotencyStore) -> None:
    """The attack of the issue: with the fingerprint key, try every 3- and 4-digit CVV."""
    meta, body = new_meta(), payment_body(cvv2="7319")
    assert pay(body, meta).status == 200
    stored = store.get(f"payment:{SIMULATOR_ACCOUNT}:{meta['transactionId']}")
    assert stored is not None
    request = parsed(body)
    matches = [
        cvv for cvv in (*(f"{n:03d}" for n in range(1000)), *(f"{n:04d}" for n in range(10000)))
        if service._fingerprint(Operation.PAYMENT, request.model_copy(update={"cvv2": cvv})) == stored.fingerprint
    ]
    assert len(matches) == 11000  # every guess fits equally: the CVV is not in it


def test_refund_fingerprint_compares_amount_values() -> None:
    from shared.contract import RefundBody

    def identity(amount: str | None) -> bytes:
        text = json.dumps(refund_body("tx-1", amount=None))
        if amount is not None:
            text = text.replace("{", '{"amount": ' + amount + ", ", 1)
        return request_identity(Operation.REFUND, RefundBody.model_validate(json.loads(text, parse_float=Decimal)))

    assert identity("5.0") == identity("5.00") == identity("5")
    assert identity("5") != identity(None)
    assert identity("5") != identity("5.01")


@pytest.mark.usefixtures("service")
def test_refund_retried_with_another_amount_spelling_refunds_once(spy: GatewaySpy) -> None:
    payment_id = pay(payment_body(amount=20)).detail["paymentTransactionId"]
    meta = new_meta()
    text = json.dumps(refund_body(payment_id, amount=7.5))
    first = refund(text.encode(), meta)
    again = refund(text.replace('"amount": 7.5', '"amount": 7.50').encode(), meta)
    assert first.status == 200, first.body
    assert (again.status, again.body) == (200, first.body)
    assert (spy.calls["payment_status"], spy.calls["refund"]) == (1, 1)


# -- order ids ----------------------------------------------------------------------------------


@given(st.uuids())
@example(uuid.UUID(MASKED_KEY))
def test_order_ids_of_uuid_keys_never_hold_a_card_like_run(key: uuid.UUID) -> None:
    for operation in Operation:
        ids = {order_id_for(operation, spelling) for spelling in spellings(str(key))}
        assert len(ids) == 1
        order_id = ids.pop()
        assert ORDER_ID.fullmatch(order_id) and ORDER_NUMBER.fullmatch(order_id)
        assert len(order_id) <= 50
        assert not re.search(r"\d{13}", order_id)


@given(st.text(min_size=1, max_size=255).filter(str.isprintable))
@example("4111111111111111")
@example("x" * 255)
def test_order_ids_of_any_key_never_hold_a_card_like_run(key: str) -> None:
    payment, refund_id = order_id_for(Operation.PAYMENT, key), order_id_for(Operation.REFUND, key)
    assert payment != refund_id
    for order_id in (payment, refund_id):
        assert order_id == order_id_for(Operation.PAYMENT if order_id is payment else Operation.REFUND, key)
        assert ORDER_ID.fullmatch(order_id) and ORDER_NUMBER.fullmatch(order_id)
        assert not re.search(r"\d{13}", order_id)


def test_the_old_generator_made_maskable_order_ids() -> None:
    old = legacy_order_id(Operation.PAYMENT, MASKED_KEY)
    assert luhn_run(old) is not None
    assert masked_order_id(old) != old
    new = order_id_for(Operation.PAYMENT, MASKED_KEY)
    assert masked_order_id(new) == new


def test_the_cardconnect_fake_masks_card_like_order_ids() -> None:
    masked = masked_order_id("BVP" + "4111111111111111")
    assert masked.startswith("BVPX") and masked.endswith("1111") and "4111111111111111" not in masked
    assert masked_order_id("BVP411111111111") == "BVP411111111111"  # 12 digits: too short
    assert masked_order_id("A230d977ee22541598720771f8ca81811") != "A230d977ee22541598720771f8ca81811"


@pytest.mark.parametrize("generator", ["legacy", "current"])
def test_a_masked_order_id_would_charge_twice_on_retry(
    generator: str, gateways: Gateways, monkeypatch: pytest.MonkeyPatch
) -> None:
    if generator == "legacy":
        monkeypatch.setattr("shared.flow.order_id_for", legacy_order_id)
    cc: CardConnectFake = gateways.cc
    meta = new_meta(transactionId=MASKED_KEY)
    cc.set_fault("drop", count=1, match="auth")  # carried out, answer lost
    first = pay(cc_payment(), meta)
    assert first.status == 502 and first.detail["statusCode"] == "outcome_unknown"
    retried = pay(cc_payment(), meta)
    charges = cc.live_charges()
    sent = [r.body["orderid"] for r in cc.requests if r.path.endswith("/auth")]
    if generator == "legacy":
        assert luhn_run(sent[0]) is not None
        assert [t.orderid for t in charges] == [masked_order_id(sent[0])] * 2  # charged twice
    else:
        assert retried.status == 200, retried.body
        assert len(charges) == 1 and charges[0].orderid == sent[0]
        assert retried.detail["paymentTransactionId"] == charges[0].retref
        assert len(sent) == 1
