"""The audit line: one structured JSON record per call, and one per reconciliation decision.

It holds the contract's fields; a reconciliation line adds the order id, the operation, the attempt
count and, when it could not settle the record, the reason. Card numbers, CVVs, expiry dates and
credential values never reach it. Every text value in it (the comment, `gatewayTypeName`, a reason,
whatever a later field adds) is passed through `redact_card_numbers`: a learner or an admin can type
anything into free text, and a caller can put anything into a field the contract only bounds in
length. The identifiers operations search by are kept as they are: a UUID's digit groups joined by
dashes can read as a Luhn-valid number, and a redacted key could no longer be found. Each has a
shape that holds no card number (a UUID the contract checks, a gateway's id, our letter-only order
id).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from gateways.cards import redact_card_numbers
from shared.contract import SERVICE_NAME

logger = logging.getLogger("paymentgateway.audit")

IDENTIFIERS = frozenset({"transactionId", "paymentTransactionId", "orderId"})

def last_four_only(masked: str | None) -> str | None:
    """A masked card number reduced to the contract's form: x's and the last four digits."""
    if not masked:
        return None
    digits = re.sub(r"\D", "", masked)[-4:]
    return "x" * max(len(masked) - 4, 0) + digits if len(digits) == 4 else None


def write(
    *,
    meta: Mapping[str, Any] | None,
    success: bool,
    data: Mapping[str, Any],
) -> None:
    meta = meta or {}
    record: dict[str, Any] = {
        "transactionId": meta.get("transactionId"),
        "universityId": meta.get("universityId"),
        "userId": meta.get("userId"),
        "level": "AUDIT" if success else "ERROR",
        "service": SERVICE_NAME,
        "data": {key: value for key, value in data.items() if value is not None},
    }
    line = json.dumps(_redacted(record), default=str, sort_keys=False)
    if success:
        logger.info(line)
    else:
        logger.error(line)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_card_numbers(value)
    if isinstance(value, Mapping):
        return {key: item if key in IDENTIFIERS else _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value
