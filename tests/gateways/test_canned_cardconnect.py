"""CardConnect's interpreters on canned answers, as ActiveMerchant's `card_connect_test.rb` tests them:
recorded response bodies (gateway reference §1.12: ActiveMerchant's unit-test responses, the
CardPointe guide's timed-out reply) fed through `CardConnectGateway` with a stubbed pool, no server.
The stateful behaviour is in `test_cardconnect_gateway.py`, against the fake."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateways.base import GatewayContext
from gateways.cardconnect import (
    CardConnectGateway,
    is_live_sale,
    standard_error_from,
    status_from,
)
from gateways.errors import (
    CredentialsRejected,
    Declined,
    NotRefundable,
    OutcomeUnknown,
    RequestRejected,
    StandardError,
    TransactionNotFound,
)
from tests.gateways.canned import CannedPool, parsed
from tests.gateways.helpers import sale

URL = "https://fts-uat.cardconnect.com/cardconnect/rest"
CREDENTIALS = {"username": "testing", "password": "testing123", "merchantId": "496160873888"}

successful_purchase_response = (
    '{"amount":"1.00","resptext":"Approval","commcard":" C ","cvvresp":"M","batchid":"1900941444","avsresp":" ",'
    '"respcode":"00","merchid":"496160873888","token":"9405701444882224","authcode":"PPS500","respproc":"FNOR",'
    '"retref":"363652261392","respstat":"A","account":"9405701444882224"}'
)
failed_purchase_response = (
    '{"respproc":"FNOR","amount":"0.00","resptext":"Insufficient funds","cardproc":"FNOR","commcard":" C ",'
    '"retref":"005533134378","respstat":"C","respcode":"NU","account":"9435885049491053","merchid":"496160873888",'
    '"token":"9435885049491053"}'
)
invalid_card_response = (
    '{"respproc":"PPS","amount":"0.00","resptext":"Invalid card","cardproc":"PSTR","retref":"010108164081",'
    '"respstat":"C","respcode":"11"}'
)
timed_out_response = (
    '{"amount":"685.00","resptext":"Timed out","setlstat":"Declined","acctid":"1","respcode":"62",'
    '"merchid":"123456789012","token":"9441282699177251","respproc":"PPS","name":"Jane Doe","currency":"USD",'
    '"retref":"343005123105","respstat":"B","account":"9419786452781111"}'
)
successful_refund_response = (
    '{"respproc":"PPS","amount":"1.00","resptext":"Approval","retref":"363661261786","respstat":"A",'
    '"respcode":"00","merchid":"496160873888"}'
)
failed_refund_response = '{"respproc":"PPS","resptext":"Txn not found","retref":"23221","respcode":"29","respstat":"C"}'
not_settled_refund_response = '{"respstat":"C","respcode":"28","resptext":"Txn not settled"}'
successful_void_response = (
    '{"authcode":"REVERS","respproc":"FNOR","amount":"0.00","resptext":"Approval","currency":"USD",'
    '"retref":"363664261982","respstat":"A","respcode":"00","merchid":"496160873888"}'
)
failed_void_response = failed_refund_response
# Inquiries: the purchase answer with the inquire fields the OpenAPI adds (setlstat, voidable,
# refundable, capture); the reference records no inquire body of its own.
settled_inquire_response = successful_purchase_response.replace(
    '"respstat":"A"', '"respstat":"A","setlstat":"Accepted","voidable":"N","refundable":"Y","capture":"Y"'
)
authorized_inquire_response = successful_purchase_response.replace(
    '"respstat":"A"', '"respstat":"A","setlstat":"Authorized","voidable":"Y","refundable":"N","capture":"N"'
)
refund_inquire_response = successful_refund_response.replace(
    '"amount":"1.00"', '"amount":"-1.00","setlstat":"Queued for Capture","voidable":"Y","refundable":"N"'
)
request_error_response = '{"message":"Invalid field: amount","errorcode":49}'
successful_purchase_transcript = (
    "PUT /cardconnect/rest/auth HTTP/1.1\nAuthorization: Basic dGVzdGluZzp0ZXN0aW5nMTIz\n\n"
    '{"orderid":null,"ecomind":"E","amount":"1.00","name":"Longbob Longsen","account":"4000100011112224",'
    '"expiry":"0918","cvv2":"123","currency":"USD","address":"456 My Street","city":"Ottawa","region":"ON",'
    '"country":"CA","postal":"K1C2N6","phone":"(555)555-5555","capture":"Y","merchid":"496160873888"}\n'
    "GET /cardconnect/rest/inquire/363652261392/496160873888 HTTP/1.1\n--\n" + successful_purchase_response
)


def gateway(*answers: str | tuple[int, str]) -> tuple[CardConnectGateway, CannedPool]:
    pool = CannedPool(*answers)
    return CardConnectGateway(CREDENTIALS, GatewayContext(1001, URL, pool)), pool  # type: ignore[arg-type]


def test_successful_purchase() -> None:
    cc, pool = gateway(successful_purchase_response)
    result = cc.charge(sale(amount="1.00"))

    assert (result.transaction_id, result.action, result.code, result.message) == ("363652261392", "sale", "00",
                                                                                  "Approval")
    assert result.amount == Decimal("1.00")
    [sent] = pool.sent
    assert (sent.method, sent.url, sent.auth) == ("PUT", f"{URL}/auth", ("testing", "testing123"))
    assert (sent.json["merchid"], sent.json["amount"], sent.json["capture"]) == ("496160873888", "1.00", "Y")


def test_failed_purchase() -> None:
    cc, _ = gateway(failed_purchase_response)
    with pytest.raises(Declined) as declined:
        cc.charge(sale(amount="1.00"))

    assert (declined.value.code, declined.value.standard) == ("NU", StandardError.INSUFFICIENT_FUNDS)
    assert (declined.value.message, declined.value.transaction_id) == ("Insufficient funds", "005533134378")


def test_purchase_refused_by_the_gateway_itself() -> None:
    cc, _ = gateway(invalid_card_response)
    with pytest.raises(Declined) as declined:
        cc.charge(sale(amount="1.00"))
    assert (declined.value.code, declined.value.standard) == ("11", StandardError.INVALID_CARD)


def test_timed_out_purchase_is_an_unknown_outcome_not_a_decline() -> None:
    cc, _ = gateway(timed_out_response)
    with pytest.raises(OutcomeUnknown) as unknown:
        cc.charge(sale(amount="685.00"))
    assert (unknown.value.code, unknown.value.transaction_id) == ("62", "343005123105")


def test_approved_purchase_without_a_retref_or_with_an_unreadable_amount_is_unknown() -> None:
    for answer in (successful_purchase_response.replace('"retref":"363652261392",', ""),
                   successful_purchase_response.replace('"amount":"1.00"', '"amount":"NaN"')):
        cc, _ = gateway(answer)
        with pytest.raises(OutcomeUnknown):
            cc.charge(sale(amount="1.00"))


def test_partial_approval_reports_the_amount_approved() -> None:
    cc, _ = gateway(successful_purchase_response.replace('"respcode":"00"', '"respcode":"10"'))
    assert cc.charge(sale(amount="5.00")).amount == Decimal("1.00")


def test_successful_refund() -> None:
    cc, pool = gateway(successful_refund_response)
    result = cc.refund("363652261392", Decimal("1.00"), "ord-1001-r1")

    assert (result.transaction_id, result.action, result.amount) == ("363661261786", "refund", Decimal("1.00"))
    assert pool.sent[0].json == {"merchid": "496160873888", "retref": "363652261392", "amount": "1.00",
                                 "orderid": "ord-1001-r1"}


def test_failed_refund() -> None:
    cc, _ = gateway(failed_refund_response)
    with pytest.raises(TransactionNotFound):
        cc.refund("23221", None, "ord-1001-r1")


def test_refund_before_settlement_is_not_refundable() -> None:
    cc, _ = gateway(not_settled_refund_response)
    with pytest.raises(NotRefundable) as refused:
        cc.refund("363652261392", None, "ord-1001-r1")
    assert (refused.value.code, refused.value.message) == ("28", "Txn not settled")


def test_successful_void() -> None:
    cc, pool = gateway(successful_void_response)
    result = cc.void("363664261982")

    # The answer's "amount": "0.00" is not what was voided: the void names no amount of its own.
    assert (result.transaction_id, result.action, result.amount) == ("363664261982", "void", None)
    assert (pool.sent[0].url, pool.sent[0].json) == (f"{URL}/void", {"merchid": "496160873888",
                                                                     "retref": "363664261982"})


def test_failed_void() -> None:
    cc, _ = gateway(failed_void_response)
    with pytest.raises(TransactionNotFound):
        cc.void("23221")


def test_payment_status_of_a_settled_payment() -> None:
    cc, pool = gateway(settled_inquire_response)
    status = cc.payment_status("363652261392")

    assert pool.sent[0].url == f"{URL}/inquire/363652261392/496160873888"
    assert (status.transaction_id, status.is_payment, status.amount, status.state) == (
        "363652261392", True, Decimal("1.00"), "Accepted")
    assert (status.settled, status.voided, status.voidable, status.refundable) == (True, False, False, True)


def test_status_interpreter_reads_holds_and_credits() -> None:
    held = status_from(parsed(authorized_inquire_response))
    credit = status_from(parsed(refund_inquire_response))

    assert (held.voidable, held.voidable_in_part, held.refundable) == (True, True, False)
    assert (credit.is_payment, credit.amount, credit.voidable) == (False, Decimal("-1.00"), True)


def test_a_sale_queued_for_capture_takes_only_a_whole_void() -> None:
    queued = status_from(parsed(authorized_inquire_response.replace('"setlstat":"Authorized"',
                                                                    '"setlstat":"Queued for Capture"')))

    assert (queued.voidable, queued.voidable_in_part, queued.state) == (True, False, "Queued for Capture")


def test_find_payment_takes_the_live_sale_among_the_order_ids_transactions() -> None:
    voided = settled_inquire_response.replace('"setlstat":"Accepted"', '"setlstat":"Voided"').replace(
        "363652261392", "363652261300")
    listing = f"[{failed_purchase_response},{voided},{settled_inquire_response},{refund_inquire_response}]"
    cc, pool = gateway(listing)
    found = cc.find_payment("ord-1001-a")

    assert found is not None and (found.transaction_id, found.amount) == ("363652261392", Decimal("1.00"))
    assert pool.sent[0].url == f"{URL}/inquireByOrderid/ord-1001-a/496160873888/1"
    assert [is_live_sale(r) for r in parsed(listing)] == [False, False, True, False]


def test_find_refund_reads_a_credit_as_what_was_refunded() -> None:
    cc, _ = gateway(refund_inquire_response)
    found = cc.find_refund("ord-1001-r1")
    assert found is not None and (found.transaction_id, found.amount) == ("363661261786", Decimal("1.00"))


def test_nothing_found_by_order_id() -> None:
    cc, _ = gateway(failed_refund_response, failed_refund_response)
    assert cc.find_payment("ord-1001-a") is None and cc.find_refund("ord-1001-r1") is None


def test_standard_errors_depend_on_the_processor() -> None:
    codes = [("FNOR", "NU"), ("FNOR", "54"), ("FNOR", "C2"), ("PPS", "11"), ("FNOR", "51"), ("RPCT", "NU")]
    standard = [standard_error_from({"respproc": proc, "respcode": code}) for proc, code in codes]
    assert standard == [StandardError.INSUFFICIENT_FUNDS, StandardError.EXPIRED_CARD, StandardError.CVV_MISMATCH,
                        StandardError.INVALID_CARD, StandardError.DECLINED, StandardError.DECLINED]


def test_request_errors_and_refused_credentials() -> None:
    cc, _ = gateway((400, request_error_response), (401, ""))
    with pytest.raises(RequestRejected, match=r"refused the request \(HTTP 400\): Invalid field: amount"):
        cc.charge(sale(amount="1.00"))
    with pytest.raises(CredentialsRejected):
        cc.verify_credentials()


def test_scrub() -> None:
    scrubbed = CardConnectGateway.scrub(successful_purchase_transcript)

    for secret in ("4000100011112224", '"cvv2":"123"', '"expiry":"0918"', "dGVzdGluZzp0ZXN0aW5nMTIz", "496160873888"):
        assert secret not in scrubbed, secret
    assert '"cvv2":"[FILTERED]"' in scrubbed and "Authorization: Basic [FILTERED]" in scrubbed
    assert '"amount":"1.00"' in scrubbed and "363652261392" in scrubbed
