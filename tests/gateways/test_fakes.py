"""The fakes' own wire behaviour that the gateway tests do not reach (other clients may)."""

from __future__ import annotations

from decimal import Decimal

import requests

from tests.fakes import CardConnectFake, PayloadFake
from tests.gateways.helpers import CC_MERCHANTS, CC_MID, PL_KEY


def test_cardconnect_fake_takes_post_and_amounts_in_cents(cc_fake: CardConnectFake) -> None:
    body = {"merchid": CC_MID, "account": "4788250000121443", "expiry": "1228", "amount": "1999", "capture": "y"}
    answer = requests.post(f"{cc_fake.base_url}/auth", json=body, auth=CC_MERCHANTS[CC_MID], timeout=5).json()

    [charge] = cc_fake.live_charges()
    assert (answer["respstat"], answer["amount"]) == ("A", "19.99")
    assert (charge.amount, charge.amount_sent, charge.setlstat) == (Decimal("19.99"), "1999", "Queued for Capture")


def test_cardconnect_fake_refuses_other_merchants_credentials_and_unknown_paths(cc_fake: CardConnectFake) -> None:
    other = CC_MERCHANTS["800000000002"]
    inquire = requests.get(f"{cc_fake.base_url}/inquireMerchant/{CC_MID}", auth=other, timeout=5)
    missing = requests.get(f"{cc_fake.base_url}/inquireByOderid/x/{CC_MID}", auth=CC_MERCHANTS[CC_MID], timeout=5)

    assert inquire.status_code == 401 and cc_fake.auth_failures == 1
    assert missing.status_code == 404 and missing.json()["error"] == "Not Found"


def test_payload_fake_takes_bracketed_forms_and_bearer_keys(pl_fake: PayloadFake) -> None:
    form = {
        "type": "payment",
        "amount": "10.50",
        "order_number": "ord-form",
        "payment_method[type]": "card",
        "payment_method[card][card_number]": "4242 4242 4242 4242",
        "payment_method[card][expiry]": "12/28",
    }
    answer = requests.post(
        f"{pl_fake.base_url}/transactions", data=form, headers={"Authorization": f"Bearer {PL_KEY}"}, timeout=5
    )

    assert answer.status_code == 200 and answer.json()["object"] == "transaction"
    assert pl_fake.requests[0].body["payment_method"] == {
        "type": "card",
        "card": {"card_number": "4242 4242 4242 4242", "expiry": "12/28"},
    }
    pl_fake.settle_all()
    refund = requests.post(
        f"{pl_fake.base_url}/transactions",
        data={"type": "refund", "amount": "10.50", "ledger[0][assoc_transaction_id]": answer.json()["id"]},
        auth=(PL_KEY, ""),
        timeout=5,
    )
    assert refund.status_code == 200 and refund.json()["ledger"][0]["assoc_transaction_id"] == answer.json()["id"]
