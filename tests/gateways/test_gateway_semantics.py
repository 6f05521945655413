"""What the gateways' answers mean beyond the wire format (shared/reference/gateway-semantics.md):
CardConnect's decline codes by processor, its field limits, its partial approvals, and Payload's
statuses, each against the fake that models it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateways.base import BillingAddress, RefundRequest
from gateways.errors import Declined, NotRefundable, OutcomeUnknown, RequestRejected, StandardError
from gateways.http import HttpPool
from shared.refunds import refund_or_void
from tests.fakes import CardConnectFake, PayloadFake
from tests.fakes.cardconnect import PREPAID_BALANCE, PREPAID_CARD
from tests.fakes.payload import HOLD_CARD, PROCESSING_CARD
from tests.gateways.helpers import APPROVE_PL, CC_MERCHANTS, CC_MID, cardconnect, payload, sale

# CardPointe's decline codes are keyed by processor and code. Rows from the references:
# gateways.md §1.8 (PPS codes, CP-CODES), §1.11 (the UAT FNOR test cards, CP-GUIDE) and
# gateway-semantics.md ("Decline codes depend on the processor").
DECLINE_TABLE = [
    ("FNOR", "NU", "Insufficient funds", StandardError.INSUFFICIENT_FUNDS, "§1.11 UAT card ...1053"),
    ("FNOR", "05", "Do not honor", StandardError.DECLINED, "§1.11 UAT card ...1038"),
    ("FNOR", "54", "Wrong expiration", StandardError.EXPIRED_CARD, "§1.11 UAT card ...1046"),
    ("FNOR", "01", "Refer to issuer", StandardError.DECLINED, "§1.11 UAT card ...1020"),
    ("FNOR", "51", "Decline", StandardError.DECLINED, "semantics: 51 generic decline on some processors"),
    ("FNOR", "C2", "CVV mismatch", StandardError.CVV_MISMATCH, "semantics: FNOR C2 CVV mismatch"),
    ("PPS", "11", "Invalid card", StandardError.INVALID_CARD, "§1.8"),
    ("PPS", "14", "Non-numeric CVV", StandardError.CVV_MISMATCH, "semantics: PPS 14 non-numeric CVV"),
    ("PPS", "16", "Card expired", StandardError.EXPIRED_CARD, "§1.8"),
    ("PPS", "17", "Invalid zip", StandardError.DECLINED, "§1.8"),
    ("PPS", "32", "Wrong currency for merch", StandardError.CONFIG_ERROR, "§1.8"),
    ("PPS", "37", "CVV mismatch", StandardError.CVV_MISMATCH, "§1.8"),
    # RPCT 101/116/517 are named in gateway-semantics.md without their meanings: a generic decline.
    ("RPCT", "101", "Decline", StandardError.DECLINED, "semantics: RPCT codes, meaning not given"),
    ("RPCT", "116", "Decline", StandardError.DECLINED, "semantics: RPCT codes, meaning not given"),
    ("RPCT", "517", "Decline", StandardError.DECLINED, "semantics: RPCT codes, meaning not given"),
]


@pytest.mark.parametrize(("respproc", "respcode", "resptext", "standard", "source"), DECLINE_TABLE)
def test_cardconnect_declines_map_by_processor_and_code(
    cc_fake: CardConnectFake, pool: HttpPool, respproc: str, respcode: str, resptext: str,
    standard: StandardError, source: str,
) -> None:
    card = "4000000000001091"
    cc_fake.decline_cards[card] = (respproc, respcode, resptext)

    with pytest.raises(Declined) as declined:
        cardconnect(cc_fake, pool).charge(sale(number=card))

    assert (declined.value.code, declined.value.message) == (respcode, resptext), source
    assert declined.value.standard is standard, source


def test_the_same_code_from_another_processor_is_not_read_as_the_first_ones(
    cc_fake: CardConnectFake, pool: HttpPool
) -> None:
    # NU is insufficient funds on FNOR; the code alone says nothing on another processor.
    cc_fake.decline_cards["4000000000001091"] = ("RPCT", "NU", "Decline")
    with pytest.raises(Declined) as declined:
        cardconnect(cc_fake, pool).charge(sale(number="4000000000001091"))
    assert declined.value.standard is StandardError.DECLINED


def test_cardconnect_fake_answers_the_uat_cards_as_fnor_and_its_own_refusals_as_pps(
    cc_fake: CardConnectFake, pool: HttpPool
) -> None:
    gateway = cardconnect(cc_fake, pool)
    with pytest.raises(Declined):
        gateway.charge(sale(number="4387751111111038"))
    with pytest.raises(Declined) as wrong_currency:
        gateway.charge(sale(order_id="ord-2", currency="CAD"))
    assert wrong_currency.value.standard is StandardError.CONFIG_ERROR
    assert sorted((t.respproc, t.respcode) for t in cc_fake.transactions.values()) == [("FNOR", "05"), ("PPS", "32")]


# --- field limits ---------------------------------------------------------------------------


def test_cardconnect_cuts_free_text_to_its_limits_and_sends_zip_plus_four_without_the_dash(
    cc_fake: CardConnectFake, pool: HttpPool
) -> None:
    billing = BillingAddress(
        name="Maximiliana Cordelia Throckmorton-Smythe",
        street="12345 North Very Long Boulevard Name Apartment 678",
        city="Llanfairpwllgwyngyllgogerychwyrndrobwll",
        state="Provincia de Buenos Aires Sur",
        postal_code="62701-1234",
        country="us",
    )
    cardconnect(cc_fake, pool).charge(sale(billing=billing))

    [wire] = [r.body for r in cc_fake.requests if r.path.endswith("/auth")]
    assert wire["name"] == "Maximiliana Cordelia Throckmor"
    assert wire["address"] == "12345 North Very Long Boulevar"
    assert wire["city"] == "Llanfairpwllgwyngyllgogerychwy"
    assert wire["region"] == "Provincia de Buenos"
    assert (wire["postal"], wire["country"]) == ("627011234", "US")
    assert len(cc_fake.live_charges()) == 1


@pytest.mark.parametrize("country", ["USA", "United States", "1A"])
def test_cardconnect_refuses_a_country_that_is_not_two_letters_before_sending(
    cc_fake: CardConnectFake, pool: HttpPool, country: str
) -> None:
    billing = BillingAddress(postal_code="62701", country=country)
    with pytest.raises(RequestRejected, match="country") as refused:
        cardconnect(cc_fake, pool).charge(sale(billing=billing))
    assert refused.value.code == "country"
    assert cc_fake.requests == []


def test_cardconnect_fake_refuses_what_breaks_the_limits(cc_fake: CardConnectFake, pool: HttpPool) -> None:
    import requests

    url = cc_fake.base_url + "/auth"
    auth = CC_MERCHANTS[CC_MID]
    base = {"merchid": CC_MID, "account": "4788250000121443", "expiry": "1228", "amount": "1.00"}
    for extra in ({"address": "x" * 31}, {"region": "x" * 21}, {"country": "USA"}, {"postal": "62701-1234"},
                  {"postal": "1234567890", "country": "CA"}, {"postal": "K1C2N6"}):
        assert requests.put(url, json={**base, **extra}, auth=auth, timeout=5).status_code == 400, extra
    assert requests.put(url, json={**base, "postal": "K1C2N6", "country": "CA"}, auth=auth, timeout=5).ok
    assert len(cc_fake.transactions) == 1


# --- partial approvals ----------------------------------------------------------------------


def test_cardconnect_partial_approval_reports_the_amount_approved(pool: HttpPool) -> None:
    with CardConnectFake(merchants=CC_MERCHANTS, partial_auth=frozenset({CC_MID})) as fake:
        result = cardconnect(fake, pool).charge(sale(amount="25.00", number=PREPAID_CARD))

        assert (result.code, result.message, result.amount) == ("10", "Partial Approval", PREPAID_BALANCE)
        voided = cardconnect(fake, pool).void(result.transaction_id)
        assert voided.action == "void" and voided.transaction_id == result.transaction_id
        assert [r.body for r in fake.requests if r.path.endswith("/void")] == [
            {"merchid": CC_MID, "retref": result.transaction_id}
        ]
        assert fake.live_charges() == []


def test_cardconnect_prepaid_card_declines_without_partial_authorization(
    cc_fake: CardConnectFake, pool: HttpPool
) -> None:
    with pytest.raises(Declined) as declined:
        cardconnect(cc_fake, pool).charge(sale(amount="25.00", number=PREPAID_CARD))
    assert declined.value.standard is StandardError.INSUFFICIENT_FUNDS
    assert cardconnect(cc_fake, pool).charge(sale(amount="9.00", number=PREPAID_CARD)).amount == Decimal("9")


# --- Payload statuses -----------------------------------------------------------------------


def test_payload_sale_answered_authorized_is_completed_into_a_sale(pl_fake: PayloadFake, pool: HttpPool) -> None:
    result = payload(pl_fake, pool).charge(sale(number=HOLD_CARD))

    assert result.action == "sale"
    [post, put] = pl_fake.requests
    assert (post.method, put.method, put.path, put.body) == (
        "POST", "PUT", f"/transactions/{result.transaction_id}", {"status": "processed"}
    )
    assert pl_fake.transactions[result.transaction_id].status == "processed"


def test_payload_hold_left_by_a_lost_completion_is_found_and_completed(pl_fake: PayloadFake, pool: HttpPool) -> None:
    gateway = payload(pl_fake, pool)
    pl_fake.set_fault("http500", match="PUT /transactions/")
    with pytest.raises(OutcomeUnknown):
        gateway.charge(sale(number=HOLD_CARD))
    [hold] = pl_fake.live_charges()
    assert hold.status == "authorized"

    found = gateway.find_payment("ord-1001-a")

    assert found is not None and found.transaction_id == hold.id
    assert pl_fake.transactions[hold.id].status == "processed"


def test_payload_processing_is_unknown_and_counts_as_a_charge(pl_fake: PayloadFake, pool: HttpPool) -> None:
    gateway = payload(pl_fake, pool)
    with pytest.raises(OutcomeUnknown, match="processing"):
        gateway.charge(sale(number=PROCESSING_CARD))
    [charge] = pl_fake.live_charges()

    with pytest.raises(OutcomeUnknown, match="processing"):
        gateway.find_payment("ord-1001-a")
    with pytest.raises(NotRefundable, match="processing"):
        refund_or_void(gateway, RefundRequest(payment_id=charge.id, amount=None, order_id="ord-1001-r1"))

    pl_fake.finish(charge.id, "processed")
    found = gateway.find_payment("ord-1001-a")
    assert found is not None and found.transaction_id == charge.id


def test_payload_processing_that_ends_declined_is_no_charge(pl_fake: PayloadFake, pool: HttpPool) -> None:
    gateway = payload(pl_fake, pool)
    with pytest.raises(OutcomeUnknown):
        gateway.charge(sale(number=PROCESSING_CARD))
    pl_fake.finish(pl_fake.live_charges()[0].id, "rejected")
    assert gateway.find_payment("ord-1001-a") is None


def test_payload_void_voids_a_processing_payment(pl_fake: PayloadFake, pool: HttpPool) -> None:
    gateway = payload(pl_fake, pool)
    with pytest.raises(OutcomeUnknown):
        gateway.charge(sale(number=PROCESSING_CARD))
    [charge] = pl_fake.live_charges()

    voided = gateway.void(charge.id)

    assert (voided.action, voided.transaction_id) == ("void", charge.id)
    assert pl_fake.live_charges() == []


def test_payload_statuses_are_read_case_insensitively(pl_fake: PayloadFake, pool: HttpPool) -> None:
    pl_fake.capitalised = True
    gateway = payload(pl_fake, pool)
    paid = gateway.charge(sale(number=APPROVE_PL))
    assert pl_fake.requests[-1].method == "POST"
    found = gateway.find_payment("ord-1001-a")
    assert found is not None and found.transaction_id == paid.transaction_id

    voided = refund_or_void(gateway, RefundRequest(payment_id=paid.transaction_id, amount=None, order_id="r-1"))

    assert voided.action == "void"
    assert pl_fake.live_charges() == []


def test_payload_charges_in_the_processing_accounts_currency_whatever_is_asked(pool: HttpPool) -> None:
    with PayloadFake(accounts={"test_secret_key_tenant1": "acct_tenant1"}, currencies={"acct_tenant1": "USD"}) as fake:
        import requests

        body = {"type": "payment", "amount": 5, "currency": "CAD", "processing_id": "acct_tenant1",
                "payment_method": {"type": "card", "card": {"card_number": APPROVE_PL, "expiry": "12/28"}}}
        answer = requests.post(fake.base_url + "/transactions", json=body, auth=("test_secret_key_tenant1", ""),
                               timeout=5)
        assert answer.status_code == 200
        assert fake.transactions[answer.json()["id"]].currency == "USD"
