"""A stateful fake of Authorize.Net's JSON API (more-gateways reference, part 1) on the fake kit.

One URL; the root key names the call; credentials in the body (`merchants` {API login id: transaction
key}, else E00007); every answer is HTTP 200, JSON after a UTF-8 byte-order mark. It checks what the
real API checks before acting: keys in the schema's order and its length limits (else E00003).

- Sale (`authCaptureTransaction`, a card or Accept.js opaque data from `issue_nonce`, one use each,
  else E00114): declined for the sandbox's decline ZIP 46282 or a card in DECLINE_CARDS (code 2);
  held for review (code 4, reason 253, `FDSAuthorizedPendingReview`, never settled until
  `approve_held`) when the merchant's Amount Filter `review_above` is exceeded; a repeat of a sale or
  refund with the same card, amount and invoice number within its `duplicateWindow` (default 120 s)
  is code 3 reason 11, naming the original only when the request set the window.
- Void before settlement (else reason 16; a second one: code 1, reason 310); refund after it, naming
  the card's last four digits (reason 54 before settlement or for another card, 55 over what is left).
- `settle`/`settle_all` close a batch; the Transaction Details API (details, the unsettled list, settled
  batches and their lists, paged and sorted) answers E00011 for a merchant in `details_off`.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tests.fakes import kit
from tests.fakes._server import RecordedRequest, Reply, sent_values
from tests.fakes.kit import KitFake, Profile, Record, Refused, TestCard, Txn, dig, parse_amount

BOM = "\ufeff"
DECLINE_ZIP = "46282"
"""The sandbox declines any sale with this billing ZIP (Authorize.Net testing guide)."""
DECLINE_CARDS = frozenset({"4000300011112220"})
"""ActiveMerchant's declined test card (400030001111222) with the Luhn digit that lets it past the
service's own card check: the conformance cards carry no ZIP."""
DEFAULT_WINDOW = 120
"""Seconds: Authorize.Net's duplicate window when a request sets none."""

SCHEMA: dict[str, Sequence[str]] = {
    "request": ("merchantAuthentication", "refId", "transactionRequest", "transId", "batchId", "includeStatistics",
                "firstSettlementDate", "lastSettlementDate", "status", "sorting", "paging"),
    "transactionRequest": ("transactionType", "amount", "currencyCode", "payment", "profile", "solution", "callId",
                           "authCode", "refTransId", "splitTenderId", "order", "lineItems", "tax", "duty", "shipping",
                           "taxExempt", "poNumber", "customer", "billTo", "shipTo", "customerIP",
                           "cardholderAuthentication", "retail", "employeeId", "transactionSettings", "userFields"),
    "merchantAuthentication": ("name", "transactionKey"),
    "creditCard": ("cardNumber", "expirationDate", "cardCode"),
    "opaqueData": ("dataDescriptor", "dataValue", "dataKey"),
    "order": ("invoiceNumber", "description"),
    "billTo": ("firstName", "lastName", "company", "address", "city", "state", "zip", "country"),
    "sorting": ("orderBy", "orderDescending"),
    "paging": ("limit", "offset"),
}
"""AnetApiSchema.xsd's sequences for what a client sends here (the request wrappers' children share
one list: each call uses a subsequence of it)."""
LIMITS = {"refId": 20, "invoiceNumber": 20, "description": 255, "firstName": 50, "lastName": 50, "address": 60,
          "city": 40, "state": 40, "zip": 20, "country": 60, "name": 25, "transactionKey": 16}
TEXTS = {
    "1": "This transaction has been approved.", "2": "This transaction has been declined.",
    "11": "A duplicate transaction has been submitted.", "16": "The transaction cannot be found.",
    "54": "The referenced transaction does not meet the criteria for issuing a credit.",
    "55": "The sum of credits against the referenced transaction would exceed original debit amount.",
    "253": "Your order has been received. Thank you for your business!",
    "310": "This transaction has already been voided.",
}
REFUND_REASONS = {"amount": "55"}  # every other refusal of a refund is 54 ("does not meet the criteria")


