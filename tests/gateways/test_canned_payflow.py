"""Payflow's interpreters against canned NVP answers (shaped like the Payflow developer's guides'
examples), its request builders, and the ActiveMerchant cross-check: no server involved."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateways.base import BillingAddress, Card, GatewayContext
from gateways.errors import (
    Declined,
    GatewayError,
    NotRefundable,
    OutcomeUnknown,
    RequestRejected,
    StandardError,
    TransactionNotFound,
)
from gateways.payflow import (
    PayflowGateway,
    add_address,
    add_card,
    encode_nvp,
    error_for,
    follow_up_id,
    found_result,
    is_duplicate,
    parse_nvp,
    payment_ref,
    refund_ref,
    request_id_for,
    result_from,
    result_of,
    status_from,
)
from tests.gateways.helpers import sale

successful_purchase_response = (
    "RESULT=0&PNREF=EFHP0D426A53&RESPMSG=Approved&AUTHCODE=25TEST&AVSADDR=Y&AVSZIP=N&CVV2MATCH=Y&IAVS=N"
)
duplicate_purchase_response = successful_purchase_response + "&DUPLICATE=1"
failed_purchase_response = "RESULT=12&PNREF=EFHP0D426A54&RESPMSG=Declined&AVSADDR=X&AVSZIP=X"
referral_response = "RESULT=13&PNREF=EFHP0D426A55&RESPMSG=Referral"
expired_card_response = "RESULT=24&PNREF=EFHP0D426A56&RESPMSG=Invalid expiration date: 0298"
fraud_review_response = (
    "RESULT=126&PNREF=EFHP0D426A57&RESPMSG=Under review by Fraud Service&AUTHCODE=25TEST&PREFPSMSG=Review: More "
    "than one rule was triggered for Review"
)
timeout_response = "RESULT=104&PNREF=EFHP0D426A58&RESPMSG=Timeout waiting for Processor response"
duplicate_timeout_response = timeout_response + "&DUPLICATE=1"
bad_password_response = "RESULT=1&RESPMSG=User authentication failed"
field_format_response = "RESULT=7&PNREF=EFHP0D426A59&RESPMSG=Field format error: Invalid amount"
tagged_message_response = "RESULT=7&PNREF=EFHP0D426A5A&RESPMSG[25]=Invalid field: A&B=C here&AUTHCODE=X"
successful_void_response = "RESULT=0&PNREF=EFHP0D426A60&RESPMSG=Approved"
void_after_settlement_response = "RESULT=108&PNREF=EFHP0D426A61&RESPMSG=Void error: Transaction already settled"
successful_credit_response = "RESULT=0&PNREF=EFHP0D426A62&RESPMSG=Approved"
credit_error_response = "RESULT=105&PNREF=EFHP0D426A63&RESPMSG=Credit error: Amount exceeds the original amount"
inquiry_not_found_response = "RESULT=19&PNREF=EFHP0D426A64&RESPMSG=Original transaction ID not found"


def inquiry(transstate: int, origresult: int = 0, custref: str = "P6L4D7527PCU", amount: str = "19.99") -> str:
    return (
        f"RESULT=0&PNREF=EFHP0D426A70&TRANSSTATE={transstate}&ORIGRESULT={origresult}&ORIGPNREF=EFHP0D426A53"
        f"&RESPMSG=Approved&CUSTREF={custref}&AMT={amount}&ACCT=1111&EXPDATE=1228&TRANSTIME=2026-12-03 16:00:00"
    )


def test_parses_answers_by_the_first_equals_and_length_tags() -> None:
    assert parse_nvp(successful_purchase_response)["PNREF"] == "EFHP0D426A53"
    assert parse_nvp(tagged_message_response) == {
        "RESULT": "7", "PNREF": "EFHP0D426A5A", "RESPMSG": "Invalid field: A&B=C here", "AUTHCODE": "X"
    }
    assert parse_nvp("RESPMSG=a=b") == {"RESPMSG": "a=b"}
    assert parse_nvp("<html>Bad gateway</html>") == {}


@pytest.mark.parametrize("text", ["", "RESPMSG=Approved", "RESULT=&PNREF=X", "RESULT=zero", "<html/>"])
def test_an_answer_without_a_readable_result_is_unknown(text: str) -> None:
    with pytest.raises(OutcomeUnknown):
        result_of(parse_nvp(text))


def test_successful_purchase_is_a_sale_with_its_pnref() -> None:
    result = result_from(parse_nvp(successful_purchase_response), "sale", Decimal("19.99"))
    assert (result.transaction_id, result.code, result.message, result.amount) == (
        "EFHP0D426A53", "0", "Approved", Decimal("19.99")
    )
    assert not is_duplicate(parse_nvp(successful_purchase_response))
    assert is_duplicate(parse_nvp(duplicate_purchase_response))


def test_an_approval_without_a_usable_pnref_is_unknown() -> None:
    with pytest.raises(OutcomeUnknown):
        result_from(parse_nvp("RESULT=0&RESPMSG=Approved&PNREF=short"), "sale", None)


@pytest.mark.parametrize(
    ("text", "standard"),
    [
        (failed_purchase_response, StandardError.DECLINED),
        (referral_response, StandardError.DECLINED),
        (expired_card_response, StandardError.EXPIRED_CARD),
        ("RESULT=23&PNREF=EFHP0D426A65&RESPMSG=Invalid account number", StandardError.INVALID_CARD),
        ("RESULT=114&PNREF=EFHP0D426A66&RESPMSG=CSC Mismatch", StandardError.CVV_MISMATCH),
        ("RESULT=125&PNREF=EFHP0D426A67&RESPMSG=Declined by Fraud Service", StandardError.DECLINED),
    ],
)
def test_failed_purchases_are_declines_with_their_standard_code(text: str, standard: StandardError) -> None:
    assert error_for(result_of(parse_nvp(text)), Declined) == (Declined, standard)


@pytest.mark.parametrize("result", [103, 104, 150, 151, 1000])
def test_timeouts_are_unknown_outcomes(result: int) -> None:
    assert error_for(result, Declined)[0] is OutcomeUnknown
    assert error_for(result, NotRefundable)[0] is OutcomeUnknown


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (field_format_response, (RequestRejected, None)),
        ("RESULT=4&RESPMSG=Invalid amount", (RequestRejected, None)),
        ("RESULT=117&RESPMSG=Failed merchant rule check", (RequestRejected, StandardError.CONFIG_ERROR)),
        ("RESULT=2&RESPMSG=Invalid tender", (RequestRejected, StandardError.CONFIG_ERROR)),
        ("RESULT=133&RESPMSG=Data mismatch in HTTP retry request", (RequestRejected, None)),
        ("RESULT=9999&RESPMSG=Something new", (RequestRejected, None)),
        (inquiry_not_found_response, (TransactionNotFound, None)),
    ],
)
def test_the_rest_are_errors(text: str, expected: tuple[type[GatewayError], StandardError | None]) -> None:
    assert error_for(result_of(parse_nvp(text)), Declined) == expected


def test_void_and_credit_refusals_say_the_state_forbids_them() -> None:
    assert error_for(result_of(parse_nvp(void_after_settlement_response)), NotRefundable)[0] is NotRefundable
    assert error_for(result_of(parse_nvp(credit_error_response)), NotRefundable)[0] is NotRefundable
    assert error_for(12, NotRefundable) == (NotRefundable, None)


def test_inquiry_of_a_sale_pending_settlement_is_voidable() -> None:
    status = status_from(parse_nvp(inquiry(6)), "EFHP0D426A53")
    assert status.is_payment and status.voidable and not status.refundable
    assert (status.settled, status.voided, status.voidable_in_part) == (False, False, False)
    assert (status.transaction_id, status.amount) == ("EFHP0D426A53", Decimal("19.99"))
    assert status.state == "settlement pending"


def test_inquiry_of_a_settled_sale_is_refundable() -> None:
    status = status_from(parse_nvp(inquiry(8)), "EFHP0D426A53")
    assert status.settled and status.refundable and not status.voidable


def test_inquiry_of_a_settling_sale_is_neither() -> None:
    status = status_from(parse_nvp(inquiry(7)), "EFHP0D426A53")
    assert not status.voidable and not status.refundable and status.state == "settlement in progress"


@pytest.mark.parametrize("transstate", [1006, 1003, 1008])
def test_inquiry_of_a_voided_sale_says_voided(transstate: int) -> None:
    status = status_from(parse_nvp(inquiry(transstate)), "EFHP0D426A53")
    assert status.voided and not status.voidable and not status.refundable and not status.settled


def test_unacknowledged_transactions_never_settle_and_are_voided_by_hand() -> None:
    unacknowledged = status_from(parse_nvp(inquiry(106)), "EFHP0D426A53")
    assert unacknowledged.voidable and not unacknowledged.refundable
    limbo = status_from(parse_nvp(inquiry(206)), "EFHP0D426A53")
    assert not limbo.voidable and not limbo.refundable


def test_inquiry_of_a_declined_sale_is_nothing_to_give_back() -> None:
    status = status_from(parse_nvp(inquiry(1, origresult=12)), "EFHP0D426A53")
    assert not status.voidable and not status.refundable and not status.voided


def test_inquiry_of_a_sale_held_for_review_is_voidable() -> None:
    status = status_from(parse_nvp(inquiry(6, origresult=126)), "EFHP0D426A53")
    assert status.voidable and status.state == "held for review"


def test_inquiry_of_one_of_our_credits_is_not_a_payment() -> None:
    ours = refund_ref(1001, "BVRSOMEREFUND")
    assert not status_from(parse_nvp(inquiry(6, custref=ours)), "EFHP0D426A62").is_payment
    assert status_from(parse_nvp(inquiry(6, custref=payment_ref(1001, "BVPSALE"))), "X").is_payment
    # A payment the monolith made carries its own CUSTREF, or none: still a payment.
    assert status_from(parse_nvp(inquiry(6, custref="INV-77")), "X").is_payment
    assert not status_from(parse_nvp(inquiry(6, custref="") + "&TRXTYPE=C"), "X").is_payment


@pytest.mark.parametrize("text", [inquiry(6).replace("TRANSSTATE=6", "TRANSSTATE=x"),
                                  inquiry(6).replace("&ORIGRESULT=0", "")])
def test_an_inquiry_it_cannot_read_is_unknown(text: str) -> None:
    with pytest.raises(OutcomeUnknown):
        status_from(parse_nvp(text), "EFHP0D426A53")


def test_found_transaction_answers_as_its_own_request_would() -> None:
    found = found_result(parse_nvp(inquiry(6)), "sale")
    assert (found.transaction_id, found.action, found.code, found.amount) == (
        "EFHP0D426A53", "sale", "0", Decimal("19.99")
    )


def test_references_are_deterministic_short_and_apart() -> None:
    custref = payment_ref(1001, "BVPORDER")
    assert custref == payment_ref(1001, "BVPORDER")
    assert len(custref) == 12 and custref.isalnum() and custref.isupper() and custref[0] == "P"
    assert custref != payment_ref(1002, "BVPORDER")  # two accounts sharing one vendor
    assert refund_ref(1001, "BVPORDER")[0] == "R" and refund_ref(1001, "BVPORDER")[1:] != custref[1:]
    request_id = request_id_for(1001, "BVPORDER", "sale")
    assert len(request_id) == 32 and request_id == request_id_for(1001, "BVPORDER", "sale")
    assert request_id != request_id_for(1001, "BVPORDER", "refund")
    assert follow_up_id(request_id, "EFHP0D426A58") == follow_up_id(request_id, "EFHP0D426A58") != request_id
    assert not any(run.isdigit() and len(run) >= 13 for run in custref.split())


def test_values_with_special_characters_are_length_tagged() -> None:
    body = encode_nvp([("TRXTYPE", "S"), ("PWD", "pw"), ("COMMENT1", "Fees & more=1"), ("AMT", "19.99")])
    assert body == "TRXTYPE=S&PWD[2]=pw&COMMENT1[13]=Fees & more=1&AMT=19.99"
    assert parse_nvp(body)["COMMENT1"] == "Fees & more=1"


def test_free_text_goes_ascii_and_cut_to_payflow_limits() -> None:
    fields: list[tuple[str, str]] = []
    add_address(fields, BillingAddress(name="José  de la Peña", street="1 Rue de l'Église\n" + "x" * 40,
                                       city="Montréal", state="QC", postal_code="H2X 1Y4", country="CA"))
    values = dict(fields)
    assert values["BILLTOFIRSTNAME"] == "Jose de la" and values["BILLTOLASTNAME"] == "Pena"
    assert values["BILLTOSTREET"] == ("1 Rue de l'Eglise " + "x" * 40)[:30]
    assert (values["BILLTOCITY"], values["BILLTOZIP"], values["BILLTOCOUNTRY"]) == ("Montreal", "H2X1Y4", "CA")


def test_card_expiry_goes_mmyy() -> None:
    fields: list[tuple[str, str]] = []
    add_card(fields, Card(number="4111111111111111", exp_month=3, exp_year=2031, cvv="123"))
    assert fields == [("ACCT", "4111111111111111"), ("EXPDATE", "0331"), ("CVV2", "123")]


TRANSCRIPT = (
    "POST http://127.0.0.1:1/\nContent-Type: text/namevalue\nX-VPS-REQUEST-ID: XABC\n\n"
    "TRXTYPE=S&TENDER=C&PARTNER=PayPal&VENDOR=acmeuniv&USER=acmeapi&PWD[11]=p&ss=w0rd!x&ACCT=5105105105105100"
    "&EXPDATE=1228&CVV2=123&AMT=19.99&CURRENCY=USD&CUSTREF=P6L4D7527PCU\n--\nHTTP 200\n\n"
    "RESULT=0&PNREF=EFHP0D426A53&RESPMSG=Approved&ACCT=5100&EXPDATE=1228\n"
)


def test_scrub_removes_credentials_and_card_data_tagged_or_not() -> None:
    scrubbed = PayflowGateway.scrub(TRANSCRIPT)
    for secret in ("acmeuniv", "acmeapi", "p&ss=w0rd!x", "w0rd", "5105105105105100", "1228", "CVV2=123"):
        assert secret not in scrubbed
    assert "PARTNER=[FILTERED]" in scrubbed and "PWD[11]=[FILTERED]&ACCT=[FILTERED]" in scrubbed
    assert "AMT=19.99" in scrubbed and "CUSTREF=P6L4D7527PCU" in scrubbed and "PNREF=EFHP0D426A53" in scrubbed


# ActiveMerchant's XMLPay sale (gateway reference §2.10), each element by the NVP name the Payflow
# guides give the same parameter. Left out on purpose: InvNum (a processor-specific 9-17 characters;
# our reference is CUSTREF, §2.4, and the order id itself travels in COMMENT2), CustIP and
# Description (the service has neither), CardType (NVP derives the brand from the number).
ACTIVE_MERCHANT_SALE = {
    "Vendor": "VENDOR",
    "Partner": "PARTNER",
    "UserPass/User": "USER",
    "UserPass/Password": "PWD",
    "CustRef": "CUSTREF",
    "Sale": "TRXTYPE",
    "Tender/Card": "TENDER",
    "Tender/Card/CardNum": "ACCT",
    "Tender/Card/ExpDate": "EXPDATE",
    "Tender/Card/CVNum": "CVV2",
    "Invoice/TotalAmt": "AMT",
    "Invoice/TotalAmt@Currency": "CURRENCY",
    "Invoice/Comment": "COMMENT1",
    "Invoice/BillTo/Name": "BILLTOFIRSTNAME",
    "Tender/Card/ExtData[LASTNAME]": "BILLTOLASTNAME",
    "Invoice/BillTo/Address/Street": "BILLTOSTREET",
    "Invoice/BillTo/Address/City": "BILLTOCITY",
    "Invoice/BillTo/Address/State": "BILLTOSTATE",
    "Invoice/BillTo/Address/Zip": "BILLTOZIP",
    "Invoice/BillTo/Address/Country": "BILLTOCOUNTRY",
}


def test_our_sale_carries_every_field_activemerchant_sends() -> None:
    credentials = {"partner": "PayPal", "vendor": "acmeuniv", "user": "acmeapi", "password": "p&ss=w0rd"}
    gateway = PayflowGateway(credentials, GatewayContext(1001, PayflowGateway.test_url, None))
    fields = gateway.sale_request(sale("BVPORDER", number="5105105105105100"))

    names = [name for name, _ in fields]
    assert set(ACTIVE_MERCHANT_SALE.values()) <= set(names)
    assert len(names) == len(set(names))
    values = dict(fields)
    assert (values["TRXTYPE"], values["TENDER"], values["AMT"], values["CURRENCY"]) == ("S", "C", "19.99", "USD")
    assert (values["PARTNER"], values["VENDOR"], values["USER"], values["PWD"]) == tuple(credentials.values())
    assert (values["CUSTREF"], values["COMMENT2"]) == (payment_ref(1001, "BVPORDER"), "BVPORDER")
    assert (values["BILLTOFIRSTNAME"], values["BILLTOLASTNAME"]) == ("Pat", "Learner")


def test_a_length_tag_that_does_not_end_at_a_separator_stops_the_reading() -> None:
    assert parse_nvp("RESULT=0&RESPMSG[3]=Approved&PNREF=EFHP0D426A53") == {"RESULT": "0"}


def test_echoes_keep_paypals_public_partner_id_in_texts_but_not_a_resellers() -> None:
    def gateway(partner: str) -> PayflowGateway:
        credentials = {"partner": partner, "vendor": "acmeuniv", "user": "acmeapi", "password": "p&ss=w0rd"}
        return PayflowGateway(credentials, GatewayContext(1001, PayflowGateway.test_url, None))

    text = "PayPal Payflow Pro: VSAcme acmeuniv acmeapi p&ss=w0rd"
    assert gateway("PayPal").echoes().scrub(text) == "PayPal Payflow Pro: VSAcme [removed] [removed] [removed]"
    assert gateway("VSAcme").echoes().scrub(text) == "PayPal Payflow Pro: [removed] [removed] [removed] [removed]"
