"""The HTTP layer every gateway speaks through.

One connection pool (a `requests` `HTTPAdapter`) per gateway base URL (scheme, host, port), shared by
all merchants. There is deliberately no `requests.Session`: a session keeps a cookie jar, so a cookie
a gateway's load balancer sets on one merchant's answer would ride on every other merchant's request.
Each request is prepared on its own with its merchant's credentials, and nothing of an answer is kept.
Nothing is ever retried here, because a retried sale can charge twice; instead each failure is
classified by whether the request can have reached the gateway (`GatewayUnreachable`: it cannot;
`OutcomeUnknown`: it may have).

The HTTP statuses that mean the same at every gateway are mapped here, once (`status_error`): 401/403
credentials, 429 rate limit, 408/5xx unknown outcome, 404 and `CONFIGURATION_STATUSES` our
configuration. A gateway whose wire gives a status its own meaning on some call passes `statuses`
(e.g. a 403 or 404 on a URL naming a transaction: one it does not hold for this merchant). Every
other answer (2xx, the remaining 4xx) goes back to the gateway file to read.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import requests.utils
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.retry import Retry

from gateways.cards import redact_card_numbers
from gateways.errors import (
    CredentialsRejected,
    GatewayError,
    GatewayMisconfigured,
    GatewayUnreachable,
    OutcomeUnknown,
    RequestRejected,
)

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
POOL_MAXSIZE = 32
"""Connections kept per base URL: one per worker thread, so 32 concurrent payments never queue."""
MIN_SEND_SECONDS = 1.0
"""Below this much time left in a request's budget nothing more is sent: no gateway answers sooner."""
MAX_ROUTES = 16
"""Base URLs kept at once; a deployment talks to two or three, so this bound is never reached in
practice and only guards against a misconfiguration that mints a new URL per request."""

CONFIGURATION_STATUSES = frozenset({405, 406, 407, 410, 415})
"""Statuses that say how we call the gateway is wrong, whatever the request: method not allowed,
an Accept or Content-Type it does not serve, a proxy wanting credentials, an endpoint retired. A 404
means the same unless the call's `statuses` say otherwise (a URL naming an object the gateway may not
hold)."""

Auth = tuple[str, str]
Transcript = Callable[[str], None]
"""Receives the text of one request and its response (or its failure), unscrubbed: for tests that
prove a gateway's `scrub`. Never wire it to a log."""


@dataclass(frozen=True)
class GatewayCall:
    """What the observer learns of one request: labels and numbers only. Never a URL path (a
    gateway's paths may carry the merchant id), a query, a header or a body."""

    gateway: str
    endpoint: str
    """The endpoint kind the gateway file names (`auth`, `inquireByOrderid`, `transactions`)."""
    method: str
    host: str
    status: int | None
    """The gateway's HTTP status, or None when no answer came."""
    outcome: str
    """`answered`, `unknown` (may have been carried out), `unreachable` (not sent), `misconfigured`."""
    started_ns: int
    """Wall-clock start, nanoseconds since the epoch."""
    duration_s: float


Observer = Callable[[GatewayCall], None]
"""Told of every request after it ends (telemetry). It runs on the request's thread; an error in it
is logged and never changes the request's outcome."""


HEADERS = MappingProxyType({"Accept": "application/json", "User-Agent": requests.utils.default_user_agent()})
"""The only headers every request starts with (read-only: shared by every merchant's requests)."""


class InsecureUrlError(ValueError):
    """A gateway URL is not https (plain http is allowed only for loopback test servers)."""


@dataclass(frozen=True)
class _Route:
    """How requests to one base URL travel: its connection pool and the proxies the environment
    names for it (none when NO_PROXY covers the host)."""

    adapter: HTTPAdapter
    proxies: dict[str, str]


@dataclass(frozen=True)
class Timeouts:
    connect: float
    read: float


@dataclass(frozen=True)
class HttpReply:
    status: int
    json: Any
    """The parsed body (dict or list, floats as `Decimal`), or None if it was not JSON."""
    text: str


StatusError = Callable[[HttpReply], GatewayError]
"""Builds the error one status means on one call where the gateway's wire differs from `status_error`'s
defaults, e.g. `{404: not_found}` for a URL naming a transaction."""
NO_STATUSES: Mapping[int, StatusError] = MappingProxyType({})


