"""A stateful fake of Stripe's PaymentIntents and Refunds API on the fake kit (`kit.py`; reference
more-gateways.md §3, anchors.md §3.7).

`StripeFake(keys={secret_key: account})` serves, under `/v1`: POST /payment_intents (form-encoded;
a sale with confirm=true), GET /payment_intents/{id}, POST /payment_intents/{id}/cancel, GET
/payment_intents (the list: created[gte], limit, starting_after, newest first), POST /refunds, GET
/refunds/{id}, GET /refunds (the list, also by payment_intent). Bearer key (or Basic key:""), else
401; `restricted` {key: collections it may use} answers 403 elsewhere; another account's object is
404 resource_missing, as Stripe shows nothing of other accounts. Amounts are integer minor units.

Payments capture at once (settled in the ledger: no void, a refund at any time, whole or partial,
never above what is left). Idempotency-Key (per account): the first answer that began executing (200
or a 402 decline) is stored and replayed with `Idempotent-Replayed: true`; the same key with other
parameters, or on another endpoint, is 400 `idempotency_error`; validation failures are not stored.

PaymentMethods: Stripe's server-side test ids in `TEST_METHODS` (reusable), and `payment_method()`
mints one as Stripe.js would (`pm_1...`, one payment only, then 400 payment_method_unexpected_state).
`pm_card_authenticationRequired` needs 3-D Secure: with error_on_requires_action=true a 402
authentication_required, else 200 `requires_action`. Unknown parameters are 400 parameter_unknown.
`fake.age(id, seconds)` makes an object older (the look-up window); `fake.processing.add(pm)` makes a
sale answer `processing` (`fake.ledger.finish` ends it). `PROFILE`: the conformance profile (tokens
instead of cards, and `settles_at_once`: Stripe has no void).
"""

from __future__ import annotations

import itertools
import secrets
import time
from decimal import Decimal
from http import HTTPStatus
from typing import Any

from tests.fakes import kit
from tests.fakes._server import RecordedRequest, Reply, sent_values
from tests.fakes.kit import KitFake, Profile, Record, Refused, TestCard, Txn

Decline = tuple[str, str | None, str]
"""(code, decline_code, message) of a card_error."""
DECLINED: Decline = ("card_declined", "generic_decline", "Your card was declined.")
TEST_METHODS: dict[str, tuple[str, Decline | None]] = {
    "pm_card_visa": ("4242", None),
    "pm_card_mastercard": ("4444", None),
    "pm_card_chargeDeclined": ("0002", DECLINED),
    "pm_card_chargeDeclinedInsufficientFunds": ("9995", ("card_declined", "insufficient_funds",
                                                         "Your card has insufficient funds.")),
    "pm_card_visa_chargeDeclinedInsufficientFunds": ("9995", ("card_declined", "insufficient_funds",
                                                              "Your card has insufficient funds.")),
    "pm_card_chargeDeclinedExpiredCard": ("0069", ("expired_card", None, "Your card has expired.")),
    "pm_card_chargeDeclinedIncorrectCvc": ("0127", ("incorrect_cvc", None, "Your card's security code is incorrect.")),
    "pm_card_chargeDeclinedProcessingError": ("0119", ("processing_error", None,
                                                       "An error occurred while processing your card.")),
    "pm_card_authenticationRequired": ("3184", None),
}
THREE_D_SECURE = "pm_card_authenticationRequired"
MINIMUM = {"usd": 50, "cad": 50, "gbp": 30, "eur": 50}
"""Stripe's minimum charge per currency, in minor units."""
SALE_PARAMS = frozenset({
    "amount", "currency", "payment_method", "payment_method_types", "confirm", "capture_method",
    "error_on_requires_action", "description", "metadata", "expand", "statement_descriptor", "receipt_email",
})
REFUND_PARAMS = frozenset({"payment_intent", "charge", "amount", "metadata", "reason", "expand"})
STATUSES = {kit.APPROVED: "succeeded", kit.AUTHORIZED: "requires_capture", kit.PENDING: "processing",
            kit.VOIDED: "canceled"}


