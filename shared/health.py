"""GET /health: may this instance take payments? For probes (AKS, load balancers, uptime monitors).

Readiness (the default) checks three things: the configuration builds the service (the settings
and the idempotency key source are valid), the idempotency store answers a read, and the credential
store answers a read. Liveness (`?probe=live`) checks only that the worker runs Python code:
restarting a process cannot mend Key Vault or storage, so a dependency outage must take the
instance out of the load balancer, not restart it.

Probes come every few seconds from every pod or monitor, so each dependency check keeps its result
for RESULT_TTL_SECONDS (a failure too, so an outage is not hammered), runs at most once at a time
per process, and a probe waits at most CHECK_TIMEOUT_SECONDS for it: a hung store answers
`timed_out`, and the next probe waits on the same run instead of starting another. Key Vault thus
sees at most one read per process per TTL from probes, whatever the probe rate.

The answer names each check and its status, nothing else: no URL, account, exception text or
setting value.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from shared import runtime
from shared.credentials import AccountNotFound, MalformedSecret
from shared.errors import OK_STATUS, UNAVAILABLE_STATUS
from shared.flow import PaymentService
from shared.settings import SettingsError

logger = logging.getLogger("paymentgateway.health")

RESULT_TTL_SECONDS = 30.0
CHECK_TIMEOUT_SECONDS = 2.0
PROBE_ACCOUNT_ID = 0
"""No merchant account has id 0 (the contract requires merchantAccountId > 0): the credential probe
reads it to reach the store, and "not found" proves the store answered."""
PROBE_SCOPE = "health:0:probe"
"""An idempotency scope no request can have (no operation is called `health`)."""


class Status(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    """Not run: the configuration it needs is invalid."""


class Probe(enum.StrEnum):
    READY = "ready"
    LIVE = "live"


@dataclass(frozen=True)
class Report:
    checks: dict[str, Status]

    @property
    def healthy(self) -> bool:
        return all(status is Status.OK for status in self.checks.values())

    @property
    def http_status(self) -> int:
        return OK_STATUS if self.healthy else UNAVAILABLE_STATUS

    def to_json(self) -> dict[str, object]:
        return {"status": "ok" if self.healthy else "failing", "checks": {k: v.value for k, v in self.checks.items()}}


class CachedCheck:
    """One dependency check, cached for `ttl` seconds, single-flight, each caller waiting a bounded time.

    Deliberate shared state (one per process and dependency), guarded by a lock. The run happens on
    its own daemon thread so that a probe can stop waiting; a run that never ends blocks only
    later runs of the same check, never a probe for longer than `timeout`.
    """

    def __init__(
        self,
        name: str,
        check: Callable[[], None],
        ttl: float = RESULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = name
        self._check = check
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._result: tuple[float, Status] | None = None
        self._running: Future[Status] | None = None

    def begin(self) -> Future[Status]:
        """The kept result, or the run in flight (started now if there is none)."""
        with self._lock:
            if self._result is not None and self._clock() - self._result[0] < self._ttl:
                done: Future[Status] = Future()
                done.set_result(self._result[1])
                return done
            if self._running is None:
                self._running = Future()
                threading.Thread(
                    target=self._run, args=(self._running,), name=f"health-{self._name}", daemon=True
                ).start()
            return self._running

    def wait(self, running: Future[Status], timeout: float) -> Status:
        try:
            return running.result(timeout=max(timeout, 0.0))
        except FutureTimeout:
            logger.warning("health check %s took longer than %g s", self._name, timeout)
            return Status.TIMED_OUT

    def status(self, timeout: float = CHECK_TIMEOUT_SECONDS) -> Status:
        return self.wait(self.begin(), timeout)

    def _run(self, future: Future[Status]) -> None:
        try:
            self._check()
            status = Status.OK
        except Exception as error:  # noqa: BLE001 - any failure to answer is "failed"; the type is enough to log
            logger.warning("health check %s failed: %s", self._name, type(error).__name__)
            status = Status.FAILED
        with self._lock:
            self._result = (self._clock(), status)
            self._running = None
        future.set_result(status)


def idempotency_check(service: PaymentService) -> Callable[[], None]:
    def read() -> None:
        service.idempotency.get(PROBE_SCOPE)

    return read


def credential_check(service: PaymentService) -> Callable[[], None]:
    def read() -> None:
        # "Not found" or a malformed secret means the store answered; SourceUnavailable (or
        # anything unexpected) fails the check.
        with contextlib.suppress(AccountNotFound, MalformedSecret):
            service.factory.credentials.get(PROBE_ACCOUNT_ID)

    return read


@dataclass(frozen=True)
class _Checks:
    service: PaymentService
    idempotency: CachedCheck
    credentials: CachedCheck


_lock = threading.Lock()
_checks: _Checks | None = None


def _checks_for(service: PaymentService) -> _Checks:
    """The process's checks, built for the process's service (rebuilt if it was replaced)."""
    global _checks
    with _lock:
        if _checks is None or _checks.service is not service:
            _checks = _Checks(
                service,
                CachedCheck("idempotencyStore", idempotency_check(service)),
                CachedCheck("credentialStore", credential_check(service)),
            )
        return _checks


def _unconfigured() -> Report:
    skipped = Status.SKIPPED
    return Report({"configuration": Status.FAILED, "idempotencyStore": skipped, "credentialStore": skipped})


def report(probe: Probe = Probe.READY) -> Report:
    if probe is Probe.LIVE:
        return Report({})
    try:
        service = runtime.service()
    except SettingsError as error:
        # The message names the setting, never its value; ops need it and the answer must not hold it.
        logger.error("health: the configuration is invalid: %s", error)
        return _unconfigured()
    except Exception as error:  # noqa: BLE001 - e.g. a malformed connection string: the SDK's message may quote it
        logger.error("health: the service cannot be built: %s", type(error).__name__)
        return _unconfigured()
    checks = _checks_for(service)
    # Both checks start before either is waited for, so a probe takes one budget, not two.
    running = [(check, check.begin()) for check in (checks.idempotency, checks.credentials)]
    deadline = time.monotonic() + CHECK_TIMEOUT_SECONDS
    store, credentials = (check.wait(future, deadline - time.monotonic()) for check, future in running)
    return Report({"configuration": Status.OK, "idempotencyStore": store, "credentialStore": credentials})
