"""Authorize.Net's interpreters against canned answers, as ActiveMerchant's unit tests do: each
answer below is the shape the API reference and the official samples give (BOM included), served by
a loopback server that records what the gateway sent, so a test sees the gateway's whole path
(request built in schema order, the BOM, the result code, the transaction response)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from gateways.authorizenet import (
    DUPLICATE_WINDOW_SECONDS,
    AuthorizeNetGateway,
    short_reference,
)
from gateways.base import BillingAddress, Card, CardToken, GatewayContext, SaleRequest
from gateways.errors import (
    AlreadyVoided,
    CredentialsRejected,
    Declined,
    GatewayMisconfigured,
    GatewayUnreachable,
    NotRefundable,
    OutcomeUnknown,
    RequestRejected,
    StandardError,
    TransactionNotFound,
)
from gateways.http import HttpPool
from tests.fakes._server import FakeServer, RecordedRequest, Reply
from tests.gateways.helpers import TIMEOUTS

LOGIN, KEY = "5KP3u95bQpv", "346HZ32z3fP4hTG2"
MERCHANT = 4711
ORDER = "BVPQWERTYUIOPASDFGHJKLZXCVBNMQW"
BOM = "\ufeff"

successful_purchase_response = """{"transactionResponse": {"responseCode": "1", "authCode": "HW617E",
 "avsResultCode": "Y", "cvvResultCode": "P", "cavvResultCode": "2", "transId": "2157047189",
 "refTransID": "", "transHash": "", "testRequest": "0", "accountNumber": "XXXX1111", "accountType": "Visa",
 "messages": [{"code": "1", "description": "This transaction has been approved."}]},
 "refId": "REF", "messages": {"resultCode": "Ok", "message": [{"code": "I00001", "text": "Successful."}]}}"""

failed_purchase_response = """{"transactionResponse": {"responseCode": "2", "authCode": "",
 "avsResultCode": "P", "cvvResultCode": "", "cavvResultCode": "", "transId": "2157047190", "refTransID": "",
 "testRequest": "0", "accountNumber": "XXXX0027", "accountType": "Visa",
 "errors": [{"errorCode": "2", "errorText": "This transaction has been declined."}]},
 "messages": {"resultCode": "Error", "message": [{"code": "E00027", "text": "The transaction was unsuccessful."}]}}"""

expired_card_response = """{"transactionResponse": {"responseCode": "3", "transId": "0",
 "errors": [{"errorCode": "8", "errorText": "The credit card has expired."}]},
 "messages": {"resultCode": "Error", "message": [{"code": "E00027", "text": "The transaction was unsuccessful."}]}}"""

held_for_review_response = """{"transactionResponse": {"responseCode": "4", "authCode": "QJ1RTV",
 "avsResultCode": "Y", "transId": "2157047191", "accountNumber": "XXXX1111", "accountType": "Visa",
 "messages": [{"code": "253", "description": "Your order has been received. Thank you for your business!"}]},
 "messages": {"resultCode": "Ok", "message": [{"code": "I00001", "text": "Successful."}]}}"""

duplicate_response = """{"transactionResponse": {"responseCode": "3", "authCode": "HW617E",
 "transId": "2157047189", "accountNumber": "XXXX1111", "accountType": "Visa",
 "errors": [{"errorCode": "11", "errorText": "A duplicate transaction has been submitted."}]},
 "messages": {"resultCode": "Error", "message": [{"code": "E00027", "text": "The transaction was unsuccessful."}]}}"""

duplicate_without_id_response = """{"transactionResponse": {"responseCode": "3", "transId": "0",
 "errors": [{"errorCode": "11", "errorText": "A duplicate transaction has been submitted."}]},
 "messages": {"resultCode": "Error", "message": [{"code": "E00027", "text": "The transaction was unsuccessful."}]}}"""

system_void_failed_response = """{"transactionResponse": {"responseCode": "3", "transId": "2157047192",
 "errors": [{"errorCode": "120", "errorText": "An error occurred during processing. Please try again."}]},
 "messages": {"resultCode": "Error", "message": [{"code": "E00027", "text": "The transaction was unsuccessful."}]}}"""

test_mode_purchase_response = """{"transactionResponse": {"responseCode": "1", "authCode": "000000",
 "transId": "0", "testRequest": "1", "accountNumber": "XXXX1111", "accountType": "Visa",
 "messages": [{"code": "1", "description": "This transaction has been approved."}]},
 "messages": {"resultCode": "Ok", "message": [{"code": "I00001", "text": "Successful."}]}}"""

authentication_failed_response = """{"messages": {"resultCode": "Error", "message": [{"code": "E00007",
 "text": "User authentication failed due to invalid authentication values."}]}}"""

details_api_off_response = """{"messages": {"resultCode": "Error", "message": [{"code": "E00011",
 "text": "Access denied. You do not have the appropriate permissions."}]}}"""

schema_error_response = """{"messages": {"resultCode": "Error", "message": [{"code": "E00003",
 "text": "The element 'transactionRequest' has invalid child element 'payment'."}]}}"""

maintenance_response = """{"messages": {"resultCode": "Error", "message": [{"code": "E00104",
 "text": "Server in maintenance. Please try again later."}]}}"""

system_error_response = """{"messages": {"resultCode": "Error", "message": [{"code": "E00001",
 "text": "An error occurred during processing. Please try again."}]}}"""

record_not_found_response = """{"messages": {"resultCode": "Error", "message": [{"code": "E00040",
 "text": "The record cannot be found."}]}}"""

successful_void_response = """{"transactionResponse": {"responseCode": "1", "authCode": "HW617E",
 "transId": "2157047189", "refTransID": "2157047189", "accountNumber": "XXXX1111", "accountType": "Visa",
 "messages": [{"code": "1", "description": "This transaction has been approved."}]},
 "messages": {"resultCode": "Ok", "message": [{"code": "I00001", "text": "Successful."}]}}"""

already_voided_response = """{"transactionResponse": {"responseCode": "1", "transId": "2157047189",
 "refTransID": "2157047189", "messages": [{"code": "310", "description": "This transaction has already been voided."}]},
 "messages": {"resultCode": "Ok", "message": [{"code": "I00001", "text": "Successful."}]}}"""

successful_refund_response = """{"transactionResponse": {"responseCode": "1", "authCode": "",
 "transId": "2157047300", "refTransID": "2157047189", "accountNumber": "XXXX1111", "accountType": "Visa",
 "messages": [{"code": "1", "description": "This transaction has been approved."}]},
 "messages": {"resultCode": "Ok", "message": [{"code": "I00001", "text": "Successful."}]}}"""

unsettled_refund_response = """{"transactionResponse": {"responseCode": "3", "transId": "0",
 "refTransID": "2157047189", "errors": [{"errorCode": "54",
 "errorText": "The referenced transaction does not meet the criteria for issuing a credit."}]},
 "messages": {"resultCode": "Error", "message": [{"code": "E00027", "text": "The transaction was unsuccessful."}]}}"""

over_refund_response = """{"transactionResponse": {"responseCode": "3", "transId": "0",
 "refTransID": "2157047189", "errors": [{"errorCode": "55",
 "errorText": "The sum of credits against the referenced transaction would exceed original debit amount."}]},
 "messages": {"resultCode": "Error", "message": [{"code": "E00027", "text": "The transaction was unsuccessful."}]}}"""


invalid_token_response = """{"messages": {"resultCode": "Error", "message": [{"code": "E00114",
 "text": "Invalid OTS Token."}]}}"""


def details_response(status: str, *, trans_id: str = "2157047189", kind: str = "authCaptureTransaction",
                     code: int = 1, reason: int = 1, amount: str = "25.00") -> str:
    """getTransactionDetailsResponse, shaped as the reference's sample (numbers are JSON numbers)."""
    return json.dumps({
        "transaction": {
            "transId": trans_id, "submitTimeUTC": "2026-12-03T16:30:49.39Z", "transactionType": kind,
            "transactionStatus": status, "responseCode": code, "responseReasonCode": reason,
            "responseReasonDescription": "Approval", "authCode": "HW617E",
            "order": {"invoiceNumber": "BVABCDEFGHIJKLMNOPQR"}, "authAmount": float(amount),
            "settleAmount": 0.0 if status == "voided" else float(amount),
            "payment": {"creditCard": {"cardNumber": "XXXX1111", "expirationDate": "XXXX", "cardType": "Visa"}},
        },
        "messages": {"resultCode": "Ok", "message": [{"code": "I00001", "text": "Successful."}]},
    })