class StripeFake(KitFake):
    url_path = "/v1"
    id_prefix = "pi_"
    """A refund is made with "re_" for the moment it takes (the ledger names both kinds)."""

    def __init__(self, keys: dict[str, str], restricted: dict[str, frozenset[str]] | None = None) -> None:
        super().__init__()
        self.keys, self.restricted = dict(keys), dict(restricted or {})
        self.minted: dict[str, str] = {}
        """Browser-made PaymentMethods not used yet: id -> last four."""
        self.used: set[str] = set()
        self.processing: set[str] = set()
        self.idempotent: dict[tuple[str, str], tuple[str, tuple[Any, ...], Reply]] = {}
        self.clock = time.time
        self.sequence = itertools.count(1)

    def payment_method(self, last4: str = "4242") -> str:
        """A PaymentMethod as Stripe.js makes one in the browser: good for one payment."""
        with self.lock:
            pm = f"pm_1{secrets.token_hex(12)}"
            self.minted[pm] = last4
            return pm

    def age(self, object_id: str, seconds: float) -> None:
        with self.lock:
            txn = self.ledger.get(object_id)
            assert txn is not None, f"no object {object_id}"
            txn.data["created"] -= int(seconds)

    def view(self, txn: Txn) -> Record:
        return Record(self._json(txn, expand=True), currency=txn.currency, refunded=txn.refunded)

    def error_reply(self, status: int) -> Reply:
        if status == 429:
            return error(429, "Too many requests hit the API too quickly.", "rate_limit")
        return error(status, HTTPStatus(status).phrase, kind="api_error" if status >= 500 else "invalid_request_error")

    def echo_reply(self, request: RecordedRequest) -> Reply:
        sent, body = sent_values(request), request.body if isinstance(request.body, dict) else {}
        code = str(body.get("payment_method") or (sent[0] if sent else ""))  # the token, or else the key
        return Reply(402, {"error": {"type": "card_error", "code": code, "message": " ".join(sent)}})

    def handle(self, request: RecordedRequest) -> Reply:
        account = self.keys.get(str(request.bearer or (request.basic_auth or ("",))[0]))
        if account is None:
            self.refuse_credentials()
            return error(401, "Invalid API Key provided: sk_test_****" + str(request.bearer or "")[-4:])
        parts = request.path.removeprefix(self.url_path).strip("/").split("/")
        allowed = self.restricted.get(str(request.bearer))
        if allowed is not None and parts[0] not in allowed:
            self.refuse_credentials()
            return error(403, f"The provided key does not have the required permissions for /v1/{parts[0]}.")
        body = request.body if isinstance(request.body, dict) else {}
        with self.lock:
            key = request.headers.get("Idempotency-Key")
            if request.method != "POST" or key is None:
                return self._route(request.method, parts, body, request.query, account)
            endpoint, params = f"POST {request.path}", tuple(sorted(_pairs(body)))
            stored = self.idempotent.get((account, key))
            if stored is not None:
                if stored[:2] != (endpoint, params):
                    return error(400, "Keys for idempotent requests can only be used with the same parameters and "
                                      f"endpoint they were first used with. Try a key other than '{key}'.",
                                 kind="idempotency_error")
                return Reply(stored[2].status, stored[2].body, {"Idempotent-Replayed": "true"})
            reply = self._route(request.method, parts, body, request.query, account)
            if reply.status in (200, 402):  # endpoint execution began; validation failures are not kept
                self.idempotent[(account, key)] = (endpoint, params, reply)
            return reply

    def _route(self, method: str, parts: list[str], body: dict[str, Any], query: dict[str, str], account: str) -> Reply:
        collection = parts[0]
        if collection in ("payment_intents", "refunds") and len(parts) == 1:
            if method == "GET":
                return self._list(collection, query, account)
            if method == "POST":
                return self._sale(body, account) if collection == "payment_intents" else self._refund(body, account)
        if collection in ("payment_intents", "refunds") and len(parts) in (2, 3):
            txn = self.ledger.get(parts[1])
            kind = "payment" if collection == "payment_intents" else "refund"
            if txn is None or txn.merchant != account or txn.kind != kind:
                return error(404, f"No such {collection[:-1]}: '{parts[1]}'", "resource_missing", param="id")
            if method == "GET" and len(parts) == 2:
                return Reply(200, self._json(txn, expand=query.get("expand[]") == "latest_charge"))
            if method == "POST" and parts[2:] == ["cancel"] and txn.kind == "payment":
                return self._cancel(txn)
        return error(404, f"Unrecognized request URL ({method}: /v1/{'/'.join(parts)}).")

    def _sale(self, body: dict[str, Any], account: str) -> Reply:
        unknown = sorted(set(body) - SALE_PARAMS)
        if unknown:
            return error(400, f"Received unknown parameter: {unknown[0]}", "parameter_unknown", param=unknown[0])
        currency, amount = str(body.get("currency", "")), _cents(body.get("amount"))
        if currency not in MINIMUM:
            return error(400, f"Invalid currency: {currency}.", "parameter_invalid_string", param="currency")
        if amount is None or amount < MINIMUM[currency]:
            return error(400, "Amount must be at least the minimum charge amount.", "amount_too_small", param="amount")
        pm = str(body.get("payment_method", ""))
        if pm in self.used:
            return error(400, "The provided PaymentMethod was previously used with a PaymentIntent without Customer "
                              "attachment. It may not be used again.", "payment_method_unexpected_state",
                         param="payment_method")
        if pm not in TEST_METHODS and pm not in self.minted:
            return error(400, f"No such PaymentMethod: '{pm}'", "resource_missing", param="payment_method")
        if pm in TEST_METHODS:
            last4, decline = TEST_METHODS[pm]
        else:  # one payment per browser-made PaymentMethod (without a Customer)
            last4, decline = self.minted.pop(pm), None
            self.used.add(pm)
        confirmed = body.get("confirm") == "true"
        status, word = kit.APPROVED, "succeeded"
        if not confirmed:
            status, word = kit.DECLINED, "requires_confirmation"
        elif decline is not None or (pm == THREE_D_SECURE and body.get("error_on_requires_action") == "true"):
            status, word = kit.DECLINED, "requires_payment_method"
            decline = decline or ("authentication_required", "authentication_required",
                                  "Your card was declined. This transaction requires authentication.")
        elif pm == THREE_D_SECURE:
            status, word = kit.DECLINED, "requires_action"
        elif pm in self.processing:
            status = kit.PENDING
        elif body.get("capture_method") == "manual":
            status = kit.AUTHORIZED
        self.id_prefix = "pi_"
        txn = self.ledger.pay(
            account, _major(amount), currency.upper(), kit.dig(body, "metadata").get("bv_ref"), card=last4,
            status=status, word=word, created=int(self.clock()), metadata=kit.dig(body, "metadata"), pm=pm,
            description=body.get("description"), decline=decline, seq=next(self.sequence),
        )
        self.ledger.settle(txn.id)  # captured at once: Stripe gives money back only by refund
        intent = self._json(txn, expand="latest_charge" in _values(body, "expand"))
        if decline is None:
            return Reply(200, intent)
        code, decline_code, message = decline
        failure = {"type": "card_error", "code": code, "message": message, "charge": "ch_" + txn.id[3:],
                   "payment_method": {"id": pm, "object": "payment_method", "card": {"last4": last4}}}
        if decline_code:
            failure["decline_code"] = decline_code
        return Reply(402, {"error": {**failure, "payment_intent": intent}})

    def _cancel(self, txn: Txn) -> Reply:
        word = self._status(txn)
        if word in ("succeeded", "canceled"):
            return error(400, f"You cannot cancel this PaymentIntent because it has a status of {word}.",
                         "payment_intent_unexpected_state")
        if txn.status == kit.DECLINED:
            txn.data["word"] = "canceled"
        else:
            self.ledger.void(*txn.key)
        return Reply(200, self._json(txn))

    def _refund(self, body: dict[str, Any], account: str) -> Reply:
        unknown = sorted(set(body) - REFUND_PARAMS)
        if unknown:
            return error(400, f"Received unknown parameter: {unknown[0]}", "parameter_unknown", param=unknown[0])
        amount = None if body.get("amount") is None else _cents(body["amount"])
        if body.get("amount") is not None and not amount:
            return error(400, "Invalid positive integer", "parameter_invalid_integer", param="amount")
        payment_id = str(body.get("payment_intent") or "")
        payment = self.ledger.get(payment_id)
        if payment is None or payment.merchant != account or payment.kind != "payment":
            return error(400, f"No such payment_intent: '{payment_id}'", "resource_missing", param="payment_intent")
        if payment.status == kit.APPROVED and payment.left == 0:
            return error(400, f"Charge ch_{payment.id[3:]} has already been refunded.", "charge_already_refunded")
        try:
            self.id_prefix = "re_"
            refund = self.ledger.refund(account, payment_id, None if amount is None else _major(amount),
                                        kit.dig(body, "metadata").get("bv_ref"), created=int(self.clock()),
                                        metadata=kit.dig(body, "metadata"), seq=next(self.sequence))
        except Refused as refusal:
            if refusal.reason == "amount":
                return error(400, f"Refund amount (${Decimal(amount or 0) / 100:.2f}) is greater than unrefunded "
                                  f"amount on charge (${payment.left:.2f})", param="amount")
            return error(400, f"This PaymentIntent ({payment_id}) does not have a successful charge to refund.")
        finally:
            self.id_prefix = "pi_"
        return Reply(200, self._json(refund))

    def _list(self, collection: str, query: dict[str, str], account: str) -> Reply:
        kind = "payment" if collection == "payment_intents" else "refund"
        since, limit = query.get("created[gte]", "0"), query.get("limit", "10")
        if not (since.isdigit() and limit.isdigit() and 1 <= int(limit) <= 100):
            return error(400, "Invalid integer", "parameter_invalid_integer")
        found = sorted(
            (t for t in self.ledger if t.merchant == account and t.kind == kind and t.data["created"] >= int(since)
             and query.get("payment_intent") in (None, t.payment_id)),
            key=lambda t: (t.data["created"], t.data["seq"]), reverse=True,
        )
        after = query.get("starting_after")
        if after is not None:
            ids = [t.id for t in found]
            if after not in ids:
                return error(400, f"No such {kind}: '{after}'", "resource_missing", param="starting_after")
            found = found[ids.index(after) + 1:]
        expand = query.get("expand[]") == "data.latest_charge"
        data = [self._json(t, expand=expand) for t in found[: int(limit)]]
        more = len(found) > int(limit)
        return Reply(200, {"object": "list", "data": data, "has_more": more, "url": f"/v1/{collection}"})

    def _status(self, txn: Txn) -> str:
        return str(txn.data.get("word")) if txn.status == kit.DECLINED else STATUSES[txn.status]

    def _json(self, txn: Txn, expand: bool = False) -> dict[str, Any]:
        cents = int(txn.amount * 100)
        common = {"id": txn.id, "amount": cents, "created": txn.data["created"], "currency": txn.currency.lower(),
                  "metadata": txn.data["metadata"]}
        if txn.kind == "refund":
            return {**common, "object": "refund", "charge": "ch_" + str(txn.payment_id)[3:],
                    "payment_intent": txn.payment_id, "reason": None, "status": "succeeded"}
        status, captured = self._status(txn), txn.status == kit.APPROVED or txn.data.get("captured", False)
        charge = {
            "id": "ch_" + txn.id[3:], "object": "charge", "amount": cents, "amount_captured": cents if captured else 0,
            "amount_refunded": int(txn.refunded * 100), "captured": captured, "currency": txn.currency.lower(),
            "outcome": {"network_status": "approved_by_network" if status != "requires_payment_method"
                        else "declined_by_network", "seller_message": "Payment complete." if captured
                        else "The bank did not return any further details with this decline.", "type": "authorized"},
            "paid": captured, "payment_intent": txn.id, "payment_method": txn.data["pm"],
            "payment_method_details": {"card": {"brand": "visa", "last4": txn.card}, "type": "card"},
            "refunded": captured and txn.left == 0, "status": "succeeded" if captured else "failed",
        }
        charged = status not in ("requires_action", "requires_confirmation")
        decline = txn.data.get("decline")
        return {
            **common, "object": "payment_intent", "amount_received": cents if status == "succeeded" else 0,
            "amount_capturable": cents if status == "requires_capture" else 0,
            "capture_method": "automatic", "client_secret": f"{txn.id}_secret_{txn.id[-12:]}",
            "confirmation_method": "automatic", "description": txn.data.get("description"),
            "last_payment_error": decline and {"type": "card_error", "code": decline[0], "message": decline[2]},
            "latest_charge": (charge if expand else charge["id"]) if charged else None, "livemode": False,
            "payment_method": None if decline else txn.data["pm"], "payment_method_types": ["card"], "status": status,
        }


