"""A stateful fake of the Payload REST API on the fake kit (gateway reference §2.9): accounts {api_key:
processing_id}, currencies {processing_id: ISO code}; Basic (key, "") or Bearer; 403 outside a key's scope.
DECLINE_CARDS, HOLD_CARD (`authorized` till PUT status=processed), PROCESSING_CARD (`processing` till
`finish`); void while funding is pending, refund once batched; `save_payment_method`: Secure Input (§5.2)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from tests.fakes import kit
from tests.fakes._server import RecordedRequest, Reply, sent_values
from tests.fakes.kit import KitFake, Profile, Record, Refused, TestCard, Txn, dig, parse_amount

DECLINE_CARDS = {"4000000000000002": "general_decline"} | {f"411111111111990{n}": reason for n, reason in enumerate((
    "card_expired", "duplicate_attempt", "exceeded_limit", "general_decline", "insufficient_bal",
    "invalid_card_code", "invalid_card_number", "invalid_zip", "suspicious_activity", "too_many_attempts"))}
HOLD_CARD, PROCESSING_CARD = "4000000000000143", "4000000000000259"
TRIGGERS = {HOLD_CARD: kit.AUTHORIZED, PROCESSING_CARD: kit.PENDING}
WORDS = {kit.APPROVED: "processed", kit.AUTHORIZED: "authorized", kit.PENDING: "processing", "voided": "voided"}
REFUSALS = {"settled": "already settled; refund it", "amount": "exceeds what is left", "not_settled": "not settled yet"}
MESSAGES = {"processed": "Transaction approved", "declined": "Card declined", "rejected": "Card declined"}


class PayloadFake(KitFake):
    settles = kit.LIVE  # holds and processing payments are batched at the cut-off too

    def __init__(self, accounts: dict[str, str], *, currencies: dict[str, str] | None = None) -> None:
        super().__init__()
        self.accounts, self.currencies, self.capitalised = dict(accounts), dict(currencies or {}), False

    def save_payment_method(self, account: str, number: str) -> str:
        return self.save_card(account, number, "pm_")

    def view(self, txn: Txn) -> Record:
        return Record(self._json(txn), currency=txn.currency, refunded=txn.refunded)

    def finish(self, txn_id: str, status: str) -> None:  # processed, declined or rejected
        decline = None if status == "processed" else "general_decline"
        self.ledger.finish(txn_id, decline is None, word=status, code=decline)

    def error_reply(self, status: int) -> Reply:
        name = HTTPStatus(status).phrase.replace(" ", "")
        return invalid("amount", "invalid") if status == 400 else error(status, name, HTTPStatus(status).description)

    def echo_reply(self, request: RecordedRequest) -> Reply:
        text, card = "declined: " + " ".join(sent_values(request)), dig(request.body, "payment_method", "card")
        return error(400, "TransactionDeclined", text, {"object": "transaction", "id": self.new_id(), "type": "payment",
                     "status": "declined", "status_code": str(card.get("card_code")), "status_message": text})

    def handle(self, request: RecordedRequest) -> Reply:
        account = self.accounts.get(str(request.basic_auth[0] if request.basic_auth else request.bearer))
        if account is None:
            self.refuse_credentials()
            return error(401, "Unauthorized", "invalid API key")
        parts, body = request.path.strip("/").split("/"), request.body if isinstance(request.body, dict) else {}
        with self.lock:
            if parts == ["transactions"] and request.method in ("POST", "GET"):
                return self._create(body, account) if request.method == "POST" else self._search(request.query, account)
            txn = self.ledger.get(parts[1]) if len(parts) == 2 and parts[0] == "transactions" else None
            if txn is None or request.method not in ("GET", "PUT"):
                return error(404, "NotFound", "transaction not found" if len(parts) == 2 else "no such endpoint")
            if txn.merchant != account:
                self.refuse_credentials()
                return error(403, "Forbidden", "transaction is not in the scope of this API key")
            try:
                return self._update(txn, body) if request.method == "PUT" else Reply(200, self._json(txn))
            except Refused as refusal:
                verb = "void" if body.get("status") == "voided" else "process"
                return invalid("status", REFUSALS.get(refusal.reason, f"cannot {verb} a {self.view(txn).status}"))

    def _create(self, body: dict[str, Any], account: str) -> Reply:
        amount = parse_amount(body.get("amount"))
        if amount is None or body.get("type") not in ("payment", "refund"):
            return invalid("amount" if amount is None else "type", "required")
        if str(body.get("processing_id") or account) != account:
            self.refuse_credentials()
            return error(403, "Forbidden", "processing_id does not belong to this key")
        if body["type"] == "refund":
            payment_id = str(dig(body, "ledger", 0).get("assoc_transaction_id"))
            try:
                refund = self.ledger.refund(account, payment_id, amount, body.get("order_number"),
                                            description=body.get("description"))
            except Refused as refusal:
                problem = REFUSALS.get(refusal.reason, "no refundable payment referenced")
                return invalid("amount" if refusal.reason == "amount" else "ledger", problem)
            return Reply(200, self._json(refund))
        card, saved = dig(body, "payment_method", "card"), self.saved_card(str(body.get("payment_method_id")), account)
        if "payment_method_id" in body and saved is None:
            return invalid("payment_method_id", "not found")
        number = saved or str(card.get("card_number") or "").replace(" ", "")
        if not saved and (not number or not card.get("expiry")):
            return invalid("payment_method", "card_number and expiry required")
        status = kit.DECLINED if number in DECLINE_CARDS else TRIGGERS.get(number, kit.APPROVED)
        txn = self.ledger.pay(account, amount, self.currencies.get(account, "USD"), body.get("order_number"),
                              card=number, status=status, approved=self.approved_amount(number, amount),
                              description=body.get("description"), code=DECLINE_CARDS.get(number))
        if status == kit.DECLINED:
            return error(400, "TransactionDeclined", "Card declined", self._json(txn))
        return Reply(200, self._json(txn))

    def _update(self, txn: Txn, body: dict[str, Any]) -> Reply:
        if body.get("status") not in ("voided", "processed") or txn.kind != "payment":
            return invalid("status", "only voided or processed is supported, on a payment")
        processed = body["status"] == "processed"
        return Reply(200, self._json(self.ledger.capture(*txn.key) if processed else self.ledger.void(*txn.key)[0]))

    def _search(self, query: dict[str, str], account: str) -> Reply:
        wanted = {k: v for k, v in query.items() if k in ("order_number", "type", "status", "processing_id")}
        found = [self._json(t) for t in self.ledger if t.merchant == account]
        values = [t for t in found if all(str(t.get(k)) == v for k, v in wanted.items())]
        return Reply(200, {"object": "list", "values": values})

    def _json(self, txn: Txn) -> dict[str, Any]:
        word = WORDS.get(txn.status) or txn.data.get("word", "declined")
        code = txn.data.get("code") or {"voided": "voided", "processing": ""}.get(word, "approved")
        ledger = [{"assoc_transaction_id": txn.payment_id, "amount": txn.amount}] if txn.payment_id else []
        card = {"card_number": "xxxxxxxxxxxx" + txn.card}
        return {"object": "transaction", "id": txn.id, "type": txn.kind, "amount": txn.amount,
                "status": word.capitalize() if self.capitalised else word,
                "status_code": code, "status_message": MESSAGES.get(word, f"Transaction {word}"),
                "funding_status": "batched" if txn.settled else "pending", "processing_id": txn.merchant,
                "order_number": txn.order_id, "description": txn.data.get("description"), "ledger": ledger,
                "payment_method": {"object": "payment_method", "type": "card", "card": card}}



def invalid(name: str, problem: str) -> Reply:
    return error(400, "InvalidAttributes", name, {name: problem})


def error(status: int, error_type: str, description: str, details: dict[str, Any] | None = None) -> Reply:
    return Reply(status, {"object": "error", "error_type": error_type, "error_description": description,
                          "details": details or {}})


KEY, ACCOUNT = "test_secret_key_conformance", "acct_conformance"
PROFILE = Profile(
    start=lambda: PayloadFake(accounts={KEY: ACCOUNT}),
    credentials={"apiKey": KEY, "processingId": ACCOUNT},
    wrong_credentials={"apiKey": "test_secret_key_revoked", "processingId": ACCOUNT},
    approving=TestCard("4242424242424242"),
    declining=TestCard("4000000000000002"),
    approved={"statusCode": "approved", "responseMessage": "Transaction approved"},
    voided={"statusCode": "voided", "responseMessage": "Transaction voided"},
    declined={"statusCode": "general_decline", "errorCode": "declined", "responseMessage": "Card declined",
              "gatewayHttpStatusCode": 400},
    sale="POST /transactions$",
)
