"""The one flow both functions share: parse, claim the idempotency key, call the gateway, answer.

`PaymentService.handle` takes the request's headers and body and returns an `Answer` (built by
`shared/errors.py`, which decides every status); it never raises for anything a caller can send.
Every call ends in exactly one audit line.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError

from gateways.base import BillingAddress, Card, CardToken, Gateway, GatewayResult, RefundRequest, SaleRequest
from gateways.cards import redact_card_numbers
from gateways.errors import AlreadyVoided, CredentialsRejected, Declined, GatewayError, OutcomeUnknown, RequestRejected
from shared import audit
from shared.approval import approved_in_full
from shared.contract import BVMeta, PaymentBody, PaymentToken, RefundBody
from shared.credentials import MerchantAccount
from shared.errors import (
    Answer,
    CardNumberNotAccepted,
    CredentialsNotAllowed,
    IdempotencyKeyReused,
    IncompleteRequest,
    InvalidRequest,
    InvalidRequestCredentials,
    NotATransactionId,
    RequestInProgress,
    ServiceError,
    TokenNotAccepted,
    approved,
    from_gateway_error,
    from_service_error,
    from_store_fault,
    internal_failure,
    replayed,
    where,
)
from shared.factory import GatewayFactory, require_currency
from shared.idempotency import STORE_CALL_SECONDS, IdempotencyStore, Record, State, StoreUnavailable
from shared.refunds import refund_or_void
from shared.settings import Settings
from shared.telemetry import OFF, Call, Telemetry

logger = logging.getLogger("paymentgateway.flow")

MAX_IDEMPOTENCY_KEY_LENGTH = 255
ORDER_ID_LETTERS = 28
CENT = Decimal("0.01")

REQUEST_BUDGET_SECONDS = 200.0
"""Every call is answered within this, under the platform's 230 s HTTP limit: gateway calls stop
`STORE_CALL_SECONDS` before it, leaving time for the one store write that records their outcome."""

class Operation(enum.StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"


def header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def parse_meta(raw: str | None) -> BVMeta:
    if not raw:
        raise IncompleteRequest("Incomplete request")
    try:
        return BVMeta.model_validate_json(raw)
    except ValidationError as error:
        raise IncompleteRequest("Incomplete request", errors=_field_errors(error, prefix="BVMeta")) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


LONGEST_JSON_INTEGER = 100
"""Digits past which no field of the contract can take an integer (ids end at 10 digits, a card
number at 19)."""
OUT_OF_EVERY_RANGE = int("1" + "0" * LONGEST_JSON_INTEGER)


def _json_int(text: str) -> int:
    # Python refuses to convert an integer of more than 4300 digits (a ValueError, which would read
    # as "not valid JSON"). One this long is out of every field's range, so it becomes another
    # integer out of range with the same sign, and the field's own bound refuses it by name.
    if len(text) <= LONGEST_JSON_INTEGER:
        return int(text)
    return -OUT_OF_EVERY_RANGE if text.startswith("-") else OUT_OF_EVERY_RANGE


def parse_body(model: type[BaseModel], body: bytes | None, context: Mapping[str, Any]) -> Any:
    if not body:
        raise InvalidRequest("Request body is missing", errors=[{"field": "body", "message": "required"}])
    try:
        # Decimal from the JSON text itself: an amount never passes through a binary float.
        document = json.loads(
            body.decode("utf-8"), parse_float=Decimal, parse_int=_json_int, parse_constant=_reject_constant
        )
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(
            "Request body is not valid JSON", errors=[{"field": "body", "message": "not valid JSON"}]
        ) from None
    except RecursionError:
        # The contract's bodies are flat; only a hostile one nests deeper than the decoder recurses.
        raise InvalidRequest(
            "Request body is nested too deeply", errors=[{"field": "body", "message": "nested too deeply"}]
        ) from None
    if not isinstance(document, dict):
        raise InvalidRequest(
            "Request body must be a JSON object", errors=[{"field": "body", "message": "must be an object"}]
        )
    try:
        return model.model_validate(document, context=dict(context))
    except ValidationError as error:
        errors = _field_errors(error)
        raise InvalidRequest(
            "Invalid request: " + ", ".join(sorted({e["field"] for e in errors})), errors=errors
        ) from None


def _field_errors(error: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    # Pydantic's messages state the rule; its `input` (which may be a card number) is dropped.
    errors: list[dict[str, str]] = []
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        # The contract's fields are flat but for `token`; deeper parts of a location are pydantic's
        # union tags.
        loc = item["loc"]
        path = str(loc[0]) if loc else ""
        if path == "token" and len(loc) > 1 and loc[1] in PaymentToken.model_fields:
            path = f"token.{loc[1]}"
        message = item["msg"].removeprefix("Value error, ")
        entry = {"field": ".".join(part for part in (prefix, path) if part) or "body", "message": message}
        if entry["field"] not in {e["field"] for e in errors}:
            errors.append(entry)
    return errors


def canonical_key(key: str) -> str:
    """The one spelling of an idempotency key. A UUID in any of its spellings (upper case, braces,
    bare hex, `urn:uuid:`) is one key; anything else is kept exactly as sent, unless it holds a card
    number: the key is stored in the record's scope, and no stored record may hold a PAN."""
    try:
        return str(uuid.UUID(key))
    except ValueError:
        pass
    if redact_card_numbers(key) != key:
        return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def request_identity(operation: Operation, request: PaymentBody | RefundBody) -> bytes:
    """What makes a retry the same request: the values that decide which money moves where,
    compared as values (10.00 = 10.0 = 1e1), never as the body spelled them. Name, address and
    comment may be retyped; the CVV and expiry are left out, because a fingerprint of a CVV can be
    reversed by trying all 11,000 values (PCI DSS 3.3.1: no CVV after authorisation, in any form).
    The full card number stays: a new card under an old key must be refused, not answered with the
    old card's outcome, and PCI DSS 3.5.1.1 allows a keyed hash of the whole PAN (the fingerprint
    is an HMAC under a key kept in Key Vault, never a plain hash)."""
    fields: dict[str, Any] = {
        "operation": operation.value,
        "merchantAccountId": request.merchantAccountId,
        "gatewayTypeId": request.gatewayTypeId,
        "amount": None if request.amount is None else format(request.amount.quantize(CENT), "f"),
        "currencyType": request.currencyType,
    }
    if isinstance(request, PaymentBody):
        fields["account"] = request.account
        if request.token is not None:
            # Like the card number: another token under an old key is another request. Only the
            # fingerprint (a keyed hash) holds it, never the record.
            fields["token"] = request.token.model_dump()
    else:
        fields["paymentTransactionId"] = request.paymentTransactionId
    if request.credentials is not None:
        # Migration only (ALLOW_REQUEST_CREDENTIALS): whose credentials are sent is part of the
        # request. A retry with another merchant's is another request (422), never a look-up at one
        # merchant and a charge at the next.
        fields["credentials"] = request.credentials
    return json.dumps(fields, sort_keys=True).encode()