def error(status: int, message: str, code: str | None = None, *, kind: str = "invalid_request_error",
          param: str | None = None) -> Reply:
    fields: dict[str, Any] = {"type": kind, "message": message}
    if code:
        fields["code"] = code
    if param:
        fields["param"] = param
    return Reply(status, {"error": fields})


def _values(body: dict[str, Any], name: str) -> list[Any]:
    """A bracketed array parameter's values (`expand[]=a` arrives as {"": "a"})."""
    value = body.get(name)
    return list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else [value]


def _major(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(kit.CENT)


def _cents(value: Any) -> int | None:
    text = str(value)
    return int(text) if text.isdigit() and int(text) > 0 else None


def _pairs(body: Any, prefix: str = "") -> list[tuple[str, str]]:
    """The form's parameters flattened back to (key, value) pairs: what Stripe compares on a replay."""
    if isinstance(body, dict):
        return [pair for key, value in body.items() for pair in _pairs(value, f"{prefix}[{key}]" if prefix else key)]
    if isinstance(body, list):
        return [pair for index, value in enumerate(body) for pair in _pairs(value, f"{prefix}[{index}]")]
    return [(prefix, str(body))]


PROFILE_KEY, PROFILE_ACCOUNT = "sk_test_51ConformanceKeyAbcdef", "acct_conformance"
PROFILE = Profile(
    start=lambda: StripeFake({PROFILE_KEY: PROFILE_ACCOUNT}),
    merchant=PROFILE_ACCOUNT,
    credentials={"secretKey": PROFILE_KEY},
    wrong_credentials={"secretKey": "sk_test_51RevokedKeyAbcdef"},
    approving=TestCard(token=("stripe_payment_method", "pm_card_visa")),
    declining=TestCard(token=("stripe_payment_method", "pm_card_chargeDeclined")),
    approved={"statusCode": "succeeded", "responseMessage": "succeeded"},
    declined={"statusCode": "generic_decline", "errorCode": "declined", "responseMessage": "Your card was declined.",
              "gatewayHttpStatusCode": 402},
    sale="POST /v1/payment_intents$",
    settles_at_once=True,
)
