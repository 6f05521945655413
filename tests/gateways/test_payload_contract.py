"""Our Payload bodies equal what payload-api 0.5.1 sends for the same inputs (the library itself is
kept out of the request path; see gateways/payload.py)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import payload as payload_api

from gateways.base import RefundRequest
from gateways.http import HttpPool
from shared.refunds import refund_or_void
from tests.fakes import PayloadFake, RecordedRequest
from tests.gateways.helpers import APPROVE_PL, PL_KEY, payload, sale

PROCESSING_ID = "acct_tenant1"


def wire(request: RecordedRequest) -> Any:
    """The body exactly as sent: JSON numbers as floats, key order kept."""
    return json.loads(request.raw_body)


def library_payment(session: Any, order_number: str, amount: float) -> Any:
    return session.Payment.create(
        amount=amount,
        processing_id=PROCESSING_ID,
        description="Course 101 enrolment",
        order_number=order_number,
        payment_method=session.Card(
            card_number=APPROVE_PL, expiry="12/28", card_code="123", billing_address={"postal_code": "62701"}
        ),
    )


def test_payment_refund_and_void_bodies_match_the_library(pl_fake: PayloadFake, pool: HttpPool) -> None:
    session = payload_api.Session(PL_KEY, api_url=pl_fake.base_url + "/")
    gateway = payload(pl_fake, pool)

    library_paid = library_payment(session, "ord-lib-1", 19.99)
    [library_sale] = pl_fake.requests
    ours_paid = gateway.charge(sale(order_id="ord-lib-1", amount="19.99", number=APPROVE_PL))
    ours_sale = pl_fake.requests[-1]

    pl_fake.settle_all()
    pl_fake.clear_requests()
    session.Refund.create(
        amount=7.07, ledger=[session.Ledger(assoc_transaction_id=library_paid.id)], order_number="ord-lib-r1"
    )
    [library_refund] = pl_fake.requests
    refund_or_void(
        gateway, RefundRequest(payment_id=ours_paid.transaction_id, amount=Decimal("7.07"), order_id="ord-lib-r1")
    )
    ours_refund = pl_fake.requests[-1]

    library_unsettled = library_payment(session, "ord-lib-2", 0.07)
    ours_unsettled = gateway.charge(sale(order_id="ord-lib-2", amount="0.07", number=APPROVE_PL))
    pl_fake.clear_requests()
    library_unsettled.update(status="voided")
    [library_void] = pl_fake.requests
    unsettled = RefundRequest(payment_id=ours_unsettled.transaction_id, amount=None, order_id="ord-lib-r2")
    refund_or_void(gateway, unsettled)
    ours_void = pl_fake.requests[-1]

    assert wire(ours_sale) == wire(library_sale)
    # Same key order where the library's is deterministic (it orders the nested card keys by set hash).
    assert list(wire(ours_sale)) == list(wire(library_sale))
    assert list(wire(ours_sale)["payment_method"]) == list(wire(library_sale)["payment_method"])
    assert wire(ours_refund) == {
        **wire(library_refund),
        "ledger": [{"assoc_transaction_id": ours_paid.transaction_id}],
    }
    assert list(wire(ours_refund)) == list(wire(library_refund))
    assert (ours_void.method, wire(ours_void)) == (library_void.method, wire(library_void))
    assert wire(ours_void) == {"status": "voided"}
    assert ours_sale.authorization == library_sale.authorization
    assert ours_void.path == f"/transactions/{ours_unsettled.transaction_id}"
    assert library_void.path == f"/transactions/{library_unsettled.id}"