def list_response(*transactions: dict[str, Any]) -> str:
    return json.dumps({
        "transactions": list(transactions), "totalNumInResultSet": len(transactions),
        "messages": {"resultCode": "Ok", "message": [{"code": "I00001", "text": "Successful."}]},
    })


def summary(trans_id: str, invoice: str, status: str, amount: float = 25.0) -> dict[str, Any]:
    return {
        "transId": trans_id, "submitTimeUTC": "2026-12-03T16:30:49Z", "submitTimeLocal": "2026-12-03T10:30:49",
        "transactionStatus": status, "invoiceNumber": invoice, "firstName": "Pat", "lastName": "Learner",
        "accountType": "Visa", "accountNumber": "XXXX1111", "settleAmount": amount, "marketType": "eCommerce",
        "product": "Card Not Present",
    }


empty_batch_list_response = """{"messages": {"resultCode": "Ok", "message": [{"code": "I00004",
 "text": "No records found."}]}}"""
ok_response = """{"messages": {"resultCode": "Ok", "message": [{"code": "I00001", "text": "Successful."}]}}"""


class Canned(FakeServer):
    """Answers each request with the next canned body, BOM first, as Authorize.Net does."""

    url_path = "/xml/v1/request.api"

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[str] = []

    def handle(self, request: RecordedRequest) -> Reply:
        return Reply(200, raw=(BOM + self.answers.pop(0)).encode())

    def roots(self) -> list[str]:
        return [next(iter(r.body)) for r in self.requests]

    def sent(self, index: int = -1) -> dict[str, Any]:
        body: dict[str, Any] = self.requests[index].body
        return next(iter(body.values()))


