"""The audit line: one structured JSON record per call, and one per reconciliation decision.

It holds the contract's fields; a reconciliation line adds the order id, the operation, the attempt
count and, when it could not settle the record, the reason. Card numbers, CVVs, expiry dates and
credential values never reach it; free text (the comment) is passed through `redact_card_numbers`
because a learner or an admin can type anything into it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from gateways.base import redact_card_numbers
from shared.contract import SERVICE_NAME

logger = logging.getLogger("paymentgateway.audit")

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
    comment = record["data"].get("comment")
    if isinstance(comment, str):
        record["data"]["comment"] = redact_card_numbers(comment)
    line = json.dumps(record, default=str, sort_keys=False)
    if success:
        logger.info(line)
    else:
        logger.error(line)
