"""A stateful fake of the CardPointe Gateway REST API on the fake kit (`kit.py`; gateway reference §1.14).

    with CardConnectFake(merchants={"496160873888": ("testing", "testing123")}) as fake:
        gateway = CardConnectGateway(creds, GatewayContext(1001, fake.base_url, pool))
        ...
        fake.requests            # every RecordedRequest: method, path, query, headers, body,
                                 # raw_body, client (ip, port), basic_auth, status, fault
        fake.transactions        # retref -> CardConnectTxn (copy)
        fake.live_charges()      # approved sales neither voided nor declined, per merchid if given
        fake.auth_failures       # requests answered 401
        fake.settle_all(); fake.settle(retref)     # Queued for Capture -> Accepted (settled)
        fake.set_fault("slow", count=1, match="auth")   # see FakeServer.set_fault

Constructor: `merchants` {merchid: (username, password)}; `currency` (default USD); `shuffle`
(default True: answer keys in random order with a dummy key, like the UAT emulator);
`partial_auth` (merchids enabled for partial authorization, see below).

CardSecure (gateway reference more-gateways §5.1): `fake.tokenize(card)` is what the hosted iFrame
tokenizer gives the page: 16 digits, 9, the card's first two digits, ..., its last four; the same card
always gives the same token, which never expires. An auth whose `account` starts with 9 is a token:
it charges the card it stands for, and a token CardSecure never issued is C/11 "Invalid card". Every
answer carries the card's token in `token` and `account`, as CardPointe's do.

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
prepaid card with PREPAID_BALANCE left (`fake.approve_up_to` takes more cards). Asked for more on a
merchid in `partial_auth`, the auth comes back A/10 "Partial Approval" with `amount` = the balance;
on any other merchid it declines C/NU.

Field limits (OpenAPI `authRequest`): name, address, city 30; region 20; country 2; postal 9, and
for a US address (country US or absent) 5 or 9 digits. An auth breaking one is refused HTTP 400
{"message": ..., "errorcode": ...} and nothing is recorded.

Faults: "slow" (carry out, answer after `seconds` or once the client gave up), "drop" (carry out,
close without answering), "missing_id", "nan_amount", "listing" (carry out, then answer without
`retref`, with amount "NaN", or as a JSON array), "echo" (not carried out: C with every value the
request sent in `resptext` and the CVV as `respcode`), "http500", "http429" (not carried out unless
carry_out=True), "respstat_b" (HTTP 200 B/62 "Timed out"; with
carry_out=True the transaction is carried out and approved, only the answer says B).
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from gateways.cards import luhn_valid
from tests.fakes import kit
from tests.fakes._server import COMMON_FAULTS, Fault, RecordedRequest, Reply, sent_values
from tests.fakes.kit import KitFake, Profile, Refused, TestCard, Txn

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
NOT_FOUND = frozenset({"not_found", "not_a_payment", "declined"})
"""Ledger refusals CardPointe answers 29 "Txn not found" (a declined auth is nothing to act on)."""
SETLSTAT = {kit.AUTHORIZED: "Authorized", kit.DECLINED: "Declined", kit.VOIDED: "Voided"}


@dataclass
class CardConnectTxn:
    """How tests see one transaction (`fake.transactions`): the ledger's entry in CardPointe's words."""

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
    live: bool = False
    voidable: bool = False
    refundable: bool = False


class CardConnectFake(KitFake):
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
        self._retrefs = itertools.count(random.randrange(100_000_000_000, 800_000_000_000))
        self.merchants = dict(merchants)
        self.currency = currency
        self.shuffle = shuffle
        self.partial_auth = frozenset(partial_auth)
        self.decline_cards = dict(DECLINE_CARDS)
        self.approve_up_to[PREPAID_CARD] = PREPAID_BALANCE
        self.vault: dict[str, str] = {}
        """CardSecure's: token -> the card it stands for."""

    def tokenize(self, number: str) -> str:
        middle = int(hashlib.sha256(number.encode()).hexdigest(), 16) % 10**9
        token = f"9{number[:2]}{middle:09d}{number[-4:]}"
        with self.lock:
            self.vault[token] = number
        return token

    def new_id(self) -> str:
        return str(next(self._retrefs))

    def view(self, txn: Txn) -> CardConnectTxn:
        data = txn.data
        return CardConnectTxn(
            retref=txn.id,
            merchid=txn.merchant,
            kind="auth" if txn.kind == "payment" else "refund",
            orderid=txn.order_id,
            amount=txn.amount,
            amount_sent=data["amount_sent"],
            currency=txn.currency,
            last_four=txn.card,
            respstat=data["respstat"],
            respcode=data["respcode"],
            resptext=data["resptext"],
            setlstat=setlstat(txn),
            authcode=data.get("authcode", ""),
            respproc=data.get("respproc", "FNOR"),
            refunded=txn.refunded,
            refunds=list(txn.refunds),
            original_retref=txn.payment_id,
            live=txn.live,
            voidable=txn.voidable,
            refundable=txn.refundable,
        )

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
                return field_limit_refusal(body) or self._answer(self._auth(body, merchid))
            if endpoint == "inquireByOrderid":
                return self._inquire_by_order_id(args[0], merchid, everywhere=len(args) < 3)
            if endpoint == "inquireMerchant":
                return self._answer({"merchid": merchid, "enabled": True, "site": "fake", "currency": self.currency})
            try:
                return self._answer(self._act(endpoint, body, merchid, args))
            except Refused as refusal:
                # Only a void says "already voided"; to anything else a voided auth is not found.
                voiding = endpoint in ("void", "voidByOrderId")
                reason = refusal.reason if voiding or refusal.reason != "voided" else "not_found"
                return self._answer(refusal_answer(reason))

    def _act(self, endpoint: str, body: dict[str, Any], merchid: str, args: list[str]) -> dict[str, Any]:
        retref = str(body.get("retref") or "")
        if endpoint == "inquire":
            return self._inquiry(self.ledger.find(merchid, args[0]))
        if endpoint == "capture":
            txn = self.ledger.capture(merchid, retref, sent_amount(body.get("amount")))
            return self._response(txn) | {"setlstat": QUEUED, "batchid": "1900941444"}
        if endpoint == "void":
            return self._void(body, merchid, retref)
        if endpoint == "refund":
            return self._refund(body, merchid, retref)
        # voidByOrderId: since 5/2023 it ignores declined transactions.
        orderid = str(body.get("orderid") or "")
        candidates = [t for t in self.ledger.by_order(merchid, orderid) if t.kind == "payment"]
        live = [t for t in candidates if t.status in kit.LIVE]
        if not live:
            raise Refused("not_found")
        return self._void(body, merchid, live[-1].id)

    def echo_reply(self, request: RecordedRequest) -> Reply:
        body = request.body if isinstance(request.body, dict) else {}
        text = "Do not honor: " + " ".join(sent_values(request))
        refusal = refused(text, str(body.get("cvv2") or "05")) | {"retref": self.new_id()}
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
        return self._answer(timed_out(retref or self.new_id(), request.body))

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
            self.refuse_credentials()
        return ok

    def _auth(self, body: dict[str, Any], merchid: str) -> dict[str, Any]:
        amount = parse_amount(body.get("amount"))
        account = str(body.get("account") or "")
        if account.startswith("9"):  # a CardSecure token: no card number it tokenizes starts with 9
            account = self.vault.get(account, "")
        if amount is None:
            return refused("Invalid amount", "43")
        if not account:
            return refused("Invalid card", "11")
        answer = {"respstat": "A", "respcode": "00", "resptext": "Approval", "respproc": "FNOR"}
        currency = str(body.get("currency") or self.currency)
        approved = self.approved_amount(account, amount)
        if currency != self.currency:
            answer.update(respstat="C", respcode="32", resptext="Wrong currency for merch", respproc="PPS")
        elif account in self.decline_cards:
            respproc, respcode, resptext = self.decline_cards[account]
            answer.update(respstat="C", respproc=respproc, respcode=respcode, resptext=resptext)
        elif approved is not None and approved < amount:
            # Only a merchant with partial authorization gets less than asked; elsewhere it declines.
            partial = merchid in self.partial_auth
            answer.update(respstat="A" if partial else "C", respcode="10" if partial else "NU",
                          resptext="Partial Approval" if partial else "Insufficient funds")
        elif account in TIMEOUT_CARDS:
            answer.update(respstat="B", respcode="62", resptext="Timed out", respproc="PPS")
        capture = str(body.get("capture", "")).upper() == "Y"
        approved_ok = answer["respstat"] == "A"
        status = (kit.APPROVED if capture else kit.AUTHORIZED) if approved_ok else kit.DECLINED
        txn = self.ledger.pay(
            merchid,
            amount,
            currency,
            stored_order_id(body.get("orderid")),
            card=account,
            status=status,
            approved=approved if approved_ok else None,
            amount_sent=str(body.get("amount")),
            authcode=f"PPS{random.randrange(100, 999)}" if approved_ok else "",
            token=self.tokenize(account),
            **answer,
        )
        if answer["respstat"] == "B":
            return timed_out(txn.id, body)
        reply = self._response(txn)
        if not approved_ok:
            reply["amount"] = "0.00"
        return reply

    def _void(self, body: dict[str, Any], merchid: str, retref: str) -> dict[str, Any]:
        given = body.get("amount") not in (None, "", "0", "0.00")
        txn, voided = self.ledger.void(merchid, retref, sent_amount(body.get("amount")) if given else None)
        return self._response(txn) | {"amount": format_amount(voided), "authcode": "REVERS"}

    def _refund(self, body: dict[str, Any], merchid: str, retref: str) -> dict[str, Any]:
        payment = self.ledger.find(merchid, retref)
        refund = self.ledger.refund(
            merchid,
            retref,
            sent_amount(body.get("amount")),
            stored_order_id(body.get("orderid")) or payment.order_id,
            amount_sent=str(body.get("amount")),
            respstat="A",
            respcode="00",
            resptext="Approval",
            respproc="PPS",
            authcode=f"PPS{random.randrange(100, 999)}",
        )
        return self._response(refund)

    def _inquire_by_order_id(self, orderid: str, merchid: str, *, everywhere: bool) -> Reply:
        found = [self._inquiry(t) for t in self.ledger.by_order(None if everywhere else merchid, orderid)]
        if not found:
            return self._answer(not_found())
        return Reply(200, found[0] if len(found) == 1 else found)

    def _inquiry(self, txn: Txn) -> dict[str, Any]:
        # A refund is money going back to the card: inquiries show its amount as a credit, negative
        # like a forced credit's (gateway reference §1.5: negative amount = credit).
        amount = format_amount(-txn.amount if txn.kind == "refund" else txn.amount)
        return self._response(txn) | {
            "amount": amount,
            "setlstat": setlstat(txn),
            "voidable": "Y" if txn.voidable else "N",
            "refundable": "Y" if txn.refundable else "N",
            "lastfour": txn.card,
            "capture": "Y" if txn.status == kit.APPROVED else "N",
        }

    def _response(self, txn: Txn) -> dict[str, Any]:
        return {
            "amount": format_amount(txn.amount),
            "resptext": txn.data["resptext"],
            "respcode": txn.data["respcode"],
            "respstat": txn.data["respstat"],
            "respproc": txn.data["respproc"],
            "retref": txn.id,
            "merchid": txn.merchant,
            "currency": txn.currency,
            "authcode": txn.data["authcode"],
            "token": txn.data.get("token", ""),
            "account": txn.data.get("token", ""),
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


def setlstat(txn: Txn) -> str:
    if txn.status == kit.APPROVED:
        return SETTLED if txn.settled else QUEUED
    return SETLSTAT.get(txn.status, "Declined")


def refusal_answer(reason: str) -> dict[str, Any]:
    """CardPointe's answer to what the ledger refused."""
    if reason in NOT_FOUND:
        return not_found()
    return {
        "voided": refused("No matching auth for reversal", "25"),
        "settled": refused("Txn Batched", "27"),
        "not_settled": refused("Txn not settled", "28"),
        "captured": refused("Txn not captured: already captured", "24"),
    }.get(reason) or refused("Invalid amount", "43")


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


def stored_order_id(orderid: Any) -> str | None:
    return masked_order_id(str(orderid)) if orderid else None


def parse_amount(value: Any) -> Decimal | None:
    """A CardConnect amount: with a point it is dollars, without one cents."""
    text = str(value if value is not None else "").strip()
    try:
        amount = Decimal(text) if "." in text else Decimal(int(text)) / 100
    except (InvalidOperation, ValueError):
        return None
    return amount.quantize(CENT) if amount >= 0 else None


def sent_amount(value: Any) -> Decimal | None:
    """The amount a capture, void or refund names: None when it names none (the whole amount); an
    unreadable one as -1, which the ledger refuses as a bad amount after its other checks."""
    if not value:
        return None
    amount = parse_amount(value)
    return Decimal(-1) if amount is None else amount


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


MERCHID, USER, PASSWORD = "800000000099", "conformance-user", "conformance-password"
PROFILE = Profile(
    start=lambda: CardConnectFake(merchants={MERCHID: (USER, PASSWORD)}),
    merchant=MERCHID,
    credentials={"username": USER, "password": PASSWORD, "merchantId": MERCHID},
    wrong_credentials={"username": USER, "password": "revoked-password", "merchantId": MERCHID},
    approving=TestCard("4788250000121443"),
    declining=TestCard("4387751111111038"),
    approved={"statusCode": "00", "responseMessage": "Approval"},
    declined={"statusCode": "05", "errorCode": "declined", "responseMessage": "Do not honor",
              "gatewayHttpStatusCode": 200},
    sale="PUT /cardconnect/rest/auth$",
)