@pytest.fixture
def canned() -> Iterator[Canned]:
    with Canned() as server:
        yield server



def gateway(canned: Canned, pool: HttpPool, **options: str) -> AuthorizeNetGateway:
    credentials = {"apiLoginId": LOGIN, "transactionKey": KEY, **options}
    return AuthorizeNetGateway(credentials, GatewayContext(MERCHANT, canned.base_url, pool))


def sale(amount: str = "25.00") -> SaleRequest:
    return SaleRequest(
        order_id=ORDER,
        amount=Decimal(amount),
        currency="USD",
        card=Card(number="4111111111111111", exp_month=12, exp_year=2028, cvv="999"),
        billing=BillingAddress(name="Pat Q Learner", street="1 College Ave", city="Springfield", state="IL",
                               postal_code="62701", country="US"),
        comment="Course 101 enrolment",
    )


def answer(canned: Canned, *bodies: str) -> None:
    canned.answers.extend(bodies)


# The reference: 20 characters, letters only, the same on every retry.


def test_short_reference_is_twenty_letters_and_the_same_on_every_retry() -> None:
    first = short_reference(MERCHANT, ORDER)
    assert first == short_reference(MERCHANT, ORDER)
    assert len(first) == 20 and re.fullmatch(r"BV[A-Z]{18}", first)
    assert short_reference(MERCHANT + 1, ORDER) != first, "two merchant accounts must not share references"
    assert short_reference(MERCHANT, ORDER[:-1] + "X") != first


def test_short_references_never_hold_a_digit_run() -> None:
    # Letters only, so no 13-digit run a processor could mask as a card, for any order id.
    for n in range(2000):
        assert not re.search(r"\d", short_reference(n, f"BVP{n:028d}"))


# Sales.


def test_successful_purchase(canned: Canned, pool: HttpPool) -> None:
    answer(canned, successful_purchase_response)
    result = gateway(canned, pool).charge(sale())
    assert (result.transaction_id, result.action, result.amount) == ("2157047189", "sale", Decimal("25.00"))
    assert result.message == "This transaction has been approved."