def order_id_for(operation: Operation, key: str) -> str:
    """Our gateway reference for a canonical key: the same on every retry, distinct per operation,
    at most 31 characters (the gateways allow 50 or more), and letters only. A gateway may mask an
    order id holding a Luhn-valid run of 13 or more digits as a card number, after which no look-up
    or void by order id finds the charge, so a retry would charge again; `BVP` + 32 hex digits held such a
    run for 0.7% of UUIDs. With no digit at all, no reading of the id can find a card number."""
    prefix = "BVP" if operation is Operation.PAYMENT else "BVR"
    try:
        raw = uuid.UUID(key).bytes
    except ValueError:
        raw = hashlib.sha256(key.encode()).digest()[:16]
    return prefix + _letters(int.from_bytes(raw, "big"))


def _letters(value: int) -> str:
    """A 128-bit number as 28 letters A-Z (26**28 > 2**128), most significant first."""
    out = []
    for _ in range(ORDER_ID_LETTERS):
        value, digit = divmod(value, 26)
        out.append(chr(ord("A") + digit))
    return "".join(reversed(out))


class PaymentService:
    def __init__(
        self,
        settings: Settings,
        factory: GatewayFactory,
        idempotency: IdempotencyStore,
        fingerprint_key: Callable[[], bytes],
        clock: Callable[[], float] = time.time,
        budget_seconds: float = REQUEST_BUDGET_SECONDS,
        telemetry: Telemetry = OFF,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.idempotency = idempotency
        self._fingerprint_key = fingerprint_key
        self._clock = clock
        self._budget_seconds = budget_seconds
        self.telemetry = telemetry

    def handle(self, operation: Operation, headers: Mapping[str, str], body: bytes | None) -> Answer:
        with self.telemetry.call(operation.value) as call:
            deadline = time.monotonic() + self._budget_seconds
            raw_meta = header(headers, "BVMeta")
            meta: BVMeta | None = None
            request: PaymentBody | RefundBody | None = None
            try:
                meta = parse_meta(raw_meta)
                model = PaymentBody if operation is Operation.PAYMENT else RefundBody
                request = parse_body(model, body, {"max_amount": self.settings.max_amount})
                assert request is not None
                call.identify(gateway_type_id=request.gatewayTypeId, merchant_account_id=request.merchantAccountId)
                answer = self._execute(operation, meta, request, headers, deadline, call)
            except ServiceError as error:
                answer = from_service_error(error, _merchant(request))
            except StoreUnavailable as error:
                # `_run` answers every fault after a gateway call itself: this one came before any.
                logger.error("the idempotency store failed before any gateway call: %s", error)
                answer = from_store_fault(gateway_called=False, merchant_account_id=_merchant(request))
            except Exception as error:  # noqa: BLE001 - every call is answered and audited, whatever failed
                log_unexpected(error, operation)
                answer = internal_failure(_merchant(request))
            self._audit(meta, request, answer)
            call.answered(answer.status, answer.detail)
            return _echoing_meta(answer, raw_meta)

    def _execute(
        self,
        operation: Operation,
        meta: BVMeta,
        request: PaymentBody | RefundBody,
        headers: Mapping[str, str],
        deadline: float,
        call: Call,
    ) -> Answer:
        cls = self.factory.gateway_class(request.gatewayTypeId)
        call.identify(gateway=cls.name)
        if isinstance(request, RefundBody) and not cls.is_transaction_id(request.paymentTransactionId):
            # Refused before anything else: the id would go into the gateway's URL path.
            raise NotATransactionId(f"paymentTransactionId is not a {cls.name} transaction id")
        if isinstance(request, PaymentBody):
            check_card_or_token(cls, request)
        if request.credentials is not None and not self.settings.allow_request_credentials:
            raise CredentialsNotAllowed(
                "credentials must not be sent in the request; they are read from Key Vault"
            )
        raw_key = header(headers, "Idempotency-Key") or meta.transactionId
        if len(raw_key) > MAX_IDEMPOTENCY_KEY_LENGTH or not raw_key.isprintable():
            raise IncompleteRequest("Idempotency-Key must be at most 255 printable characters")
        key = canonical_key(raw_key)
        order_id = order_id_for(operation, key)
        now = self._clock()
        fresh = Record(
            scope=f"{operation}:{request.merchantAccountId}:{key}",
            fingerprint=self._fingerprint(operation, request),
            state=State.IN_PROGRESS,
            created_at=now,
            updated_at=now,
            context=_reconciliation_context(operation, meta, request, order_id),
        )
        claimed, record = self.idempotency.claim(fresh)
        reconcile = False
        if not claimed:
            if not hmac.compare_digest(record.fingerprint, fresh.fingerprint):
                call.conflict("key_reused")
                raise IdempotencyKeyReused(
                    "this transactionId or Idempotency-Key was already used for a different request"
                )
            if record.state.final and record.body is not None and record.status is not None:
                call.replayed()
                return _replay(record)
            if record.reconciliation.get("step"):
                # The reconciler has started reversing the earlier attempt's charge: only it knows
                # what it did, and it stores the answer this retry will get.
                call.conflict("reconciling")
                raise RequestInProgress("reconciliation is settling the earlier attempt; retry later for its outcome")
            lease = self.settings.idempotency_lease_seconds
            lease_left = record.state is State.IN_PROGRESS and now - record.updated_at < lease
            taken = None if lease_left else self.idempotency.transition(record, state=State.IN_PROGRESS)
            if taken is None:
                call.conflict("in_progress")
                raise RequestInProgress("an identical request is being processed; retry shortly")
            # Unknown, or left in progress by an instance that died: find out before acting again.
            record, reconcile = taken, True
        return self._run(operation, cls, request, record, order_id, reconcile, deadline, call)

    def _run(
        self,
        operation: Operation,
        cls: type[Gateway],
        request: PaymentBody | RefundBody,
        record: Record,
        order_id: str,
        reconcile: bool,
        deadline: float,
        call: Call,
    ) -> Answer:
        merchant = request.merchantAccountId
        request_credentials = request.credentials if self.settings.allow_request_credentials else None
        # The gateway's calls end in time for the store write that records their outcome.
        gateway_deadline = deadline - STORE_CALL_SECONDS
        try:
            gateway, account = self.factory.create(
                cls, merchant, request_credentials=request_credentials, deadline=gateway_deadline
            )
            require_currency(account, request.currency)
        except Exception:
            # Nothing was sent: the key is given back before the fault is answered.
            self._give_back(record, reconcile)
            raise
        try:
            result = self._call_gateway(
                operation, cls, request, gateway, account, order_id, reconcile, gateway_deadline, call
            )
        except GatewayError as error:
            if isinstance(error, OutcomeUnknown):
                call.unknown(error.code)
            answer = from_gateway_error(error, merchant)
            return self._conclude(record, answer, _state_after(error), reconcile)
        except ServiceError as error:
            # Only the credential refresh raises these, after the gateway refused the old ones.
            return self._conclude(record, from_service_error(error, merchant), None, reconcile)
        except Exception as error:  # noqa: BLE001 - after a gateway call a fault is an unknown outcome
            log_unexpected(error, operation)
            call.unknown("internal_error")
            return self._conclude(record, _unknown(merchant), State.UNKNOWN, reconcile)
        return self._conclude(record, approved(result, merchant), State.COMPLETED, reconcile)

    def _call_gateway(
        self,
        operation: Operation,
        cls: type[Gateway],
        request: PaymentBody | RefundBody,
        gateway: Gateway,
        account: MerchantAccount,
        order_id: str,
        reconcile: bool,
        deadline: float,
        call: Call,
    ) -> GatewayResult:
        def act(target: Gateway) -> GatewayResult:
            if isinstance(request, PaymentBody):
                if reconcile:
                    found = target.find_payment(order_id)
                    if found is not None:
                        return approved_in_full(target, found, request.amount)
                return approved_in_full(target, target.charge(_sale(request, order_id)), request.amount)
            if not reconcile:
                return refund_or_void(target, _refund(request, order_id))
            # The earlier attempt may have refunded or voided: find out before acting again.
            found = target.find_refund(order_id)
            if found is not None:
                return found
            try:
                return refund_or_void(target, _refund(request, order_id))
            except AlreadyVoided:
                # Only this service voids; the earlier attempt's void went through unanswered.
                return GatewayResult(
                    transaction_id=request.paymentTransactionId,
                    action="void",
                    code="voided",
                    message="voided by the earlier attempt of this request",
                    http_status=None,
                )

        try:
            return act(gateway)
        except CredentialsRejected:
            call.credentials_rejected()
            if request.credentials is not None:
                # The caller's own credentials: theirs to fix; ours are not involved, so no re-read.
                raise InvalidRequestCredentials(
                    f"the gateway refused the credentials sent in the request for merchant account "
                    f"{request.merchantAccountId}"
                ) from None
            # Security may have rotated the secret: read it afresh and try once more if it changed.
            fresh_gateway, fresh = self.factory.create(cls, request.merchantAccountId, refresh=True, deadline=deadline)
            if fresh.credentials == account.credentials and fresh.version == account.version:
                raise
            return act(fresh_gateway)

    def _conclude(self, record: Record, answer: Answer, state: State | None, reconcile: bool) -> Answer:
        """Record the answer, then give it; `state` None gives the key back. An answer that cannot
        be recorded is not given: a replay must say what the caller was told, so the caller is
        told the outcome is unknown and the record stays unsettled for the retry to find out."""
        try:
            if state is None:
                self._give_back(record, reconcile)
                return answer
            if self.idempotency.transition(record, state=state, status=answer.status, body=answer.body) is not None:
                return answer
            logger.warning("idempotency record %s changed under this request", record.scope)
        except StoreUnavailable as error:
            logger.error("the outcome for %s could not be recorded: %s", record.scope, error)
        except Exception as error:  # noqa: BLE001 - a gateway was called: unknown, never a 500
            log_unexpected(error, None)
        if answer.detail.statusCode == "outcome_unknown":
            return answer
        return _unknown(answer.detail.merchantAccountId)

    def _give_back(self, record: Record, reconcile: bool) -> None:
        """This attempt did nothing at the gateway. A fresh key is forgotten so a retry starts over;
        a key whose earlier attempt's outcome is still unknown stays unknown, so the next retry
        (or the reconciler) still looks the charge up instead of charging again."""
        if reconcile:
            self.idempotency.transition(record, state=State.UNKNOWN)
        else:
            self.idempotency.release(record)

    def _fingerprint(self, operation: Operation, request: PaymentBody | RefundBody) -> str:
        return hmac.new(self._fingerprint_key(), request_identity(operation, request), hashlib.sha256).hexdigest()

    def _audit(self, meta: BVMeta | None, request: PaymentBody | RefundBody | None, answer: Answer) -> None:
        detail = answer.detail
        data: dict[str, Any] = {"status": answer.status, "paymentTransactionId": detail.paymentTransactionId}
        if request is not None:
            data.update(
                gatewayTypeId=request.gatewayTypeId,
                gatewayTypeName=request.gatewayTypeName,
                merchantAccountId=request.merchantAccountId,
                userId=request.userId,
                comment=request.comment,
                amount=None if request.amount is None else str(request.amount),
                currencyType=request.currencyType,
                maskedCardNumber=(
                    request.masked_card_number or answer.masked_card
                    if isinstance(request, PaymentBody)
                    else audit.last_four_only(request.maskedCardNumber)
                ),
            )
        ids = None
        if meta is not None:
            ids = {"transactionId": meta.transactionId, "universityId": meta.universityId, "userId": meta.userId}
        audit.write(meta=ids, success=detail.success, data=data)


def check_card_or_token(cls: type[Gateway], request: PaymentBody) -> None:
    """Refuse, before any call, what the account's gateway cannot charge: a token of a type it does
    not take, or a card number when it takes tokens only."""
    if request.token is not None and request.token.type not in cls.token_kinds:
        accepted = ", ".join(sorted(cls.token_kinds)) or "none"
        message = f"{cls.name} does not take {request.token.type} tokens; token types it takes: {accepted}"
        if cls.accepts_cards:
            message += " (or send the card number)"
        raise TokenNotAccepted(message, errors=[{"field": "token.type", "message": message}])
    if request.token is None and not cls.accepts_cards:
        accepted = ", ".join(sorted(cls.token_kinds))
        message = f"{cls.name} takes card tokens only ({accepted}), not card numbers"
        raise CardNumberNotAccepted(message, errors=[{"field": "account", "message": message}])


def _merchant(request: PaymentBody | RefundBody | None) -> int | None:
    return request.merchantAccountId if request is not None else None


def _echoing_meta(answer: Answer, raw_meta: str | None) -> Answer:
    return answer.with_headers({"BVMeta": raw_meta}) if raw_meta else answer


def _state_after(error: GatewayError) -> State | None:
    """What a gateway failure leaves the key as; None gives it back."""
    if isinstance(error, OutcomeUnknown):
        return State.UNKNOWN
    if isinstance(error, Declined | RequestRejected):
        # Final answers about this exact request: a retry must see the same decline.
        return State.COMPLETED
    # Nothing happened at the gateway and a later retry may succeed (rotated credentials, a
    # settled payment, a reachable gateway).
    return None


def _unknown(merchant: int | None) -> Answer:
    return from_store_fault(gateway_called=True, merchant_account_id=merchant)


def log_unexpected(error: BaseException, operation: Operation | None) -> None:
    """Names the exception's type and where it was raised, never its message or locals, which
    could hold request data."""
    what = operation.value if operation is not None else "a call"
    logger.error("unexpected %s in %s at %s", type(error).__name__, what, where(error))


def unserved(headers: Mapping[str, str]) -> Answer:
    """The answer when no service could take the call (its settings do not load): a 500 with the
    envelope, audited like every other call."""
    raw_meta = header(headers, "BVMeta")
    ids = None
    with contextlib.suppress(ServiceError):
        meta = parse_meta(raw_meta)
        ids = {"transactionId": meta.transactionId, "universityId": meta.universityId, "userId": meta.userId}
    answer = internal_failure()
    audit.write(meta=ids, success=False, data={"status": answer.status})
    return _echoing_meta(answer, raw_meta)


def _replay(record: Record) -> Answer:
    assert record.body is not None and record.status is not None
    return replayed(record.status, record.body)


def _sale(request: PaymentBody, order_id: str) -> SaleRequest:
    expiry = None if request.expDate is None else (int(request.expDate[:2]), 2000 + int(request.expDate[2:]))
    card = token = None
    if request.token is not None:
        token = CardToken(
            kind=request.token.type,
            value=request.token.value,
            descriptor=request.token.descriptor,
            exp_month=expiry[0] if expiry else None,
            exp_year=expiry[1] if expiry else None,
        )
    else:
        # The contract has checked all three: a body without a token carries the whole card.
        assert request.account is not None and request.cvv2 is not None and expiry is not None
        card = Card(number=request.account, exp_month=expiry[0], exp_year=expiry[1], cvv=request.cvv2)
    return SaleRequest(
        order_id=order_id,
        amount=request.amount,
        currency=request.currency,
        card=card,
        token=token,
        billing=BillingAddress(
            name=request.name,
            street=request.street,
            city=request.city,
            state=request.state,
            postal_code=request.postal_code,
            country=request.country,
        ),
        comment=request.comment,
    )


def _refund(request: RefundBody, order_id: str) -> RefundRequest:
    return RefundRequest(
        payment_id=request.paymentTransactionId,
        amount=request.amount,
        order_id=order_id,
        currency=request.currency,
        comment=request.comment,
    )


def _reconciliation_context(
    operation: Operation, meta: BVMeta, request: PaymentBody | RefundBody, order_id: str
) -> dict[str, Any]:
    return {
        "operation": operation.value,
        "merchantAccountId": request.merchantAccountId,
        "gatewayTypeId": request.gatewayTypeId,
        "orderId": order_id,
        "transactionId": meta.transactionId,
        "universityId": meta.universityId,
        "userId": meta.userId,
        "amount": None if request.amount is None else str(request.amount),
        "currencyType": request.currencyType,
    }
