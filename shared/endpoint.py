"""The HTTP edge shared by both functions: an Azure Functions request in, a response out.

Anything unexpected becomes a 500 with the envelope; the log names the exception type and where it
happened, never its message or locals, which could hold request data.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared import runtime
from shared.contract import Detail, Envelope
from shared.errors import where
from shared.flow import Operation
from shared.settings import SettingsError

logger = logging.getLogger("paymentgateway.endpoint")


def _internal_error(raw_meta: str | None) -> func.HttpResponse:
    detail = Detail(
        success=False,
        statusCode="internal_error",
        responseMessage="internal error",
        responseDetail="The payment service failed unexpectedly; nothing is known to have been charged "
        "by this call unless a retry with the same transactionId says otherwise.",
    )
    headers = {"BVMeta": raw_meta} if raw_meta else {}
    return func.HttpResponse(
        Envelope(detail=detail).to_json(), status_code=500, headers=headers, mimetype="application/json"
    )


def handle(req: func.HttpRequest, operation: Operation) -> func.HttpResponse:
    try:
        reply = runtime.service().handle(operation, dict(req.headers), req.get_body())
    except SettingsError as error:
        # Its message names the setting, never a value: operations need it to fix the app.
        logger.error("the payment service is misconfigured: %s", error)
        return _internal_error(req.headers.get("BVMeta"))
    except Exception as error:  # noqa: BLE001 - the last line of defence: the caller always gets the envelope
        logger.error("unexpected %s in %s at %s", type(error).__name__, operation.value, where(error))
        return _internal_error(req.headers.get("BVMeta"))
    return func.HttpResponse(reply.body, status_code=reply.status, headers=reply.headers, mimetype="application/json")
