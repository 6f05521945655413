"""Payload's interpreters on canned answers, ActiveMerchant style: response bodies in the shapes the
references record (gateway reference §2.4 the transaction object, §2.6 errors and declines, §2.8
example bodies) fed through `PayloadGateway` with a stubbed pool, no server. The stateful behaviour
is in `test_payload_gateway.py`, against the fake."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateways.base import GatewayContext
from gateways.errors import (
    CredentialsRejected,
    Declined,
    OutcomeUnknown,
    RequestRejected,
    StandardError,
    TransactionNotFound,
)
from gateways.payload import PayloadGateway, status_from
from tests.gateways.canned import CannedPool, parsed
from tests.gateways.helpers import APPROVE_PL, sale

URL = "https://api.payload.com"
CREDENTIALS = {"apiKey": "test_secret_key_canned", "processingId": "acct_3bW9JMdGn5jHQF"}


def transaction(**changes: str | float) -> str:
    """A transaction object as the docs show one (§2.4), with `changes`."""
    fields: dict[str, str | float] = {
        "id": "txn_3bW9JMi5KVQG8k", "object": "transaction", "amount": 10.0, "funding_status": "pending",
        "order_number": "ord-1001-a", "processing_id": "acct_3bW9JMdGn5jHQF", "status": "processed",
        "status_code": "approved", "status_message": "Transaction approved", "type": "payment",
    }
    fields.update(changes)
    body = ",".join(f'"{key}":{value}' if isinstance(value, float) else f'"{key}":"{value}"'
                    for key, value in fields.items())
    return "{" + body + ',"ledger":[],"payment_method":{}}'


successful_purchase_response = transaction()
authorized_purchase_response = transaction(status="authorized")
processing_purchase_response = transaction(status="processing", status_code="")
failed_purchase_response = (
    '{"object":"error","error_type":"TransactionDeclined","error_description":"Card declined","details":'
    + transaction(status="declined", status_code="insufficient_bal", status_message="Card declined") + "}"
)
invalid_attributes_response = (
    '{"object":"error","error_type":"InvalidAttributes","error_description":"amount","details":{"amount":"required"}}'
)
unauthorized_response = '{"object":"error","error_type":"Unauthorized","error_description":"invalid API key"}'
not_found_response = '{"object":"error","error_type":"NotFound","error_description":"transaction not found"}'
successful_void_response = transaction(status="voided", status_code="voided", status_message="Transaction voided")
settled_payment_response = transaction(funding_status="batched")
successful_refund_response = transaction(id="txn_3bW9JMkRNu3wPm", type="refund", order_number="ord-1001-r1",
                                         amount=4.5)
successful_purchase_transcript = (
    "POST https://api.payload.com/transactions\nAuthorization: Basic dGVzdF9zZWNyZXRfa2V5X2Nhbm5lZDo=\n\n"
    '{"amount": 10.0, "processing_id": "acct_3bW9JMdGn5jHQF", "description": "order-1", "order_number": "ord-1", '
    '"payment_method": {"type": "card", "billing_address": {"postal_code": "11111"}, "card": {"card_number": '
    '"4242 4242 4242 4242", "expiry": "12/28", "card_code": "123"}}, "type": "payment"}\n--\n'
    + successful_purchase_response
)


def listing(*transactions: str) -> str:
    return '{"object":"list","values":[' + ",".join(transactions) + "]}"


def gateway(*answers: str | tuple[int, str]) -> tuple[PayloadGateway, CannedPool]:
    pool = CannedPool(*answers)
    return PayloadGateway(CREDENTIALS, GatewayContext(1002, URL, pool)), pool  # type: ignore[arg-type]


def test_successful_purchase() -> None:
    pl, pool = gateway(successful_purchase_response)
    result = pl.charge(sale(amount="10.00", number=APPROVE_PL))

    assert (result.transaction_id, result.action, result.code, result.message, result.amount) == (
        "txn_3bW9JMi5KVQG8k", "sale", "approved", "Transaction approved", Decimal("10.00"))
    [sent] = pool.sent
    assert (sent.method, sent.url, sent.auth) == ("POST", f"{URL}/transactions", ("test_secret_key_canned", ""))
    assert (sent.json["type"], sent.json["amount"], sent.json["processing_id"]) == ("payment", 10.0,
                                                                                    "acct_3bW9JMdGn5jHQF")


def test_authorized_purchase_is_processed_into_a_sale() -> None:
    pl, pool = gateway(authorized_purchase_response, successful_purchase_response)
    result = pl.charge(sale(amount="10.00", number=APPROVE_PL))

    assert (result.transaction_id, result.code) == ("txn_3bW9JMi5KVQG8k", "approved")
    assert (pool.sent[1].method, pool.sent[1].url, pool.sent[1].json) == (
        "PUT", f"{URL}/transactions/txn_3bW9JMi5KVQG8k", {"status": "processed"})


def test_failed_purchase() -> None:
    pl, _ = gateway((400, failed_purchase_response))
    with pytest.raises(Declined) as declined:
        pl.charge(sale(amount="10.00", number=APPROVE_PL))

    assert (declined.value.code, declined.value.standard, declined.value.http_status) == (
        "insufficient_bal", StandardError.INSUFFICIENT_FUNDS, 400)
    assert (declined.value.message, declined.value.transaction_id) == ("Card declined", "txn_3bW9JMi5KVQG8k")


def test_processing_purchase_is_an_unknown_outcome() -> None:
    pl, _ = gateway(processing_purchase_response)
    with pytest.raises(OutcomeUnknown) as unknown:
        pl.charge(sale(amount="10.00", number=APPROVE_PL))
    assert (unknown.value.code, unknown.value.transaction_id) == ("processing", "txn_3bW9JMi5KVQG8k")


def test_purchase_answered_without_an_id_is_unknown() -> None:
    pl, _ = gateway(successful_purchase_response.replace('"id":"txn_3bW9JMi5KVQG8k",', ""))
    with pytest.raises(OutcomeUnknown):
        pl.charge(sale(amount="10.00", number=APPROVE_PL))


def test_invalid_attributes_and_refused_keys() -> None:
    pl, _ = gateway((400, invalid_attributes_response), (401, unauthorized_response))
    with pytest.raises(RequestRejected) as rejected:
        pl.charge(sale(amount="10.00", number=APPROVE_PL))
    assert (rejected.value.code, rejected.value.message) == (
        "InvalidAttributes", "Payload refused the request: InvalidAttributes; amount; amount: required")
    with pytest.raises(CredentialsRejected):
        pl.verify_credentials()


def test_successful_void() -> None:
    pl, pool = gateway(successful_void_response)
    result = pl.void("txn_3bW9JMi5KVQG8k")

    assert (result.transaction_id, result.action, result.code) == ("txn_3bW9JMi5KVQG8k", "void", "voided")
    assert (pool.sent[0].method, pool.sent[0].json) == ("PUT", {"status": "voided"})


def test_void_answered_with_another_status_is_unknown() -> None:
    pl, _ = gateway(successful_purchase_response)
    with pytest.raises(OutcomeUnknown, match="status 'processed'"):
        pl.void("txn_3bW9JMi5KVQG8k")


def test_successful_refund() -> None:
    pl, pool = gateway(successful_refund_response)
    result = pl.refund("txn_3bW9JMi5KVQG8k", Decimal("4.50"), "ord-1001-r1")

    assert (result.transaction_id, result.action, result.amount) == ("txn_3bW9JMkRNu3wPm", "refund", Decimal("4.50"))
    assert pool.sent[0].json == {"amount": 4.5, "ledger": [{"assoc_transaction_id": "txn_3bW9JMi5KVQG8k"}],
                                 "order_number": "ord-1001-r1", "type": "refund"}


def test_payment_status_reads_funding_as_settlement() -> None:
    pl, pool = gateway(successful_purchase_response, settled_payment_response)
    pending, batched = pl.payment_status("txn_3bW9JMi5KVQG8k"), pl.payment_status("txn_3bW9JMi5KVQG8k")

    assert pool.sent[0].url == f"{URL}/transactions/txn_3bW9JMi5KVQG8k"
    assert (pending.voidable, pending.refundable, pending.settled) == (True, False, False)
    assert (batched.voidable, batched.refundable, batched.settled) == (False, True, True)
    assert (batched.is_payment, batched.amount, batched.state) == (True, Decimal("10.00"), "processed")


def test_status_interpreter_reads_refunds_voids_and_capitalised_words() -> None:
    refund = status_from(parsed(successful_refund_response))
    voided = status_from(parsed(successful_void_response.replace('"voided"', '"Voided"', 1)))
    assert (refund.is_payment, voided.voided, voided.voidable) == (False, True, False)


def test_a_payment_not_final_or_declined_is_neither_voidable_nor_refundable_even_once_batched() -> None:
    for status in ("processing", "declined"):
        found = status_from(parsed(transaction(status=status, funding_status="batched")))
        assert (found.voidable, found.refundable, found.state) == (False, False, status)


def test_another_accounts_transaction_is_not_found() -> None:
    pl, _ = gateway((403, '{"object":"error","error_type":"Forbidden"}'), (404, not_found_response))
    for _ in range(2):
        with pytest.raises(TransactionNotFound):
            pl.payment_status("txn_3bW9JMi5KVQG8k")


def test_find_payment_takes_the_live_payment_of_the_order() -> None:
    declined = transaction(id="txn_declined1", status="declined", status_code="general_decline")
    other = transaction(id="txn_other1", order_number="ord-other")
    pl, pool = gateway(listing(declined, other, successful_purchase_response))
    found = pl.find_payment("ord-1001-a")

    assert found is not None and found.transaction_id == "txn_3bW9JMi5KVQG8k"
    assert pool.sent[0].params == {"order_number": "ord-1001-a", "type": "payment"}


def test_find_refund_and_nothing_found() -> None:
    pl, _ = gateway(listing(successful_refund_response), listing(), listing())
    found = pl.find_refund("ord-1001-r1")
    assert found is not None and (found.transaction_id, found.amount) == ("txn_3bW9JMkRNu3wPm", Decimal("4.50"))
    assert pl.find_payment("ord-1001-a") is None and pl.find_refund("ord-1001-r1") is None


def test_unreadable_search_is_unknown_not_nothing_found() -> None:
    pl, _ = gateway('{"object":"list"}')
    with pytest.raises(OutcomeUnknown):
        pl.find_payment("ord-1001-a")


def test_scrub() -> None:
    scrubbed = PayloadGateway.scrub(successful_purchase_transcript)

    for secret in ("4242 4242 4242 4242", '"card_code": "123"', '"expiry": "12/28"',
                   "dGVzdF9zZWNyZXRfa2V5X2Nhbm5lZDo=", "acct_3bW9JMdGn5jHQF"):
        assert secret not in scrubbed, secret
    assert '"card_code": "[FILTERED]"' in scrubbed and "Authorization: Basic [FILTERED]" in scrubbed
    assert "txn_3bW9JMi5KVQG8k" in scrubbed and '"amount": 10.0' in scrubbed