def test_sale_request_is_in_schema_order_with_our_reference(canned: Canned, pool: HttpPool) -> None:
    answer(canned, successful_purchase_response)
    gateway(canned, pool).charge(sale())
    sent = canned.sent()
    reference = short_reference(MERCHANT, ORDER)
    assert list(sent) == ["merchantAuthentication", "refId", "transactionRequest"]
    assert sent["merchantAuthentication"] == {"name": LOGIN, "transactionKey": KEY}
    assert sent["refId"] == reference
    transaction = sent["transactionRequest"]
    assert list(transaction) == [
        "transactionType", "amount", "payment", "order", "billTo", "transactionSettings", "userFields"
    ]
    assert transaction["transactionType"] == "authCaptureTransaction"
    assert transaction["amount"] == "25.00"
    assert transaction["payment"] == {
        "creditCard": {"cardNumber": "4111111111111111", "expirationDate": "2028-12", "cardCode": "999"}
    }
    assert transaction["order"] == {"invoiceNumber": reference, "description": "Course 101 enrolment"}
    assert transaction["billTo"] == {
        "firstName": "Pat Q", "lastName": "Learner", "address": "1 College Ave", "city": "Springfield",
        "state": "IL", "zip": "62701", "country": "US",
    }
    assert transaction["transactionSettings"] == {
        "setting": [{"settingName": "duplicateWindow", "settingValue": str(DUPLICATE_WINDOW_SECONDS)}]
    }
    assert transaction["userFields"] == {"userField": [{"name": "orderId", "value": ORDER}]}
    # Credentials travel in the body only: no Authorization header.
    assert canned.requests[-1].authorization is None


def test_failed_purchase_is_a_decline(canned: Canned, pool: HttpPool) -> None:
    answer(canned, failed_purchase_response)
    with pytest.raises(Declined) as caught:
        gateway(canned, pool).charge(sale())
    assert (caught.value.code, caught.value.standard) == ("2", StandardError.DECLINED)
    assert caught.value.message == "This transaction has been declined."


def test_expired_card_is_refused_with_its_standard_code(canned: Canned, pool: HttpPool) -> None:
    answer(canned, expired_card_response)
    with pytest.raises(RequestRejected) as caught:
        gateway(canned, pool).charge(sale())
    assert (caught.value.code, caught.value.standard) == ("8", StandardError.EXPIRED_CARD)


def test_held_for_review_is_voided_and_declined_by_default(canned: Canned, pool: HttpPool) -> None:
    answer(canned, held_for_review_response, successful_void_response)
    with pytest.raises(Declined) as caught:
        gateway(canned, pool).charge(sale())
    assert (caught.value.code, caught.value.transaction_id) == ("held_for_review", "2157047191")
    assert caught.value.standard == StandardError.HELD_FOR_REVIEW
    void = canned.sent()["transactionRequest"]
    assert void == {"transactionType": "voidTransaction", "refTransId": "2157047191"}


def test_held_for_review_whose_void_fails_is_unknown(canned: Canned, pool: HttpPool) -> None:
    answer(canned, held_for_review_response, system_error_response)
    with pytest.raises(OutcomeUnknown) as caught:
        gateway(canned, pool).charge(sale())
    assert (caught.value.code, caught.value.transaction_id) == ("held_for_review_not_voided", "2157047191")


def test_held_for_review_is_accepted_when_the_merchant_chose_so(canned: Canned, pool: HttpPool) -> None:
    answer(canned, held_for_review_response)
    result = gateway(canned, pool, heldForReview="accept").charge(sale())
    assert (result.transaction_id, result.code, result.amount) == ("2157047191", "held_for_review", Decimal("25.00"))
    assert canned.roots() == ["createTransactionRequest"], "nothing is voided under the accept policy"


def test_duplicate_adopts_the_approved_original(canned: Canned, pool: HttpPool) -> None:
    answer(canned, duplicate_response, details_response("capturedPendingSettlement"))
    result = gateway(canned, pool).charge(sale())
    assert (result.transaction_id, result.action, result.amount) == ("2157047189", "sale", Decimal("25.00"))
    assert canned.sent()["transId"] == "2157047189"


def test_duplicate_of_a_declined_original_is_a_decline(canned: Canned, pool: HttpPool) -> None:
    answer(canned, duplicate_response, details_response("declined", code=2, reason=2))
    with pytest.raises(Declined) as caught:
        gateway(canned, pool).charge(sale())
    assert caught.value.transaction_id == "2157047189"


