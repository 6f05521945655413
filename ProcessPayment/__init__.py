"""POST /paymentGateway/processPayment: charge a card (sale) for the monolith."""

import azure.functions as func

from shared.endpoint import handle
from shared.flow import Operation


def main(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, Operation.PAYMENT)