class HttpPool:
    """One connection pool per gateway base URL, shared by all merchants; credentials travel per
    request, and no state (cookies, headers, auth) is kept between requests."""

    def __init__(
        self,
        timeouts: Timeouts,
        *,
        transcript: Transcript | None = None,
        observer: Observer | None = None,
        pool_maxsize: int = POOL_MAXSIZE,
        max_routes: int = MAX_ROUTES,
    ) -> None:
        self.timeouts = timeouts
        self.transcript = transcript
        self.observer = observer
        self._pool_maxsize = pool_maxsize
        self._max_routes = max_routes
        self._routes: OrderedDict[str, _Route] = OrderedDict()
        self._lock = threading.Lock()
        self._deadline: float | None = None

    def until(self, deadline: float) -> HttpPool:
        """This pool for one request that must be done by `deadline` (`time.monotonic()`): each
        send's timeouts are cut to the time left, and nothing is sent once too little is left.
        The view shares the pool's routes and connections."""
        view = copy.copy(self)
        view._deadline = deadline
        return view

    def _timeouts_left(self, method: str, host: str) -> tuple[float, float]:
        if self._deadline is None:
            return self.timeouts.connect, self.timeouts.read
        left = self._deadline - time.monotonic()
        if left < MIN_SEND_SECONDS:
            raise GatewayUnreachable(f"{method} to {host} not sent: the request's time budget is spent", code="budget")
        return min(self.timeouts.connect, left), min(self.timeouts.read, left)

    def send(
        self,
        method: str,
        url: str,
        *,
        auth: Auth | None,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        data: str | None = None,
        headers: Mapping[str, str] | None = None,
        json_reply: bool = True,
        gateway: str = "",
        endpoint: str = "",
        url_setting: str = "",
        statuses: Mapping[int, StatusError] = NO_STATUSES,
    ) -> HttpReply:
        """Send one request and return the gateway's reply. `gateway` and `endpoint` label it for
        the observer and for messages (the gateway's name, its endpoint kind); they never travel.
        `url_setting` is the app setting that holds the gateway's URL, which a 404 names. `auth`
        None sends no Authorization header (a gateway whose credentials travel in the body). A
        gateway whose wire is not JSON sends its body as `data` with its own `headers` (added to the
        shared ones) and reads the answer's text with `json_reply=False`.

        Raises `GatewayUnreachable` when the request cannot have been sent (refused, DNS, connect
        timeout) and `OutcomeUnknown` when it may have been carried out but no usable answer came
        back (read timeout, dropped connection, HTTP 408 or 5xx, a 2xx that is not JSON), and
        `GatewayMisconfigured` for the statuses in `CONFIGURATION_STATUSES`; then `statuses`' error
        for the reply's status, or `status_error`'s.
        """
        request = requests.Request(
            method, url, headers={**HEADERS, **(headers or {})}, auth=auth, json=json, params=params,
            data=None if data is None else data.encode(),
        )
        reply = self._observed(method, url, request, json_reply, gateway, endpoint)
        error = status_error(reply, gateway or urlsplit(url).netloc, url_setting, statuses)
        if error is not None:
            raise error
        return reply

    def _observed(
        self, method: str, url: str, request: requests.Request, json_reply: bool, gateway: str, endpoint: str
    ) -> HttpReply:
        route = self._route_for(url)
        prepared = request.prepare()
        if self.observer is None:
            return self._exchange(route, prepared, method, url, json_reply)
        started_ns, started = time.time_ns(), time.perf_counter()
        status: int | None = None
        outcome = "unknown"
        try:
            reply = self._exchange(route, prepared, method, url, json_reply)
            status, outcome = reply.status, "answered"
            return reply
        except (OutcomeUnknown, GatewayUnreachable, GatewayMisconfigured) as error:
            status = error.http_status
            outcome = _outcome(error)
            raise
        finally:
            call = GatewayCall(
                gateway, endpoint, method, urlsplit(url).hostname or "", status, outcome, started_ns,
                time.perf_counter() - started,
            )
            try:
                self.observer(call)
            except Exception as error:  # noqa: BLE001 - telemetry never changes a payment's outcome
                log.warning("the HTTP observer failed: %s", type(error).__name__)

    def _exchange(
        self, route: _Route, prepared: requests.PreparedRequest, method: str, url: str, json_reply: bool = True
    ) -> HttpReply:
        host = urlsplit(url).netloc
        timeout = self._timeouts_left(method, host)
        started = time.monotonic()
        try:
            # The adapter never follows redirects and keeps no cookies; the answer's cookies, if
            # any, die with the response object.
            response = route.adapter.send(
                prepared, timeout=timeout, proxies=route.proxies
            )
            # JSON is UTF-8 (RFC 8259); response.text would guess the charset with a detector. A
            # leading byte-order mark (some gateways send one) is dropped, as RFC 8259 lets parsers do.
            text = response.content.decode("utf-8-sig", errors="replace")
        except requests.RequestException as error:
            self._record(prepared, f"(no response: {type(error).__name__})")
            raise _classify(error, method, host) from error
        elapsed_ms = (time.monotonic() - started) * 1000
        log.debug("%s %s -> HTTP %d in %.0f ms", method, host, response.status_code, elapsed_ms)
        if self.transcript is not None:
            self._record(prepared, f"HTTP {response.status_code}\n{_headers_text(response.headers.items())}\n\n{text}")
        reply = HttpReply(response.status_code, _parse_json(text) if json_reply else None, text)
        if reply.status == 408 or reply.status >= 500:
            raise OutcomeUnknown(
                f"{host} answered HTTP {reply.status}; the request may have been carried out",
                code=str(reply.status),
                http_status=reply.status,
            )
        if reply.status in CONFIGURATION_STATUSES:
            raise GatewayMisconfigured(
                f"{host} answered HTTP {reply.status}: check the gateway URL and the egress proxy; nothing was done",
                code=str(reply.status),
                http_status=reply.status,
            )
        if json_reply and 200 <= reply.status < 300 and reply.json is None:
            raise OutcomeUnknown(
                f"{host} answered HTTP {reply.status} without a JSON body",
                code="unreadable_response",
                http_status=reply.status,
            )
        return reply

    def close(self) -> None:
        with self._lock:
            routes = list(self._routes.values())
            self._routes.clear()
        for route in routes:
            route.adapter.close()

    def adapters(self) -> list[HTTPAdapter]:
        """The connection pools currently kept, one per base URL (for measurements)."""
        with self._lock:
            return [route.adapter for route in self._routes.values()]

    def _route_for(self, url: str) -> _Route:
        key = base_url_key(url)
        with self._lock:
            route = self._routes.get(key)
            if route is not None:
                self._routes.move_to_end(key)
                return route
            route = self._new_route(key)
            self._routes[key] = route
            evicted = self._routes.popitem(last=False)[1] if len(self._routes) > self._max_routes else None
        if evicted is not None:
            # Closing a pool only stops its idle connections from being reused; requests in flight
            # on it finish normally.
            evicted.adapter.close()
        return route

    def _new_route(self, base_url: str) -> _Route:
        # No retries of any kind: a sale retried after the request left can charge twice.
        no_retries = Retry(total=0, connect=0, read=0, redirect=0, status=0, other=0, raise_on_status=False)
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self._pool_maxsize, max_retries=no_retries)
        # The proxies requests itself would use for this URL (HTTPS_PROXY, HTTP_PROXY, NO_PROXY...),
        # resolved once per base URL: requests re-reads and re-parses the environment per call.
        return _Route(adapter, requests.utils.get_environ_proxies(base_url))

    def _record(self, prepared: requests.PreparedRequest, response_text: str) -> None:
        if self.transcript is None:
            return
        body = prepared.body.decode() if isinstance(prepared.body, bytes) else (prepared.body or "")
        self.transcript(
            f"{prepared.method} {prepared.url}\n{_headers_text(prepared.headers.items())}\n\n{body}\n"
            f"--\n{response_text}\n"
        )