def test_duplicate_of_a_held_original_we_voided_is_the_held_decline(canned: Canned, pool: HttpPool) -> None:
    answer(canned, duplicate_response, details_response("voided", code=4, reason=253))
    with pytest.raises(Declined) as caught:
        gateway(canned, pool).charge(sale())
    assert caught.value.code == "held_for_review"


def test_duplicate_without_the_original_id_is_unknown(canned: Canned, pool: HttpPool) -> None:
    answer(canned, duplicate_without_id_response)
    with pytest.raises(OutcomeUnknown) as caught:
        gateway(canned, pool).charge(sale())
    assert caught.value.code == "duplicate"


def test_failed_system_void_is_unknown(canned: Canned, pool: HttpPool) -> None:
    answer(canned, system_void_failed_response)
    with pytest.raises(OutcomeUnknown) as caught:
        gateway(canned, pool).charge(sale())
    assert caught.value.transaction_id == "2157047192"


def test_test_mode_answer_is_a_configuration_error(canned: Canned, pool: HttpPool) -> None:
    answer(canned, test_mode_purchase_response)
    with pytest.raises(GatewayMisconfigured) as caught:
        gateway(canned, pool).charge(sale())
    assert caught.value.code == "test_mode"


@pytest.mark.parametrize(
    ("body", "error", "code"),
    [
        (authentication_failed_response, CredentialsRejected, "E00007"),
        (schema_error_response, RequestRejected, "E00003"),
        (maintenance_response, GatewayUnreachable, "maintenance"),
        (system_error_response, OutcomeUnknown, "E00001"),
    ],
)
def test_request_errors(canned: Canned, pool: HttpPool, body: str, error: type[Exception], code: str) -> None:
    answer(canned, body)
    with pytest.raises(error) as caught:
        gateway(canned, pool).charge(sale())
    assert getattr(caught.value, "code", None) == code


def test_unreadable_answer_is_unknown(canned: Canned, pool: HttpPool) -> None:
    answer(canned, '{"refId": "x"}')
    with pytest.raises(OutcomeUnknown):
        gateway(canned, pool).charge(sale())


# The Transaction Details API.


def test_details_api_off_is_the_accounts_configuration_error(canned: Canned, pool: HttpPool) -> None:
    answer(canned, details_api_off_response)
    with pytest.raises(GatewayMisconfigured) as caught:
        gateway(canned, pool).payment_status("2157047189")
    assert caught.value.code == "E00011"
    assert "Transaction Details API" in caught.value.message


@pytest.mark.parametrize(
    ("status", "settled", "voided", "voidable", "refundable"),
    [
        ("capturedPendingSettlement", False, False, True, False),
        ("settledSuccessfully", True, False, False, True),
        ("voided", False, True, False, False),
        ("FDSAuthorizedPendingReview", False, False, True, False),
        ("declined", False, False, False, False),
    ],
)
def test_payment_status(
    canned: Canned, pool: HttpPool, status: str, settled: bool, voided: bool, voidable: bool, refundable: bool
) -> None:
    answer(canned, details_response(status))
    found = gateway(canned, pool).payment_status("2157047189")
    assert (found.settled, found.voided, found.voidable, found.refundable) == (settled, voided, voidable, refundable)
    assert (found.is_payment, found.amount, found.state) == (True, Decimal("25.00"), status)
    assert canned.sent() == {
        "merchantAuthentication": {"name": LOGIN, "transactionKey": KEY}, "transId": "2157047189"
    }


def test_a_refund_is_not_a_payment(canned: Canned, pool: HttpPool) -> None:
    answer(canned, details_response("refundSettledSuccessfully", kind="refundTransaction"))
    assert gateway(canned, pool).payment_status("2157047189").is_payment is False


def test_unknown_transaction(canned: Canned, pool: HttpPool) -> None:
    answer(canned, record_not_found_response)
    with pytest.raises(TransactionNotFound):
        gateway(canned, pool).payment_status("2157047189")


# Void and refund.


def test_void_and_second_void(canned: Canned, pool: HttpPool) -> None:
    answer(canned, successful_void_response, already_voided_response)
    result = gateway(canned, pool).void("2157047189")
    assert (result.transaction_id, result.action) == ("2157047189", "void")
    with pytest.raises(AlreadyVoided):
        gateway(canned, pool).void("2157047189")


