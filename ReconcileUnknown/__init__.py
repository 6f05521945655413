"""Every 5 minutes: settle outcomes left unknown (void, refund, release or escalate), then purge."""

import time

import azure.functions as func

from shared import runtime
from shared.reconcile import reconcile_unknown


def main(timer: func.TimerRequest) -> None:
    reconcile_unknown(runtime.service(), now=time.time())
