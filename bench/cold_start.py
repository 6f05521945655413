"""One cold start, as a new worker process sees it: `python -m bench.cold_start` with the settings
in the environment (`BENCH_PAYMENT`: the payment's JSON body). Prints, as JSON, the time taken to
import `ProcessPayment` (which brings in `azure.functions` and the service's modules) and to answer
the first and the second payment (the first builds the service: settings, credential file, HTTP
pool, SQLite store, TCP connection). Each is given as wall time and as this process's CPU time,
which other load on the machine disturbs far less."""

from __future__ import annotations

import json
import os
import time
import uuid

clocks = (time.perf_counter(), time.process_time())
import ProcessPayment  # noqa: E402 - the import is what is timed

imported = (time.perf_counter(), time.process_time())

import azure.functions as func  # noqa: E402 - already loaded by ProcessPayment


def payment() -> func.HttpRequest:
    meta = {"transactionId": str(uuid.uuid4()), "universityId": 7, "userId": 42}
    body = json.loads(os.environ["BENCH_PAYMENT"])  # the benchmark's payment (bench/target.py)
    return func.HttpRequest(
        "POST", "http://localhost/paymentGateway/processPayment",
        headers={"BVMeta": json.dumps(meta)}, body=json.dumps(body).encode(),
    )


def timed_payment() -> tuple[float, float]:
    request = payment()
    wall, cpu = time.perf_counter(), time.process_time()
    status = ProcessPayment.main(request).status_code
    assert status == 200, status
    return time.perf_counter() - wall, time.process_time() - cpu


first = timed_payment()
second = timed_payment()
print(json.dumps({
    "import_seconds": imported[0] - clocks[0], "import_cpu_seconds": imported[1] - clocks[1],
    "first_request_seconds": first[0], "first_request_cpu_seconds": first[1],
    "second_request_seconds": second[0], "second_request_cpu_seconds": second[1],
}))