def test_void_in_part_is_refused_before_any_call(canned: Canned, pool: HttpPool) -> None:
    with pytest.raises(NotRefundable) as caught:
        gateway(canned, pool).void("2157047189", Decimal("5.00"))
    assert caught.value.code == "whole_void_only"
    assert canned.requests == []


def test_partial_refund_names_the_card_by_its_last_four(canned: Canned, pool: HttpPool) -> None:
    answer(canned, details_response("settledSuccessfully"), successful_refund_response)
    result = gateway(canned, pool).refund("2157047189", Decimal("10.00"), "BVRREFUNDORDERAAAAAAAAAAAAAAAAA")
    assert (result.transaction_id, result.action, result.amount) == ("2157047300", "refund", Decimal("10.00"))
    refund = canned.sent()["transactionRequest"]
    assert list(refund) == [
        "transactionType", "amount", "payment", "refTransId", "order", "transactionSettings", "userFields"
    ]
    assert refund["payment"] == {"creditCard": {"cardNumber": "1111", "expirationDate": "XXXX"}}
    assert refund["order"] == {"invoiceNumber": short_reference(MERCHANT, "BVRREFUNDORDERAAAAAAAAAAAAAAAAA")}
    assert (refund["amount"], refund["refTransId"]) == ("10.00", "2157047189")


def test_whole_refund_sends_the_payments_amount(canned: Canned, pool: HttpPool) -> None:
    answer(canned, details_response("settledSuccessfully", amount="40.00"), successful_refund_response)
    result = gateway(canned, pool).refund("2157047189", None, "BVRREFUNDORDERAAAAAAAAAAAAAAAAA")
    assert result.amount == Decimal("40.00")
    assert canned.sent()["transactionRequest"]["amount"] == "40.00"


def test_over_refund_is_refused(canned: Canned, pool: HttpPool) -> None:
    answer(canned, details_response("settledSuccessfully"), over_refund_response)
    with pytest.raises(RequestRejected) as caught:
        gateway(canned, pool).refund("2157047189", Decimal("20.00"), "BVRREFUNDORDERAAAAAAAAAAAAAAAAA")
    assert caught.value.code == "55"
    assert "exceeds what is left" in caught.value.message


def test_not_settled_yet_full_refund_becomes_a_void(canned: Canned, pool: HttpPool) -> None:
    answer(
        canned,
        details_response("settledSuccessfully"),
        unsettled_refund_response,
        details_response("capturedPendingSettlement"),
        successful_void_response,
    )
    result = gateway(canned, pool).refund("2157047189", None, "BVRREFUNDORDERAAAAAAAAAAAAAAAAA")
    assert (result.action, result.transaction_id) == ("void", "2157047189")


def test_not_settled_yet_partial_refund_is_refused_clearly(canned: Canned, pool: HttpPool) -> None:
    answer(
        canned,
        details_response("settledSuccessfully"),
        unsettled_refund_response,
        details_response("capturedPendingSettlement"),
    )
    with pytest.raises(NotRefundable) as caught:
        gateway(canned, pool).refund("2157047189", Decimal("5.00"), "BVRREFUNDORDERAAAAAAAAAAAAAAAAA")
    assert caught.value.code == "54"
    assert "refund it in full now (a void), or in part after settlement" in caught.value.message


def test_reason_54_on_a_settled_payment_is_not_refundable(canned: Canned, pool: HttpPool) -> None:
    answer(canned, details_response("settledSuccessfully"), unsettled_refund_response,
           details_response("settledSuccessfully"))
    with pytest.raises(NotRefundable) as caught:
        gateway(canned, pool).refund("2157047189", None, "BVRREFUNDORDERAAAAAAAAAAAAAAAAA")
    assert caught.value.code == "54"


# Look-ups by our reference.


