"""The HTTP edge shared by both functions: an Azure Functions request in, a response out.

`PaymentService.handle` answers (and audits) everything a call can cause; what is left here is a
service that cannot be built (settings) or a fault outside it: a 500 with the envelope and its
audit line. The log names the exception type and where it happened, never its message or locals,
which could hold request data.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared import runtime
from shared.flow import Operation, log_unexpected, unserved
from shared.settings import SettingsError

logger = logging.getLogger("paymentgateway.endpoint")


def handle(req: func.HttpRequest, operation: Operation) -> func.HttpResponse:
    headers = dict(req.headers)
    try:
        answer = runtime.service().handle(operation, headers, req.get_body())
    except SettingsError as error:
        # Its message names the setting, never a value: operations need it to fix the app.
        logger.error("the payment service is misconfigured: %s", error)
        answer = unserved(headers)
    except Exception as error:  # noqa: BLE001 - the last line of defence: the caller always gets the envelope
        log_unexpected(error, operation)
        answer = unserved(headers)
    return func.HttpResponse(
        answer.body, status_code=answer.status, headers=answer.headers, mimetype="application/json"
    )