class AuthorizeNetFake(KitFake):
    url_path = "/xml/v1/request.api"

    def __init__(self, merchants: dict[str, str], *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.merchants = dict(merchants)
        self.clock = clock
        self.details_off: set[str] = set()
        """API login ids whose account has not enabled the Transaction Details API."""
        self.review_above: dict[str, Decimal] = {}
        """{API login id: amount}: the merchant's Amount Filter holds any sale above it for review."""
        self.nonces: dict[str, tuple[str, str]] = {}
        self.batches: list[tuple[str, float, list[str]]] = []
        self._batch_ids = itertools.count(4_000_001)

    def new_id(self) -> str:
        # transId: a numeric string, never 0 (test mode's answer).
        return f"{60_000_000_000 + next(self.numbers) * 1000 + secrets.randbelow(1000)}"

    def issue_nonce(self, number: str, exp_month: int, exp_year: int) -> str:
        """What Accept.js hands the browser for this card: an opaque value usable once (base64, as
        Accept.js's are)."""
        nonce = base64.b64encode(b'{"token":"' + secrets.token_hex(32).encode() + b'"}').decode()
        with self.lock:
            self.nonces[nonce] = (number, f"{exp_year:04d}-{exp_month:02d}")
        return nonce

    def approve_held(self, txn_id: str) -> None:
        """The merchant approves a transaction held for review: it settles with the next batch."""
        txn = self.ledger.get(txn_id)
        if txn is None:
            raise KeyError(txn_id)
        self.ledger.capture(txn.merchant, txn_id)

    def settle(self, txn_id: str) -> None:
        self._close_batch([txn_id])

    def settle_all(self) -> None:
        self._close_batch([t.id for t in self.ledger if "batch" not in t.data])

    def view(self, txn: Txn) -> Record:
        return Record(self._summary(txn), kind=txn.kind, settled=txn.settled, refunded=txn.refunded,
                      amount=txn.amount, payment_id=txn.payment_id)

    def request_line(self, request: RecordedRequest) -> str:
        # One URL for every call: the root key and the transaction type name it.
        body = request.body if isinstance(request.body, dict) else {}
        root = next(iter(body), "")
        kind = dig(body, root, "transactionRequest").get("transactionType", "")
        return f"{request.method} {request.path} {root} {kind}".rstrip()

    def error_reply(self, status: int) -> Reply:
        return Reply(status, raw=f"<html><body>{status}</body></html>".encode())

    def echo_reply(self, request: RecordedRequest) -> Reply:
        return answer(refusal("E00003", "The element has invalid content: " + " ".join(sent_values(request))))

    def malformed(self, mode: str, reply: Reply) -> Reply:
        body = json.loads((reply.raw or b"{}").decode("utf-8-sig"))
        response = body.get("transactionResponse") if isinstance(body, dict) else None
        if mode == "listing":
            body = [body]
        elif mode == "missing_id" and isinstance(response, dict):
            response.pop("transId", None)
        elif mode == "nan_amount" and isinstance(response, dict):
            response["prePaidCard"] = {"approvedAmount": "NaN"}
        return answer(body)

    def handle(self, request: RecordedRequest) -> Reply:
        document = request.body if isinstance(request.body, dict) and len(request.body) == 1 else None
        if document is None:
            return answer(refusal("E00003", "Root element is missing."))
        root, body = next(iter(document.items()))
        problem = schema_problem(body if isinstance(body, dict) else {}, "request")
        if problem:
            return answer(refusal("E00003", problem))
        login = str(dig(body, "merchantAuthentication").get("name"))
        if self.merchants.get(login) != dig(body, "merchantAuthentication").get("transactionKey"):
            self.refuse_credentials()
            return answer(refusal("E00007", "User authentication failed due to invalid authentication values."))
        handler = {
            "createTransactionRequest": self._transaction, "authenticateTestRequest": lambda b, m: ok(),
            "getTransactionDetailsRequest": self._details, "getUnsettledTransactionListRequest": self._unsettled,
            "getSettledBatchListRequest": self._batches, "getTransactionListRequest": self._batch_list,
        }.get(root)
        if handler is None:
            return answer(refusal("E00003", f"The element '{root}' is not a known request."))
        if root.startswith("get") and login in self.details_off:
            return answer(refusal("E00011", "Access denied. You do not have the appropriate permissions."))
        with self.lock:
            return answer({**handler(body, login), **({"refId": body["refId"]} if "refId" in body else {})})

    def _transaction(self, body: dict[str, Any], login: str) -> dict[str, Any]:
        request = dig(body, "transactionRequest")
        kind = request.get("transactionType")
        if kind == "voidTransaction":
            return self._void(login, str(request.get("refTransId")))
        amount = parse_amount(request.get("amount"))
        if amount is None or kind not in ("authCaptureTransaction", "refundTransaction"):
            return refusal("E00003", "The 'amount' or 'transactionType' element is invalid.")
        settings = dig(request, "transactionSettings").get("setting")
        window = next((int(s["settingValue"]) for s in settings if isinstance(s, dict)
                       and s.get("settingName") == "duplicateWindow"), None) if isinstance(settings, list) else None
        opaque = dig(request, "payment", "opaqueData")
        if opaque:
            spent = self.nonces.pop(str(opaque.get("dataValue")), None)
            if spent is None:
                return refusal("E00114", "Invalid OTS Token.")
            number, expiry = spent
        else:
            card = dig(request, "payment", "creditCard")
            number, expiry = str(card.get("cardNumber") or ""), str(card.get("expirationDate") or "")
        invoice = dig(request, "order").get("invoiceNumber")
        fields = dig(request, "userFields").get("userField")
        # The ledger keeps the client's own order id where it sent one (a merchant-defined field).
        order_id = next((f.get("value") for f in fields if isinstance(f, dict) and f.get("name") == "orderId"),
                        invoice) if isinstance(fields, list) else invoice
        fingerprint = hashlib.sha256(f"{login}|{kind}|{number}|{expiry}|{amount}|{invoice}".encode()).hexdigest()
        original = self._duplicate_of(fingerprint, window or DEFAULT_WINDOW)
        if original is not None:
            named = original if window is not None else None
            return transaction_answer("3", "11", named, number[-4:], auth_code=named and named.data["auth_code"])
        data = {"fingerprint": fingerprint, "submitted": self.clock(), "invoice": invoice, "client_order": order_id,
                "auth_code": "",
                "description": dig(request, "order").get("description"), "bill_to": dig(request, "billTo")}
        if kind == "refundTransaction":
            return self._refund(login, str(request.get("refTransId")), amount, number, data)
        return self._sale(login, amount, number, data)

    def _sale(self, login: str, amount: Decimal, number: str, data: dict[str, Any]) -> dict[str, Any]:
        declined = number in DECLINE_CARDS or data["bill_to"].get("zip") == DECLINE_ZIP
        held = not declined and amount > self.review_above.get(login, amount)
        data["auth_code"] = "" if declined else secrets.token_hex(3).upper()
        status = kit.DECLINED if declined else kit.AUTHORIZED if held else kit.APPROVED
        txn = self.ledger.pay(login, amount, "USD", data["client_order"], card=number, status=status,
                              reason="2" if declined else "253" if held else "1", **data)
        return transaction_answer("2" if declined else "4" if held else "1", txn.data["reason"], txn, txn.card,
                                  auth_code=data["auth_code"])

    def _void(self, login: str, payment_id: str) -> dict[str, Any]:
        try:
            txn, _ = self.ledger.void(login, payment_id)
        except Refused as refused:
            if refused.reason == "voided":
                return transaction_answer("1", "310", refused.txn, refused.txn.card if refused.txn else "")
            # Voids look among unsettled transactions only: a settled one is "not found" too.
            return transaction_answer("3", "16", None, "")
        txn.data["voided_at"] = self.clock()
        return transaction_answer("1", "1", txn, txn.card, auth_code=txn.data.get("auth_code", ""))

    def _refund(self, login: str, payment_id: str, amount: Decimal, last_four: str,
                data: dict[str, Any]) -> dict[str, Any]:
        payment = self.ledger.get(payment_id)
        if payment is None or payment.merchant != login or payment.card != last_four:
            return transaction_answer("3", "54", None, last_four)
        try:
            refund = self.ledger.refund(login, payment_id, amount, data["client_order"], reason="1", **data)
        except Refused as refused:
            return transaction_answer("3", REFUND_REASONS.get(refused.reason, "54"), None, last_four)
        return transaction_answer("1", "1", refund, refund.card)

    def _duplicate_of(self, fingerprint: str, window: int) -> Txn | None:
        now = self.clock()
        return next((t for t in self.ledger if t.data.get("fingerprint") == fingerprint
                     and now - t.data["submitted"] < window), None)

    def _details(self, body: dict[str, Any], login: str) -> dict[str, Any]:
        txn = self.ledger.get(str(body.get("transId")))
        if txn is None or txn.merchant != login:
            return refusal("E00040", "The record cannot be found.")
        return ok(transaction=self._transaction_details(txn))

    def _unsettled(self, body: dict[str, Any], login: str) -> dict[str, Any]:
        return self._listing(body, [t for t in self.ledger if t.merchant == login and "batch" not in t.data])

    def _batch_list(self, body: dict[str, Any], login: str) -> dict[str, Any]:
        batch = str(body.get("batchId"))
        return self._listing(body, [t for t in self.ledger if t.merchant == login and t.data.get("batch") == batch])

    def _batches(self, body: dict[str, Any], login: str) -> dict[str, Any]:
        # Dates are whole seconds: the last one covers its whole second.
        first, last = (parse_time(body.get(k)) for k in ("firstSettlementDate", "lastSettlementDate"))
        last = last or self.clock()
        first = first if first is not None else last - 86_400
        mine = {t.id for t in self.ledger if t.merchant == login}
        batches = [{"batchId": batch_id, "settlementTimeUTC": wire_time(at), "settlementState": "settledSuccessfully",
                    "paymentMethod": "creditCard", "marketType": "eCommerce", "product": "Card Not Present"}
                   for batch_id, at, ids in self.batches if first <= at < last + 1 and mine & set(ids)]
        if not batches:
            return ok(code="I00004", text="No records found.")
        return ok(batchList=batches)

    def _listing(self, body: dict[str, Any], txns: list[Txn]) -> dict[str, Any]:
        sorting, paging = dig(body, "sorting"), dig(body, "paging")
        key: Callable[[Txn], Any] = (
            (lambda t: int(t.id)) if sorting.get("orderBy") == "id" else (lambda t: t.data.get("submitted", 0.0))
        )
        txns.sort(key=key, reverse=str(sorting.get("orderDescending")).lower() == "true")
        limit = int(paging.get("limit") or 1000)
        page = int(paging.get("offset") or 1)
        shown = txns[(page - 1) * limit: page * limit]
        if not txns:
            return ok(code="I00004", text="No records found.")
        return ok(transactions=[self._summary(t) for t in shown], totalNumInResultSet=len(txns))

    def _close_batch(self, ids: list[str]) -> None:
        with self.lock:
            batched = []
            for txn_id in ids:
                self.ledger.settle(txn_id)
                txn = self.ledger.get(txn_id)
                # Held transactions stay unsettled until approved; everything else leaves the list.
                if txn is not None and (txn.settled or txn.status in (kit.DECLINED, kit.VOIDED)):
                    batch_id = txn.data.setdefault("batch", f"{next(self._batch_ids)}")
                    batched.append((batch_id, txn_id))
            for batch_id in {b for b, _ in batched}:
                self.batches.append((batch_id, self.clock(), [t for b, t in batched if b == batch_id]))

    def _word(self, txn: Txn) -> str:
        if txn.kind == "refund":
            return "voided" if txn.status == kit.VOIDED else (
                "refundSettledSuccessfully" if txn.settled else "refundPendingSettlement")
        if txn.status in (kit.DECLINED, kit.VOIDED):
            return txn.status
        if txn.status == kit.AUTHORIZED:
            return "FDSAuthorizedPendingReview"
        return "settledSuccessfully" if txn.settled else "capturedPendingSettlement"

    def _summary(self, txn: Txn) -> dict[str, Any]:
        bill_to = txn.data.get("bill_to") or {}
        return {"transId": txn.id, "submitTimeUTC": wire_time(txn.data.get("submitted", 0.0)),
                "transactionStatus": self._word(txn), "invoiceNumber": txn.data.get("invoice"),
                "firstName": bill_to.get("firstName"), "lastName": bill_to.get("lastName"), "accountType": "Visa",
                "accountNumber": "XXXX" + txn.card, "settleAmount": Decimal(0) if txn.status == kit.VOIDED
                else txn.amount, "marketType": "eCommerce", "product": "Card Not Present"}

    def _transaction_details(self, txn: Txn) -> dict[str, Any]:
        reason = txn.data.get("reason", "1")
        details: dict[str, Any] = {"transId": txn.id}
        if txn.payment_id:
            details["refTransId"] = txn.payment_id
        details |= {
            "submitTimeUTC": wire_time(txn.data.get("submitted", 0.0)),
            "transactionType": "refundTransaction" if txn.kind == "refund" else "authCaptureTransaction",
            "transactionStatus": self._word(txn), "responseCode": {"2": 2, "253": 4}.get(reason, 1),
            "responseReasonCode": int(reason), "responseReasonDescription": TEXTS.get(reason, "Approval"),
            "authCode": txn.data.get("auth_code", ""),
        }
        if "batch" in txn.data:
            details["batch"] = {"batchId": txn.data["batch"], "settlementState": "settledSuccessfully"}
        details["order"] = {"invoiceNumber": txn.data.get("invoice"), "description": txn.data.get("description")}
        details |= {"authAmount": txn.requested, "settleAmount": Decimal(0) if txn.status == kit.VOIDED else txn.amount,
                    "payment": {"creditCard": {"cardNumber": "XXXX" + txn.card, "expirationDate": "XXXX",
                                               "cardType": "Visa"}}}
        return details


def schema_problem(node: dict[str, Any], name: str) -> str | None:
    """E00003's text for the first child out of the schema's order or over its length, else None."""
    sequence = SCHEMA.get(name)
    if sequence is not None:
        positions = [sequence.index(key) if key in sequence else -1 for key in node]
        for key, before, after in zip(list(node)[1:], positions, positions[1:], strict=False):
            if after < before:
                return f"The element '{name}' has invalid child element '{key}'."
    for key, value in node.items():
        if isinstance(value, str) and len(value) > LIMITS.get(key, len(value)):
            return f"The '{key}' element is invalid - The actual length is greater than the MaxLength value."
        if isinstance(value, dict):
            problem = schema_problem(value, key)
            if problem:
                return problem
    return None


def ok(code: str = "I00001", text: str = "Successful.", **body: Any) -> dict[str, Any]:
    return {**body, "messages": {"resultCode": "Ok", "message": [{"code": code, "text": text}]}}


def refusal(code: str, text: str) -> dict[str, Any]:
    return {"messages": {"resultCode": "Error", "message": [{"code": code, "text": text}]}}


def transaction_answer(code: str, reason: str, txn: Txn | None, last_four: str, *, auth_code: str | None = "") -> dict[
        str, Any]:
    response: dict[str, Any] = {
        "responseCode": code, "authCode": auth_code or "", "avsResultCode": "Y" if code == "1" else "P",
        "cvvResultCode": "M" if code == "1" else "", "transId": txn.id if txn is not None else "0",
        "refTransID": txn.payment_id or "" if txn is not None else "", "testRequest": "0",
        "accountNumber": "XXXX" + last_four, "accountType": "Visa",
    }
    entry = {"code": reason, "description": TEXTS.get(reason, "")}
    if code in ("1", "4"):
        response["messages"] = [entry]
        return ok(transactionResponse=response)
    response["errors"] = [{"errorCode": reason, "errorText": TEXTS.get(reason, "")}]
    return {"transactionResponse": response, **refusal("E00027", "The transaction was unsuccessful.")}


def answer(body: Any) -> Reply:
    return Reply(200, raw=(BOM + json.dumps(body, default=_number)).encode())


def _number(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)


def wire_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).replace(tzinfo=UTC).timestamp()


AuthorizeNetTxn = Record
LOGIN, KEY = "conformance7Ab", "Conformance4Key9"
PROFILE = Profile(
    start=lambda: AuthorizeNetFake(merchants={LOGIN: KEY}),
    merchant=LOGIN,
    credentials={"apiLoginId": LOGIN, "transactionKey": KEY},
    wrong_credentials={"apiLoginId": LOGIN, "transactionKey": "RevokedKey000000"},
    approving=TestCard("4111111111111111"),
    approved={"statusCode": "1", "responseMessage": "This transaction has been approved."},
    declining=TestCard("4000300011112220"),
    declined={"statusCode": "2", "errorCode": "declined", "responseMessage": "This transaction has been declined.",
              "gatewayHttpStatusCode": 200},
    sale=r"POST /xml/v1/request\.api createTransactionRequest authCaptureTransaction$",
    refused_status=200,  # E00007 in an HTTP 200 answer
)
