"""A stateful fake of PayPal Payflow Pro's HTTPS interface (gateway reference, more-gateways.md part 2).

    fake = PayflowFake(vendors={"acmeuniv": ("PayPal", "acmeapi", "secret")})

One URL, `POST /`, a name-value body (`NAME=value` or length-tagged `NAME[n]=value`), answered HTTP
200 with `RESULT=...&PNREF=...&RESPMSG=...`. Every request must carry the vendor's PARTNER, VENDOR,
USER and PWD (else RESULT 1) and an `X-VPS-REQUEST-ID`: a repeat of an id answers the first answer
again with `DUPLICATE=1` and does nothing (different data under the id: RESULT 133), as §2.6 says.

Pilot test triggers (§2.9), by amount: up to 1000.00 approves; 1001-2000 answers RESULT = amount -
1000 for the codes below (1012 declined, 1013 referral, 1104 a processor timeout, 1126 held for
review by the fraud filters: authorized but never settled, ...); 2001 and up declines (12).
`ACCT=000000000000000` or a number failing Luhn: 23; `EXPDATE=0298` or past: 24.

`S` sale, `V` void (ORIGID; a settled transaction: 108), `C` referenced credit (ORIGID, optional
AMT, partial allowed, after settlement only, never above what is left: 105; without ORIGID: 117,
non-referenced credits are off by default), `I` inquiry by ORIGID or CUSTREF (the last transaction
with it; none: 19) answering ORIGRESULT, ORIGPNREF, TRANSSTATE (1 failed, 6 pending, 8 settled,
+1000 voided), AMT and CUSTREF. The ledger's order id is the client's COMMENT2 (free text Payflow
keeps; our order id goes there), else its CUSTREF. Faults match `POST / TRXTYPE=<type>`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from tests.fakes._server import RecordedRequest, Reply
from tests.fakes.kit import APPROVED, AUTHORIZED, DECLINED, VOIDED, KitFake, Profile, Refused, TestCard, Txn

AMOUNT_RESULTS = {
    4: "Invalid amount", 12: "Declined", 13: "Referral", 23: "Invalid account number", 24: "Invalid expiration date",
    103: "Error reading response from host", 104: "Timeout waiting for Processor response", 114: "CSC Mismatch",
    125: "Declined by Fraud Service", 126: "Under review by Fraud Service", 1000: "Generic host error",
}
VOID_ERRORS = {"settled": "Void error: Transaction already settled", "voided": "Void error: Transaction already voided",
               "declined": "Void error: Transaction was not approved"}
_FIELD = re.compile(r"([A-Za-z0-9_]+)(?:\[(\d+)\])?=")


def parse_body(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _FIELD.match(text, position)
        if match is None:
            break
        start = match.end()
        if match.group(2):
            end = start + int(match.group(2))
        else:
            end = text.find("&", start)
            end = len(text) if end < 0 else end
        values[match.group(1).upper()] = text[start:end]
        position = end + 1
    return values


def nvp(**fields: Any) -> str:
    return "&".join(f"{name}={value}" for name, value in fields.items() if value not in (None, ""))


def luhn(digits: str) -> bool:
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(map(int, reversed(digits))))
    return total % 10 == 0


class PayflowFake(KitFake):
    def __init__(self, vendors: dict[str, tuple[str, str, str]]) -> None:
        super().__init__()
        self.vendors = vendors
        """{vendor: (partner, user, password)}"""
        self.answers: dict[tuple[str, str], tuple[str, str]] = {}
        """(vendor, X-VPS-REQUEST-ID) -> (the request body's hash: a fake keeps no card number, the
        answer given)."""

    def new_id(self) -> str:
        # PNREF: 12 letters and digits; random in part, so two fakes' ids never collide.
        return f"V{next(self.numbers):04d}{secrets.token_hex(4).upper()[:7]}"

    def handle(self, request: RecordedRequest) -> Reply:
        fields = parse_body(request.raw_body)
        vendor = fields.get("VENDOR", "")
        if self.vendors.get(vendor) != (fields.get("PARTNER"), fields.get("USER"), fields.get("PWD")):
            self.refuse_credentials()
            return self.text(nvp(RESULT=1, RESPMSG="User authentication failed"))
        request_id = request.headers.get("X-VPS-REQUEST-ID", "")
        digest = hashlib.sha256(request.raw_body.encode()).hexdigest()
        with self.lock:
            earlier = self.answers.get((vendor, request_id))
            if earlier is not None:
                if earlier[0] != digest:
                    return self.text(nvp(RESULT=133, RESPMSG="Data mismatch in HTTP retry request"))
                return self.text(earlier[1] + "&DUPLICATE=1")
            answer = self.carry_out(vendor, fields)
            if request_id and fields.get("TRXTYPE") != "I":
                self.answers[(vendor, request_id)] = (digest, answer)
        return self.text(answer)

    def carry_out(self, vendor: str, fields: dict[str, str]) -> str:
        if fields.get("TENDER") != "C":
            return nvp(RESULT=2, RESPMSG="Invalid tender")
        operation = {"S": self.sale, "V": self.void, "C": self.credit, "I": self.inquiry}.get(fields.get("TRXTYPE", ""))
        if operation is None:
            return nvp(RESULT=3, RESPMSG="Invalid transaction type")
        return operation(vendor, fields)

    def sale(self, vendor: str, fields: dict[str, str]) -> str:
        amount = _amount(fields.get("AMT"))
        if amount is None:
            return nvp(RESULT=4, RESPMSG="Invalid amount")
        result = self.result_for(amount, fields.get("ACCT", ""), fields.get("EXPDATE", ""))
        status = APPROVED if result == 0 else AUTHORIZED if result == 126 else DECLINED
        respmsg = "Approved" if result == 0 else AMOUNT_RESULTS[result]
        txn = self.ledger.pay(vendor, amount, fields.get("CURRENCY", "USD"), order_of(fields),
                              card=fields.get("ACCT", ""), status=status, result=result, respmsg=respmsg,
                              custref=fields.get("CUSTREF", ""))
        authcode = "010010" if status != DECLINED else None
        return nvp(RESULT=result, PNREF=txn.id, RESPMSG=respmsg, AUTHCODE=authcode, CVV2MATCH=_cvv_match(fields))

    def result_for(self, amount: Decimal, account: str, expiry: str) -> int:
        if not (account.isdigit() and len(account) >= 13 and luhn(account)) or account == "0" * 15:
            return 23
        today = date.today()
        if not (len(expiry) == 4 and expiry.isdigit()) or (int(expiry[2:]), int(expiry[:2])) < (
            today.year % 100, today.month
        ):
            return 24
        if amount <= 1000:
            return 0
        code = int(amount) - 1000
        return code if amount <= 2000 and amount == int(amount) and code in AMOUNT_RESULTS else 12

    def void(self, vendor: str, fields: dict[str, str]) -> str:
        try:
            txn, _ = self.ledger.void(vendor, fields.get("ORIGID", ""))
        except Refused as refusal:
            if refusal.reason == "not_found":
                return nvp(RESULT=19, RESPMSG="Original transaction ID not found")
            return nvp(RESULT=108, PNREF=self.new_id(), RESPMSG=VOID_ERRORS.get(refusal.reason, "Void error"))
        txn.data["void"] = pnref = self.new_id()
        return nvp(RESULT=0, PNREF=pnref, RESPMSG="Approved")

    def credit(self, vendor: str, fields: dict[str, str]) -> str:
        if not fields.get("ORIGID"):
            return nvp(RESULT=117, RESPMSG="Failed merchant rule check")
        amount = _amount(fields["AMT"]) if fields.get("AMT") else None
        if fields.get("AMT") and amount is None:
            return nvp(RESULT=4, RESPMSG="Invalid amount")
        try:
            refund = self.ledger.refund(vendor, fields["ORIGID"], amount, order_of(fields), result=0,
                                        respmsg="Approved", custref=fields.get("CUSTREF", ""))
        except Refused as refusal:
            if refusal.reason == "not_found":
                return nvp(RESULT=19, RESPMSG="Original transaction ID not found")
            return nvp(RESULT=105, PNREF=self.new_id(), RESPMSG=f"Credit error: {refusal.reason}")
        return nvp(RESULT=0, PNREF=refund.id, RESPMSG="Approved")

    def inquiry(self, vendor: str, fields: dict[str, str]) -> str:
        with self.lock:
            if fields.get("ORIGID"):
                txn = self.ledger.get(fields["ORIGID"])
                found = [txn] if txn is not None and txn.merchant == vendor else []
            else:
                custref = fields.get("CUSTREF", "")
                found = [t for t in self.ledger if t.merchant == vendor and custref and t.data["custref"] == custref]
            if not found:
                return nvp(RESULT=19, PNREF=self.new_id(), RESPMSG="Original transaction ID not found")
            txn = found[-1]  # several under one CUSTREF: Payflow answers the last (§2.7)
            return nvp(RESULT=0, PNREF=self.new_id(), RESPMSG="Approved", ORIGRESULT=txn.data["result"],
                       ORIGPNREF=txn.id, TRANSSTATE=transstate(txn), AMT=f"{txn.requested:.2f}",
                       CUSTREF=txn.data["custref"], ACCT=txn.card)

    def request_line(self, request: RecordedRequest) -> str:
        return f"{request.method} {request.path} TRXTYPE={parse_body(request.raw_body).get('TRXTYPE', '')}"

    def text(self, answer: str) -> Reply:
        return Reply(200, headers={"Content-Type": "text/namevalue"}, raw=answer.encode())

    def error_reply(self, status: int) -> Reply:
        return Reply(status, headers={"Content-Type": "text/html"}, raw=f"<html>HTTP {status}</html>".encode())

    def echo_reply(self, request: RecordedRequest) -> Reply:
        sent = " ".join(parse_body(request.raw_body).values())
        return self.text(f"RESULT=7&RESPMSG[{len(sent)}]={sent}")

    def malformed(self, mode: str, reply: Reply) -> Reply:
        answer = (reply.raw or b"").decode()
        if mode == "missing_id":
            answer = re.sub(r"&?PNREF=[^&]*", "", answer)
        elif mode == "nan_amount":
            answer += "&AMT=NaN"
        else:
            answer = f"<listing>{answer}</listing>"
        return self.text(answer)

    def view(self, txn: Txn) -> dict[str, Any]:
        return {"pnref": txn.id, "status": txn.status, "amount": txn.amount, "order_id": txn.order_id,
                "settled": txn.settled, "kind": txn.kind, "transstate": transstate(txn), **txn.data}


def order_of(fields: dict[str, str]) -> str | None:
    """The merchant's reference for the ledger: COMMENT2 when the client puts its order id there
    (Payflow keeps it as free text), else CUSTREF."""
    return fields.get("COMMENT2") or fields.get("CUSTREF") or None


def transstate(txn: Txn) -> int:
    if txn.data.get("result") not in (0, 126):
        return 1
    base = 8 if txn.settled else 6
    return base + 1000 if txn.status == VOIDED else base


def _amount(value: str | None) -> Decimal | None:
    try:
        amount = Decimal(value or "")
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount > 0 and amount == amount.quantize(Decimal("0.01")) else None


def _cvv_match(fields: dict[str, str]) -> str | None:
    cvv = fields.get("CVV2", "")
    if not cvv.isdigit() or cvv == "000":
        return None
    return "Y" if int(cvv) <= 300 else "N" if int(cvv) <= 600 else "X"


VENDOR, PARTNER, USER, PASSWORD = "acmeuniv", "PFPartner", "acmeapi", "p&ss=w0rd"
"""The conformance merchant. Its password holds `&` and `=`, so every call proves the length tags; its
partner is not PayPal's own (which reads like the gateway's name in every log line)."""

PROFILE = Profile(
    start=lambda: PayflowFake(vendors={VENDOR: (PARTNER, USER, PASSWORD)}),
    merchant=VENDOR,
    credentials={"partner": PARTNER, "vendor": VENDOR, "user": USER, "password": PASSWORD},
    wrong_credentials={"partner": PARTNER, "vendor": VENDOR, "user": USER, "password": "revoked"},
    approving=TestCard("5105105105105100"),
    approved={"statusCode": "0", "responseMessage": "Approved"},
    declining=TestCard("5105105105105100", amount=Decimal("1012.00")),
    declined={"statusCode": "12", "errorCode": "declined", "responseMessage": "Declined",
              "gatewayHttpStatusCode": 200},
    sale="TRXTYPE=S$",
    refused_status=200,  # RESULT 1, "User authentication failed", in an HTTP 200
)
