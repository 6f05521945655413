"""A stateful fake of the Payload REST API (gateway reference §2.9).

    with PayloadFake(accounts={"test_secret_key_A": "acct_A"}) as fake:
        gateway = PayloadGateway({"apiKey": "test_secret_key_A", "processingId": "acct_A"},
                                 GatewayContext(1001, fake.base_url, pool))
        ...
        fake.requests            # every RecordedRequest (see tests/fakes/_server.py)
        fake.transactions        # id -> PayloadTxn (copy)
        fake.live_charges()      # processed/authorized payments, per processing_id if given
        fake.auth_failures       # requests answered 401 or 403
        fake.settle_all(); fake.settle(txn_id)     # funding_status pending -> batched
        fake.set_fault("drop", match="POST /transactions")

Constructor: `accounts` {api_key: processing_id}; `currencies` {processing_id: ISO code}, USD for
any account not named. `base_url` has no trailing slash; payload-api's Session needs
`fake.base_url + "/"`.

Routes: POST /transactions (type payment or refund), PUT /transactions/{id}, GET /transactions/{id},
GET /transactions?order_number=&type=&status=&processing_id= ({"object":"list","values":[...]}).
Auth: Basic (key, "") or Bearer key, else 401 Unauthorized; a payment for a processing_id that is not
the key's gets 403 Forbidden, and so does reading or voiding another key's transaction (outside the
key's scope); an unknown transaction is 404. JSON and bracketed form bodies.
Success is always HTTP 200 with "object":"transaction" (payload-api treats 201 as an error).

Rules: payments start processed/approved with funding_status pending; void (PUT status=voided) only
while pending; refunds (with ledger[0].assoc_transaction_id) only once batched and never above what
is left. Cards 4111111111119900..9909 and 4000000000000002 decline with HTTP 400 TransactionDeclined.

Currency: a transaction has none of its own. Every charge is made in its processing account's
currency, whatever the request says (a `currency` key in the body is ignored, as Payload does);
`PayloadTxn.currency` records which.

Statuses (processed, authorized, processing, declined, rejected, voided; docs and the support
article "Payment status overview"). Test triggers: HOLD_CARD answers `authorized`, a hold that a
PUT status=processed completes; PROCESSING_CARD answers `processing`, which `fake.finish(id, status)`
moves on (processed, declined or rejected). `fake.capitalised = True` writes every status as the
support article does ("Processed"), to prove clients compare case-insensitively. `fake.approve_up_to`
{card: amount} makes a payment for that card come back approved for at most that amount: Payload
documents no partial approval, this only proves the service never reports another amount as paid.

Faults: "slow", "drop", "http500", "missing_id", "nan_amount" (a JSON NaN), "listing" as in
FakeServer.set_fault; "echo": a TransactionDeclined whose texts repeat every value the request sent
and whose status_code is the CVV.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from typing import Any

from tests.fakes._server import FakeServer, RecordedRequest, Reply, sent_values

CENT = Decimal("0.01")
DECLINE_CARDS = {
    "4111111111119900": "card_expired",
    "4111111111119901": "duplicate_attempt",
    "4111111111119902": "exceeded_limit",
    "4111111111119903": "general_decline",
    "4111111111119904": "insufficient_bal",
    "4111111111119905": "invalid_card_code",
    "4111111111119906": "invalid_card_number",
    "4111111111119907": "invalid_zip",
    "4111111111119908": "suspicious_activity",
    "4111111111119909": "too_many_attempts",
    "4000000000000002": "general_decline",
}
HOLD_CARD = "4000000000000143"
PROCESSING_CARD = "4000000000000259"
LIVE_STATUSES = ("processed", "authorized", "processing")


@dataclass
class PayloadTxn:
    id: str
    type: str
    processing_id: str
    amount: Decimal
    status: str
    status_code: str
    status_message: str
    funding_status: str = "pending"
    order_number: str | None = None
    description: str | None = None
    last_four: str = ""
    ledger: list[dict[str, Any]] = field(default_factory=list)
    refunded: Decimal = Decimal(0)
    currency: str = "USD"

    @property
    def live(self) -> bool:
        return self.type == "payment" and self.status in LIVE_STATUSES

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "object": "transaction",
            "id": self.id,
            "type": self.type,
            "amount": self.amount,
            "status": self.status,
            "status_code": self.status_code,
            "status_message": self.status_message,
            "funding_status": self.funding_status,
            "processing_id": self.processing_id,
            "order_number": self.order_number,
            "description": self.description,
            "ledger": self.ledger,
            "payment_method": {
                "object": "payment_method",
                "type": "card",
                "card": {"card_number": "xxxxxxxxxxxx" + self.last_four},
            },
        }
        return body


class PayloadFake(FakeServer):
    def __init__(self, accounts: dict[str, str], *, currencies: dict[str, str] | None = None) -> None:
        super().__init__()
        self.accounts = dict(accounts)
        self.currencies = dict(currencies or {})
        self.capitalised = False
        self.approve_up_to: dict[str, Decimal] = {}
        self.auth_failures = 0
        self._transactions: dict[str, PayloadTxn] = {}
        self._ids = itertools.count(1)

    @property
    def transactions(self) -> dict[str, PayloadTxn]:
        with self.lock:
            return {key: replace(txn) for key, txn in self._transactions.items()}

    def live_charges(self, processing_id: str | None = None) -> list[PayloadTxn]:
        return [t for t in self.transactions.values() if t.live and processing_id in (None, t.processing_id)]

    def settle_all(self) -> None:
        with self.lock:
            for txn in self._transactions.values():
                if txn.status in LIVE_STATUSES:
                    txn.funding_status = "batched"

    def settle(self, txn_id: str) -> None:
        with self.lock:
            self._transactions[txn_id].funding_status = "batched"

    def finish(self, txn_id: str, status: str) -> None:
        """A payment that was `processing` reaches its final status."""
        with self.lock:
            txn = self._transactions[txn_id]
            if txn.status != "processing" or status not in ("processed", "declined", "rejected"):
                raise ValueError(f"cannot move a {txn.status} payment to {status}")
            txn.status = status
            txn.status_code = "approved" if status == "processed" else "general_decline"

    def server_error(self) -> Reply:
        return error(500, "InternalServerError", "internal error")

    def echo_reply(self, request: RecordedRequest) -> Reply:
        body = request.body if isinstance(request.body, dict) else {}
        method = body.get("payment_method")
        card = method.get("card") if isinstance(method, dict) else None
        echoed = {
            "object": "transaction",
            "id": self._next_id(),
            "type": str(body.get("type") or "payment"),
            "status": "declined",
            "status_code": str(card.get("card_code")) if isinstance(card, dict) else "general_decline",
            "status_message": "declined: " + " ".join(sent_values(request)),
        }
        return error(400, "TransactionDeclined", "declined: " + " ".join(sent_values(request)), echoed)

    def error_reply(self, status: int) -> Reply:
        if status == 400:
            return error(400, "InvalidAttributes", "amount", {"amount": "invalid"})
        return error(status, HTTPStatus(status).phrase.replace(" ", ""), HTTPStatus(status).description)

    def handle(self, request: RecordedRequest) -> Reply:
        key = request.basic_auth[0] if request.basic_auth else request.bearer
        if key not in self.accounts:
            with self.lock:
                self.auth_failures += 1
            return error(401, "Unauthorized", "invalid API key")
        account = self.accounts[key]
        parts = [p for p in request.path.split("/") if p]
        if not parts or parts[0] != "transactions" or len(parts) > 2:
            return error(404, "NotFound", "no such endpoint")
        body = request.body if isinstance(request.body, dict) else {}
        with self.lock:
            if len(parts) == 1 and request.method == "POST":
                return self._create(body, account)
            if len(parts) == 1 and request.method == "GET":
                return self._search(request.query, account)
            txn = self._transactions.get(parts[1])
            if txn is None:
                return error(404, "NotFound", "transaction not found")
            if txn.processing_id != account:
                # Another account's object is outside this key's scope (gateway semantics: 403).
                self.auth_failures += 1
                return error(403, "Forbidden", "transaction is not in the scope of this API key")
            if request.method == "GET":
                return self._show(txn)
            if request.method == "PUT":
                return self._update(txn, body)
        return error(404, "NotFound", "no such endpoint")

    def _create(self, body: dict[str, Any], account: str) -> Reply:
        amount = parse_amount(body.get("amount"))
        if amount is None:
            return error(400, "InvalidAttributes", "amount", {"amount": "required"})
        kind = body.get("type")
        processing_id = str(body.get("processing_id") or account)
        if processing_id != account:
            with self.lock:
                self.auth_failures += 1
            return error(403, "Forbidden", "processing_id does not belong to this key")
        if kind == "payment":
            return self._payment(body, amount, account)
        if kind == "refund":
            return self._refund(body, amount, account)
        return error(400, "InvalidAttributes", "type", {"type": "invalid"})

    def _payment(self, body: dict[str, Any], amount: Decimal, account: str) -> Reply:
        method = body.get("payment_method")
        method = method if isinstance(method, dict) else {}
        card = method.get("card")
        card = card if isinstance(card, dict) else {}
        number = str(card.get("card_number") or "").replace(" ", "")
        if not number or not card.get("expiry"):
            details = {"payment_method": "card_number and expiry required"}
            return error(400, "InvalidAttributes", "payment_method", details)
        txn = PayloadTxn(
            id=self._next_id(),
            type="payment",
            processing_id=account,
            amount=amount,
            status="processed",
            status_code="approved",
            status_message="Transaction approved",
            order_number=body.get("order_number"),
            description=body.get("description"),
            last_four=number[-4:],
            currency=self.currencies.get(account, "USD"),
        )
        self._transactions[txn.id] = txn
        if number in DECLINE_CARDS:
            txn.status, txn.status_code, txn.status_message = "declined", DECLINE_CARDS[number], "Card declined"
            return error(400, "TransactionDeclined", "Card declined", self._json(txn))
        self._trigger_status(txn, number)
        return self._show(txn)

    def _trigger_status(self, txn: PayloadTxn, number: str) -> None:
        if number == HOLD_CARD:
            txn.status, txn.status_message = "authorized", "Transaction authorized"
        elif number == PROCESSING_CARD:
            txn.status, txn.status_code, txn.status_message = "processing", "", "Transaction processing"
        if number in self.approve_up_to:
            txn.amount = min(txn.amount, self.approve_up_to[number])

    def _json(self, txn: PayloadTxn) -> dict[str, Any]:
        body = txn.as_json()
        if self.capitalised:
            body["status"] = str(body["status"]).capitalize()
        return body

    def _show(self, txn: PayloadTxn) -> Reply:
        return Reply(200, self._json(txn))

    def _refund(self, body: dict[str, Any], amount: Decimal, account: str) -> Reply:
        ledger = body.get("ledger")
        entry = ledger[0] if isinstance(ledger, list) and ledger and isinstance(ledger[0], dict) else {}
        original = self._transactions.get(str(entry.get("assoc_transaction_id") or ""))
        if original is None or original.processing_id != account or not original.live:
            return error(400, "InvalidAttributes", "ledger", {"ledger": "no refundable payment referenced"})
        if original.funding_status == "pending":
            return error(400, "InvalidAttributes", "ledger", {"ledger": "payment not yet settled; void it instead"})
        if original.refunded + amount > original.amount:
            return error(400, "InvalidAttributes", "amount", {"amount": "exceeds the refundable amount"})
        txn = PayloadTxn(
            id=self._next_id(),
            type="refund",
            processing_id=account,
            amount=amount,
            status="processed",
            status_code="approved",
            status_message="Transaction approved",
            order_number=body.get("order_number"),
            description=body.get("description"),
            last_four=original.last_four,
            ledger=[{"assoc_transaction_id": original.id, "amount": amount}],
            currency=original.currency,
        )
        original.refunded += amount
        self._transactions[txn.id] = txn
        return self._show(txn)

    def _update(self, txn: PayloadTxn, body: dict[str, Any]) -> Reply:
        if body.get("status") == "processed":
            return self._complete_hold(txn)
        if body.get("status") != "voided":
            return error(400, "InvalidAttributes", "status", {"status": "only voided or processed is supported"})
        if not txn.live:
            return error(400, "InvalidAttributes", "status", {"status": f"cannot void a {txn.status} transaction"})
        if txn.funding_status != "pending":
            return error(400, "InvalidAttributes", "status", {"status": "payment already settled; refund it instead"})
        txn.status, txn.status_code, txn.status_message = "voided", "voided", "Transaction voided"
        return self._show(txn)

    def _complete_hold(self, txn: PayloadTxn) -> Reply:
        """An `authorized` hold is processed by a status=processed update (Payload's docs)."""
        if txn.type != "payment" or txn.status != "authorized":
            return error(400, "InvalidAttributes", "status", {"status": f"cannot process a {txn.status} transaction"})
        txn.status, txn.status_code, txn.status_message = "processed", "approved", "Transaction approved"
        return self._show(txn)

    def _search(self, query: dict[str, str], account: str) -> Reply:
        filters = {k: v for k, v in query.items() if k in ("order_number", "type", "status", "processing_id")}
        found = [
            self._json(t)
            for t in self._transactions.values()
            if t.processing_id == account and all(str(t.as_json().get(k)) == v for k, v in filters.items())
        ]
        return Reply(200, {"object": "list", "values": found})

    def _next_id(self) -> str:
        return f"txn_{next(self._ids):04d}{secrets.token_hex(4)}"


def parse_amount(value: Any) -> Decimal | None:
    try:
        amount = Decimal(str(value)).quantize(CENT)
    except (InvalidOperation, ValueError):
        return None
    return amount if amount > 0 else None


def error(status: int, error_type: str, description: str, details: dict[str, Any] | None = None) -> Reply:
    body = {"object": "error", "error_type": error_type, "error_description": description, "details": details or {}}
    return Reply(status, body)