def test_find_payment_in_the_unsettled_list(canned: Canned, pool: HttpPool) -> None:
    reference = short_reference(MERCHANT, ORDER)
    answer(canned, list_response(
        summary("2157047200", "BVSOMEONEELSEAAAAAAA", "capturedPendingSettlement"),
        summary("2157047199", reference, "declined"),
        summary("2157047189", reference, "capturedPendingSettlement"),
    ))
    found = gateway(canned, pool).find_payment(ORDER)
    assert found is not None
    assert (found.transaction_id, found.action, found.amount) == ("2157047189", "sale", Decimal("25.00"))
    assert (found.code, found.message, found.last_four) == ("1", "This transaction has been approved.", "1111")
    sent = canned.sent()
    assert sent["sorting"] == {"orderBy": "submitTimeUTC", "orderDescending": "true"}
    assert sent["paging"] == {"limit": "1000", "offset": "1"}


def test_find_payment_in_a_settled_batch(canned: Canned, pool: HttpPool) -> None:
    reference = short_reference(MERCHANT, ORDER)
    batches = json.dumps({
        "batchList": [{"batchId": "1221577", "settlementTimeUTC": "2026-12-02T08:40:29Z",
                       "settlementState": "settledSuccessfully", "paymentMethod": "creditCard"}],
        "messages": {"resultCode": "Ok", "message": [{"code": "I00001", "text": "Successful."}]},
    })
    answer(canned, list_response(), batches, list_response(summary("2157047189", reference, "settledSuccessfully")))
    found = gateway(canned, pool).find_payment(ORDER)
    assert found is not None and found.transaction_id == "2157047189"
    assert canned.roots() == [
        "getUnsettledTransactionListRequest", "getSettledBatchListRequest", "getTransactionListRequest"
    ]
    assert canned.sent()["batchId"] == "1221577"


def test_find_payment_finds_nothing(canned: Canned, pool: HttpPool) -> None:
    answer(canned, list_response(), empty_batch_list_response)
    assert gateway(canned, pool).find_payment(ORDER) is None


def test_find_payment_with_an_unknown_status_is_unknown(canned: Canned, pool: HttpPool) -> None:
    reference = short_reference(MERCHANT, ORDER)
    answer(canned, list_response(summary("2157047189", reference, "somethingNew")))
    with pytest.raises(OutcomeUnknown):
        gateway(canned, pool).find_payment(ORDER)


def test_find_payment_voids_a_held_payment_by_default(canned: Canned, pool: HttpPool) -> None:
    reference = short_reference(MERCHANT, ORDER)
    answer(canned, list_response(summary("2157047189", reference, "FDSAuthorizedPendingReview")),
           successful_void_response)
    assert gateway(canned, pool).find_payment(ORDER) is None
    assert canned.sent()["transactionRequest"] == {"transactionType": "voidTransaction", "refTransId": "2157047189"}


def test_find_payment_without_the_details_api(canned: Canned, pool: HttpPool) -> None:
    answer(canned, details_api_off_response)
    with pytest.raises(GatewayMisconfigured) as caught:
        gateway(canned, pool).find_payment(ORDER)
    assert caught.value.code == "E00011"


def test_find_refund(canned: Canned, pool: HttpPool) -> None:
    order = "BVRREFUNDORDERAAAAAAAAAAAAAAAAA"
    answer(canned, list_response(summary("2157047300", short_reference(MERCHANT, order), "refundPendingSettlement",
                                         10.0)))
    found = gateway(canned, pool).find_refund(order)
    assert found is not None
    assert (found.transaction_id, found.action, found.amount) == ("2157047300", "refund", Decimal("10.00"))
    assert (found.code, found.message) == ("1", "This transaction has been approved."), "as the refund was answered"


# Credentials.


def test_verify_credentials_charges_nobody(canned: Canned, pool: HttpPool) -> None:
    answer(canned, ok_response, list_response())
    gateway(canned, pool).verify_credentials()
    assert canned.roots() == ["authenticateTestRequest", "getUnsettledTransactionListRequest"]
    assert canned.sent()["paging"] == {"limit": "1", "offset": "1"}


def test_verify_credentials_rejected(canned: Canned, pool: HttpPool) -> None:
    answer(canned, authentication_failed_response)
    with pytest.raises(CredentialsRejected) as caught:
        gateway(canned, pool).verify_credentials()
    assert (caught.value.code, caught.value.message) == (
        "E00007", "Authorize.Net did not accept the merchant's credentials"
    )


