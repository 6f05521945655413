"""Every 5 minutes: void charges whose outcome stayed unknown past RECONCILE_AFTER_SECONDS."""

import time

import azure.functions as func

from shared import runtime
from shared.reconcile import reconcile_unknown


def main(timer: func.TimerRequest) -> None:
    reconcile_unknown(runtime.service(), now=time.time())
