"""A stateful fake of the CardPointe Gateway REST API (gateway reference §1.14).

    with CardConnectFake(merchants={"496160873888": ("testing", "testing123")}) as fake:
        gateway = CardConnectGateway(creds, GatewayContext(1001, fake.base_url, pool))
        ...
        fake.requests            # every RecordedRequest: method, path, query, headers, body,
                                 # raw_body, client (ip, port), basic_auth, status, fault
        fake.transactions        # retref -> CardConnectTxn (copy)
        fake.live_charges()      # approved sales neither voided nor declined, per merchid if given
        fake.auth_failures       # requests answered 401
        fake.settle_all(); fake.settle(retref)     # Queued for Capture -> Accepted (settled)
        fake.set_fault("slow", seconds=2, count=1, match="auth")   # see FakeServer.set_fault

Constructor: `merchants` {merchid: (username, password)}; `currency` (default USD); `shuffle`
(default True: answer keys in random order with a dummy key, like the UAT emulator);
`partial_auth` (merchids enabled for partial authorization, see below).

Routes: PUT|POST /cardconnect/rest/{auth,capture,void,refund,voidByOrderId}; GET
inquire/{retref}/{merchid}, inquireByOrderid/{orderid}/{merchid}[/{set}], inquireMerchant/{merchid};
anything else 404. Basic credentials must match the merchid in the body or path, else 401.
Amounts with a point are dollars, without one cents; `CardConnectTxn.amount_sent` keeps the string.

Rules: an orderid holding a Luhn-valid 13-19 digit run is stored masked (`masked_order_id`), so
inquireByOrderid and voidByOrderId with the original find nothing; capture "Y" -> Queued for
Capture, else Authorized; a refund is its own transaction (new retref), voidable until settled, and
inquiries show its amount negative (a credit); refund before settlement -> C/28; unknown retref or
another merchant's -> C/29; void after settlement -> C/27; void of Queued for Capture only
in full (C/43 otherwise); voidByOrderId ignores declines. Cards (respproc FNOR, as the UAT emulator
answers them): 4387751111111053 C/NU insufficient funds, 4387751111111038 C/05 do not honor,
4387751111111046 C/54 wrong expiration, 4387751111111020 C/01 refer to issuer; `fake.decline_cards`
takes more {card: (respproc, respcode, resptext)} for a test. 4999006200620062 (and the MC/Discover
twins) PPS B/62 timed out; any other card approves A/00. Gateway-level refusals are respproc PPS.

Partial approval (guides, partial approval section; FNOR 10): PREPAID_CARD is a test trigger, a
prepaid card with PREPAID_BALANCE left. Asked for more on a merchid in `partial_auth`, the auth comes
back A/10 "Partial Approval" with `amount` = the balance; on any other merchid it declines C/NU.

Field limits (OpenAPI `authRequest`): name, address, city 30; region 20; country 2; postal 9, and
for a US address (country US or absent) 5 or 9 digits. An auth breaking one is refused HTTP 400
{"message": ..., "errorcode": ...} and nothing is recorded.

Faults: "slow" (carry out, answer after `seconds`), "drop" (carry out, close without answering),
"missing_id", "nan_amount", "listing" (carry out, then answer without `retref`, with amount "NaN", or
as a JSON array), "echo" (not carried out: C with every value the request sent in `resptext` and the
CVV as `respcode`),
"http500" (not carried out unless carry_out=True), "respstat_b" (HTTP 200 B/62 "Timed out"; with
carry_out=True the transaction is carried out and approved, only the answer says B).
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from gateways.cards import luhn_valid
from tests.fakes._server import COMMON_FAULTS, FakeServer, Fault, RecordedRequest, Reply, sent_values

CENT = Decimal("0.01")
DECLINE_CARDS = {
    "4387751111111053": ("FNOR", "NU", "Insufficient funds"),
    "4387751111111038": ("FNOR", "05", "Do not honor"),
    "4387751111111046": ("FNOR", "54", "Wrong expiration"),
    "4387751111111020": ("FNOR", "01", "Refer to issuer"),
}
PREPAID_CARD = "4005550000000019"
PREPAID_BALANCE = Decimal("10.00")
FIELD_LIMITS = {"name": 30, "address": 30, "address2": 30, "city": 30, "region": 20, "country": 2, "postal": 9}
TIMEOUT_CARDS = frozenset({"4999006200620062", "5111006200620062", "6465006200620062"})
SETTLED = "Accepted"
QUEUED = "Queued for Capture"
WRITE_ENDPOINTS = ("auth", "capture", "void", "refund", "voidByOrderId")


@dataclass
class CardConnectTxn:
    retref: str
    merchid: str
    kind: str
    """"auth" (a sale or authorization) or "refund"."""
    orderid: str | None
    amount: Decimal
    amount_sent: str
    currency: str
    last_four: str
    respstat: str
    respcode: str
    resptext: str
    setlstat: str
    authcode: str = ""
    respproc: str = "FNOR"
    refunded: Decimal = Decimal(0)
    refunds: list[str] = field(default_factory=list)
    original_retref: str | None = None

    @property
    def live(self) -> bool:
        return self.kind == "auth" and self.respstat == "A" and self.setlstat not in ("Voided", "Declined")

    @property
    def voidable(self) -> bool:
        # A refund is a transaction of its own and, like a sale, voidable until it settles.
        approved_refund = self.kind == "refund" and self.respstat == "A"
        return (self.live or approved_refund) and self.setlstat in ("Authorized", QUEUED)

    @property
    def refundable(self) -> bool:
        return self.live and self.setlstat == SETTLED and self.refunded < self.amount


class CardConnectFake(FakeServer):
    fault_modes = COMMON_FAULTS | {"respstat_b"}
    url_path = "/cardconnect/rest"
    id_field = "retref"
    nan_amount = "NaN"  # CardConnect amounts are strings

    def __init__(
        self,
        merchants: dict[str, tuple[str, str]],
        *,
        currency: str = "USD",
        shuffle: bool = True,
        partial_auth: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__()
        self.merchants = dict(merchants)
        self.currency = currency
        self.shuffle = shuffle
        self.partial_auth = frozenset(partial_auth)
        self.decline_cards = dict(DECLINE_CARDS)
        self.auth_failures = 0
        self._transactions: dict[str, CardConnectTxn] = {}
        self._retrefs = itertools.count(random.randrange(100_000_000_000, 800_000_000_000))

    @property
    def transactions(self) -> dict[str, CardConnectTxn]:
        with self.lock:
            return {retref: replace(txn) for retref, txn in self._transactions.items()}

    def live_charges(self, merchid: str | None = None) -> list[CardConnectTxn]:
        return [t for t in self.transactions.values() if t.live and merchid in (None, t.merchid)]

    def settle_all(self) -> None:
        with self.lock:
            for txn in self._transactions.values():
                if txn.setlstat == QUEUED:
                    txn.setlstat = SETTLED

    def settle(self, retref: str) -> None:
        with self.lock:
            txn = self._transactions[retref]
            if txn.setlstat == QUEUED:
                txn.setlstat = SETTLED

    def handle(self, request: RecordedRequest) -> Reply:
        route = self._route(request)
        if route is None:
            return Reply(
                404,
                {
                    "timestamp": "2024-01-01T00:00:00.000+0000",
                    "status": 404,
                    "error": "Not Found",
                    "path": request.path,
                },
            )
        endpoint, args = route
        body = request.body if isinstance(request.body, dict) else {}
        merchid = args[-1] if request.method == "GET" else str(body.get("merchid") or "")
        if request.method == "GET" and endpoint == "inquireByOrderid":
            merchid = args[1]
        if not self._authorised(request, merchid):
            return Reply(401)
        with self.lock:
            if endpoint == "auth":
                return field_limit_refusal(body) or self._answer(self._auth(body))
            if endpoint == "capture":
                return self._answer(self._capture(body))
            if endpoint == "void":
                return self._answer(self._void(body, self._find(str(body.get("retref") or ""), merchid)))
            if endpoint == "refund":
                return self._answer(self._refund(body))
            if endpoint == "voidByOrderId":
                return self._answer(self._void_by_order_id(body))
            if endpoint == "inquire":
                txn = self._find(args[0], merchid)
                return self._answer(self._inquiry(txn) if txn else not_found())
            if endpoint == "inquireByOrderid":
                return self._inquire_by_order_id(args[0], merchid, everywhere=len(args) < 3)
            return self._answer({"merchid": merchid, "enabled": True, "site": "fake", "currency": self.currency})

    def echo_reply(self, request: RecordedRequest) -> Reply:
        body = request.body if isinstance(request.body, dict) else {}
        text = "Do not honor: " + " ".join(sent_values(request))
        refusal = refused(text, str(body.get("cvv2") or "05")) | {"retref": self._next_retref()}
        return self._answer(refusal | {"merchid": str(body.get("merchid") or "")})

    def error_reply(self, status: int) -> Reply:
        if status == 400:  # a request error in the OpenAPI's shape (gateway reference §1.13)
            return Reply(400, {"message": "Invalid field: amount", "errorcode": 49})
        return super().error_reply(status)

    def special_fault(self, fault: Fault, request: RecordedRequest) -> Reply | None:
        if fault.mode != "respstat_b":
            return None
        reply = self.handle(request) if fault.carry_out else None
        retref = reply.body.get("retref") if reply and isinstance(reply.body, dict) else None
        return self._answer(timed_out(retref or self._next_retref(), request.body))

    def _route(self, request: RecordedRequest) -> tuple[str, list[str]] | None:
        match = re.fullmatch(r"/cardconnect/rest/([A-Za-z]+)((?:/[^/]+)*)", request.path)
        if not match:
            return None
        endpoint, args = match.group(1), [a for a in match.group(2).split("/") if a]
        if request.method in ("PUT", "POST") and endpoint in WRITE_ENDPOINTS and not args:
            return endpoint, args
        if request.method != "GET":
            return None
        arity = {"inquire": (2,), "inquireByOrderid": (2, 3), "inquireMerchant": (1,)}.get(endpoint, ())
        return (endpoint, args) if len(args) in arity else None

    def _authorised(self, request: RecordedRequest, merchid: str) -> bool:
        ok = merchid in self.merchants and request.basic_auth == self.merchants[merchid]
        if not ok:
            with self.lock:
                self.auth_failures += 1
        return ok

    def _auth(self, body: dict[str, Any]) -> dict[str, Any]:
        amount = parse_amount(body.get("amount"))
        account = str(body.get("account") or "")
        if amount is None:
            return refused("Invalid amount", "43")
        if not account:
            return refused("Invalid card", "11")
        txn = CardConnectTxn(
            retref=self._next_retref(),
            merchid=str(body["merchid"]),
            kind="auth",
            orderid=_stored_order_id(body.get("orderid")),
            amount=amount,
            amount_sent=str(body.get("amount")),
            currency=str(body.get("currency") or self.currency),
            last_four=account[-4:],
            respstat="A",
            respcode="00",
            resptext="Approval",
            setlstat=QUEUED if str(body.get("capture", "")).upper() == "Y" else "Authorized",
            authcode=f"PPS{random.randrange(100, 999)}",
        )
        if txn.currency != self.currency:
            txn.respstat, txn.respcode, txn.resptext, txn.respproc = "C", "32", "Wrong currency for merch", "PPS"
        elif account in self.decline_cards:
            txn.respstat = "C"
            txn.respproc, txn.respcode, txn.resptext = self.decline_cards[account]
        elif account == PREPAID_CARD and amount > PREPAID_BALANCE:
            self._prepaid(txn)
        elif account in TIMEOUT_CARDS:
            txn.respstat, txn.respcode, txn.resptext, txn.respproc = "B", "62", "Timed out", "PPS"
        if txn.respstat != "A":
            txn.setlstat, txn.authcode = "Declined", ""
        self._transactions[txn.retref] = txn
        if txn.respstat == "B":
            return timed_out(txn.retref, body)
        answer = self._response(txn)
        if txn.respstat != "A":
            answer["amount"] = "0.00"
        return answer

    def _prepaid(self, txn: CardConnectTxn) -> None:
        """The prepaid card cannot cover the amount: a partial approval of its balance where the
        merchant has partial authorization, a decline elsewhere."""
        if txn.merchid in self.partial_auth:
            txn.amount, txn.respcode, txn.resptext = PREPAID_BALANCE, "10", "Partial Approval"
        else:
            txn.respstat, txn.respcode, txn.resptext = "C", "NU", "Insufficient funds"

    def _capture(self, body: dict[str, Any]) -> dict[str, Any]:
        txn = self._find(str(body.get("retref") or ""), str(body.get("merchid")))
        if txn is None or not txn.live:
            return not_found()
        if txn.setlstat != "Authorized":
            return refused("Txn not captured: already captured", "24")
        amount = parse_amount(body.get("amount")) if body.get("amount") else txn.amount
        if amount is None or amount > txn.amount:
            return refused("Invalid amount", "43")
        txn.amount, txn.setlstat = amount, QUEUED
        return self._response(txn) | {"setlstat": QUEUED, "batchid": "1900941444"}

    def _void(self, body: dict[str, Any], txn: CardConnectTxn | None) -> dict[str, Any]:
        if txn is None or txn.respstat != "A":
            return not_found()
        if txn.setlstat == "Voided":
            return refused("No matching auth for reversal", "25")
        if txn.setlstat == SETTLED:
            return refused("Txn Batched", "27")
        amount = parse_amount(body.get("amount")) if body.get("amount") not in (None, "", "0", "0.00") else txn.amount
        if amount is None or amount > txn.amount:
            return refused("Invalid amount", "43")
        if amount < txn.amount:
            if txn.setlstat != "Authorized":
                return refused("Invalid amount", "43")  # Queued for Capture voids only in full
            txn.amount -= amount
        else:
            txn.setlstat = "Voided"
            original = self._transactions.get(txn.original_retref or "")
            if original is not None:  # a voided refund gives the payment its refundable amount back
                original.refunded -= amount
        return self._response(txn) | {"amount": format_amount(amount), "authcode": "REVERS"}

    def _refund(self, body: dict[str, Any]) -> dict[str, Any]:
        merchid = str(body.get("merchid"))
        original = self._find(str(body.get("retref") or ""), merchid)
        if original is None or not original.live:
            return not_found()
        if original.setlstat != SETTLED:
            return refused("Txn not settled", "28")
        amount = parse_amount(body.get("amount")) if body.get("amount") else original.amount - original.refunded
        if amount is None or amount <= 0 or original.refunded + amount > original.amount:
            return refused("Invalid amount", "43")
        refund = CardConnectTxn(
            retref=self._next_retref(),
            merchid=merchid,
            kind="refund",
            orderid=_stored_order_id(body.get("orderid")) or original.orderid,
            amount=amount,
            amount_sent=str(body.get("amount")),
            currency=original.currency,
            last_four=original.last_four,
            respstat="A",
            respcode="00",
            resptext="Approval",
            setlstat=QUEUED,
            authcode=f"PPS{random.randrange(100, 999)}",
            respproc="PPS",
            original_retref=original.retref,
        )
        original.refunded += amount
        original.refunds.append(refund.retref)
        self._transactions[refund.retref] = refund
        return self._response(refund)

    def _void_by_order_id(self, body: dict[str, Any]) -> dict[str, Any]:
        orderid, merchid = str(body.get("orderid") or ""), str(body.get("merchid"))
        # Since 5/2023 voidByOrderId ignores declined transactions.
        candidates = [t for t in self._by_order(orderid, merchid) if t.kind == "auth" and t.respstat == "A"]
        live = [t for t in candidates if t.setlstat != "Voided"]
        if not live:
            return not_found()
        return self._void(body, live[-1])

    def _inquire_by_order_id(self, orderid: str, merchid: str, *, everywhere: bool) -> Reply:
        found = [self._inquiry(t) for t in self._by_order(orderid, None if everywhere else merchid)]
        if not found:
            return self._answer(not_found())
        return Reply(200, found[0] if len(found) == 1 else found)

    def _inquiry(self, txn: CardConnectTxn) -> dict[str, Any]:
        # A refund is money going back to the card: inquiries show its amount as a credit, negative
        # like a forced credit's (gateway reference §1.5: negative amount = credit).
        amount = format_amount(-txn.amount if txn.kind == "refund" else txn.amount)
        return self._response(txn) | {
            "amount": amount,
            "setlstat": txn.setlstat,
            "voidable": "Y" if txn.voidable else "N",
            "refundable": "Y" if txn.refundable else "N",
            "lastfour": txn.last_four,
            "capture": "Y" if txn.setlstat in (QUEUED, SETTLED) else "N",
        }

    def _response(self, txn: CardConnectTxn) -> dict[str, Any]:
        return {
            "amount": format_amount(txn.amount),
            "resptext": txn.resptext,
            "respcode": txn.respcode,
            "respstat": txn.respstat,
            "respproc": txn.respproc,
            "retref": txn.retref,
            "merchid": txn.merchid,
            "currency": txn.currency,
            "authcode": txn.authcode,
            "token": "94" + "0" * 10 + txn.last_four,
            "account": "94" + "0" * 10 + txn.last_four,
            "commcard": " C ",
            "avsresp": " ",
            "cvvresp": "M",
        }

    def _answer(self, body: dict[str, Any]) -> Reply:
        if self.shuffle:
            items = [*body.items(), ("dummyfield", "emulator noise")]
            random.shuffle(items)
            body = dict(items)
        return Reply(200, body)

    def _find(self, retref: str, merchid: str) -> CardConnectTxn | None:
        txn = self._transactions.get(retref)
        return txn if txn is not None and txn.merchid == merchid else None

    def _by_order(self, orderid: str, merchid: str | None) -> list[CardConnectTxn]:
        return [t for t in self._transactions.values() if t.orderid == orderid and merchid in (None, t.merchid)]

    def _next_retref(self) -> str:
        return str(next(self._retrefs))


def masked_order_id(orderid: str) -> str:
    """What CardPointe stores for `orderid`: every 13-19 digit stretch that passes Luhn is masked
    like a card number (x's and its last four), so the original id no longer finds it (OpenAPI,
    `orderid`: "No portion of the order ID should be mistaken for a PAN")."""
    chars = list(orderid)
    for run in re.finditer(r"\d{13,}", orderid):
        for length in range(13, min(19, len(run.group())) + 1):
            for start in range(run.start(), run.end() - length + 1):
                if luhn_valid(orderid[start : start + length]):
                    chars[start : start + length - 4] = "X" * (length - 4)
    return "".join(chars)


def _stored_order_id(orderid: Any) -> str | None:
    return masked_order_id(str(orderid)) if orderid else None


def parse_amount(value: Any) -> Decimal | None:
    """A CardConnect amount: with a point it is dollars, without one cents."""
    text = str(value if value is not None else "").strip()
    try:
        amount = Decimal(text) if "." in text else Decimal(int(text)) / 100
    except (InvalidOperation, ValueError):
        return None
    return amount.quantize(CENT) if amount >= 0 else None


def format_amount(amount: Decimal) -> str:
    return format(amount.quantize(CENT), "f")


def field_limit_refusal(body: dict[str, Any]) -> Reply | None:
    """HTTP 400 for an auth whose address fields break the OpenAPI limits; None when they fit."""
    for name, limit in FIELD_LIMITS.items():
        value = body.get(name)
        if value is not None and len(str(value)) > limit:
            return Reply(400, {"message": f"{name} exceeds the maximum length of {limit}", "errorcode": 49})
    country = str(body.get("country") or "US")
    if len(country) != 2 or not country.isalpha():
        return Reply(400, {"message": "country must be a 2-character country code", "errorcode": 49})
    postal = body.get("postal")
    if postal is not None and country.upper() == "US" and not re.fullmatch(r"\d{5}|\d{9}", str(postal)):
        return Reply(400, {"message": "postal must be 5 or 9 digits when country is US", "errorcode": 49})
    return None


def not_found() -> dict[str, Any]:
    return refused("Txn not found", "29")


def refused(text: str, code: str) -> dict[str, Any]:
    return {"respproc": "PPS", "resptext": text, "respcode": code, "respstat": "C", "retref": "", "amount": "0.00"}


def timed_out(retref: str, body: Any) -> dict[str, Any]:
    merchid = body.get("merchid") if isinstance(body, dict) else ""
    return {
        "amount": "0.00",
        "resptext": "Timed out",
        "setlstat": "Declined",
        "respcode": "62",
        "merchid": merchid,
        "respproc": "PPS",
        "retref": retref,
        "respstat": "B",
    }
