"""PATCH /paymentGateway/processRefund: give money back (void before settlement, refund after)."""

import azure.functions as func

from shared.endpoint import handle
from shared.flow import Operation


def main(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, Operation.REFUND)