def test_verify_credentials_names_the_missing_details_api(canned: Canned, pool: HttpPool) -> None:
    answer(canned, ok_response, details_api_off_response)
    with pytest.raises(GatewayMisconfigured) as caught:
        gateway(canned, pool).verify_credentials()
    assert caught.value.code == "E00011"


# Accept.js opaque data.

NONCE = "eyJjb2RlIjoiNTBfMl8wNjAwMDUyN0JFODE1OTI4Q0ZBNDJGQkRBRTBBNjM4In0="


def token_sale() -> SaleRequest:
    plain = sale()
    return SaleRequest(
        order_id=plain.order_id, amount=plain.amount, currency="USD", billing=plain.billing, comment=plain.comment,
        token=CardToken(kind="authorizenet_opaque", value=NONCE, descriptor="COMMON.ACCEPT.INAPP.PAYMENT"),
    )


def test_token_sale_sends_opaque_data_and_learns_the_last_four(canned: Canned, pool: HttpPool) -> None:
    answer(canned, successful_purchase_response)
    result = gateway(canned, pool).charge(token_sale())
    assert (result.transaction_id, result.last_four) == ("2157047189", "1111")
    transaction = canned.sent()["transactionRequest"]
    assert transaction["payment"] == {
        "opaqueData": {"dataDescriptor": "COMMON.ACCEPT.INAPP.PAYMENT", "dataValue": NONCE}
    }
    assert list(transaction) == [
        "transactionType", "amount", "payment", "order", "billTo", "transactionSettings", "userFields"
    ]


def test_another_token_kind_is_refused_before_any_call(canned: Canned, pool: HttpPool) -> None:
    plain = sale()
    other = SaleRequest(order_id=ORDER, amount=plain.amount, currency="USD", token=CardToken("cardsecure", "9411"))
    with pytest.raises(RequestRejected) as caught:
        gateway(canned, pool).charge(other)
    assert caught.value.code == "token_not_accepted"
    assert canned.requests == []


def test_a_spent_nonce_is_settled_by_look_up_never_by_resending(canned: Canned, pool: HttpPool) -> None:
    # The first attempt used the nonce and its answer was lost: the retry's nonce is refused as
    # used, and the look-up finds the first attempt's payment.
    reference = short_reference(MERCHANT, ORDER)
    answer(canned, invalid_token_response, list_response(summary("2157047189", reference, "capturedPendingSettlement")))
    result = gateway(canned, pool).charge(token_sale())
    assert (result.transaction_id, result.last_four) == ("2157047189", "1111")
    assert canned.roots() == ["createTransactionRequest", "getUnsettledTransactionListRequest"]


def test_a_refused_nonce_with_nothing_found_is_a_clear_refusal(canned: Canned, pool: HttpPool) -> None:
    answer(canned, invalid_token_response, list_response(), empty_batch_list_response)
    with pytest.raises(RequestRejected) as caught:
        gateway(canned, pool).charge(token_sale())
    assert caught.value.code == "token_rejected"
    assert [root for root in canned.roots() if root == "createTransactionRequest"] == ["createTransactionRequest"]


def test_scrub_removes_the_nonce(canned: Canned) -> None:
    transcript: list[str] = []
    recording = HttpPool(TIMEOUTS, transcript=transcript.append)
    try:
        answer(canned, successful_purchase_response)
        gateway(canned, recording).charge(token_sale())
    finally:
        recording.close()
    raw = "\n".join(transcript)
    assert NONCE in raw
    assert NONCE not in AuthorizeNetGateway.scrub(raw)


# Scrub: a transcript recorded from a sale.


def test_scrub_removes_credentials_and_card_data(canned: Canned) -> None:
    transcript: list[str] = []
    recording = HttpPool(TIMEOUTS, transcript=transcript.append)
    try:
        answer(canned, successful_purchase_response)
        gateway(canned, recording).charge(sale())
    finally:
        recording.close()
    raw = "\n".join(transcript)
    assert all(value in raw for value in (LOGIN, KEY, "4111111111111111", "999", "2028-12"))
    scrubbed = AuthorizeNetGateway.scrub(raw)
    for value in (LOGIN, KEY, "4111111111111111", '"999"', "2028-12"):
        assert value not in scrubbed
    assert "authCaptureTransaction" in scrubbed and "XXXX1111" in scrubbed