def status_error(
    reply: HttpReply, gateway: str, url_setting: str = "", statuses: Mapping[int, StatusError] = NO_STATUSES
) -> GatewayError | None:
    """The error an answered status means at every gateway, unless `statuses` maps it; None for the
    answers the gateway file reads itself."""
    status = reply.status
    special = statuses.get(status)
    if special is not None:
        return special(reply)
    if status in (401, 403):
        return CredentialsRejected(
            f"{gateway} did not accept the merchant's credentials", code=str(status), http_status=status
        )
    if status == 429:
        # Refused before anything was done: as safe to retry later as an unreachable host.
        return GatewayUnreachable(
            f"{gateway} rate limit reached; nothing was done", code="rate_limited", http_status=429
        )
    if status == 404:
        # A path the gateway does not serve: our base URL is wrong, not the caller's request.
        check = f"check {url_setting}" if url_setting else "check the gateway URL"
        return GatewayMisconfigured(
            f"{gateway} has no such endpoint: {check}; nothing was done", code="404", http_status=404
        )
    return None


def _outcome(error: OutcomeUnknown | GatewayUnreachable | GatewayMisconfigured) -> str:
    if isinstance(error, OutcomeUnknown):
        return "unknown"
    return "unreachable" if isinstance(error, GatewayUnreachable) else "misconfigured"


def gateway_url(base_url: str, *segments: str) -> str:
    """`base_url` followed by `segments`, each percent-encoded whole, so that no value in them (a
    transaction id, an order id, a merchant id) can add, drop or climb a path segment. Dot segments
    survive percent-encoding (RFC 3986 leaves `.` unreserved) and servers resolve them, so they are
    refused outright; nothing has been sent when this raises."""
    for segment in segments:
        if segment.strip(".") == "":
            raise RequestRejected(f"{segment!r} cannot be a path segment of a gateway URL", code="path_segment")
    return "/".join([base_url.rstrip("/"), *(quote(segment, safe="") for segment in segments)])


def base_url_key(url: str) -> str:
    """scheme://host:port of `url`; raises `InsecureUrlError` unless it is https or loopback."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise InsecureUrlError(f"gateway URL must be an absolute https URL (got scheme {parts.scheme!r})")
    if parts.scheme != "https" and host not in LOOPBACK_HOSTS:
        raise InsecureUrlError(f"gateway URL for {host} must use https; plain http is for loopback only")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{host}:{port}"


def _classify(error: requests.RequestException, method: str, host: str) -> GatewayUnreachable | OutcomeUnknown:
    if _never_sent(error):
        return GatewayUnreachable(f"could not connect to {host}: {type(error).__name__}", code="unreachable")
    if isinstance(error, requests.ReadTimeout):
        what = "no answer in time"
    else:
        what = f"connection failed after sending ({type(error).__name__})"
    return OutcomeUnknown(f"{method} to {host}: {what}; the request may have been carried out", code="no_response")


def _never_sent(error: BaseException) -> bool:
    """True when the failure happened while connecting, i.e. before any byte of the request left."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    seen: set[int] = set()
    pending: list[object] = [error]
    while pending:
        item = pending.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        # A failed certificate check ends the TLS handshake before any HTTP byte leaves; other TLS
        # errors can also strike mid-exchange, so they stay "unknown".
        if isinstance(item, (NewConnectionError, ConnectTimeoutError, ssl.SSLCertVerificationError)):
            return True
        pending.extend(item.args)
        pending.extend((getattr(item, "reason", None), item.__cause__, item.__context__))
    return False


def _parse_json(text: str) -> Any:
    """The parsed body, or None if it is not JSON. NaN and Infinity are not JSON (RFC 8259), so a body
    holding them is as unreadable as any other non-JSON body."""
    if not text.strip():
        return None
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_not_json)
    except ValueError:
        return None


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _headers_text(headers: Iterable[tuple[str, str | bytes]]) -> str:
    return "\n".join(f"{name}: {value!s}" for name, value in headers)


FILTERED = "[FILTERED]"
_AUTHORIZATION = re.compile(r"(?im)^(authorization:[ \t]*)(?:(basic|bearer)[ \t]+)?\S+")


def scrub_transcript(transcript: str, *, json_fields: Iterable[str] = (), form_fields: Iterable[str] = ()) -> str:
    """`transcript` with the Authorization header, the named JSON string/number fields, the named
    form or query fields (bracketed or not) and any Luhn-valid 13-19 digit run replaced by
    [FILTERED]. The digit-run rule is a net under the named fields, not a replacement for them."""
    text = _AUTHORIZATION.sub(lambda m: f"{m.group(1)}{m.group(2) + ' ' if m.group(2) else ''}{FILTERED}", transcript)
    for name in json_fields:
        text = re.sub(
            rf'("{re.escape(name)}"\s*:\s*)("(?:[^"\\]|\\.)*"|-?[\d.]+)',
            rf'\g<1>"{FILTERED}"',
            text,
        )
    for name in form_fields:
        text = re.sub(rf"(?m)((?:^|[?&\[]){re.escape(name)}\]?=)[^&\s]*", rf"\g<1>{FILTERED}", text)
    return redact_card_numbers(text, FILTERED)
