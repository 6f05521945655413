"""The HTTP layer every gateway speaks through.

One pooled `requests.Session` per gateway base URL (scheme, host, port), shared by all merchants:
credentials travel with each request, never on the session. Nothing is ever retried here, because
a retried sale can charge twice; instead each failure is classified by whether the request can have
reached the gateway (`GatewayUnreachable`: it cannot; `OutcomeUnknown`: it may have).
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.retry import Retry

from gateways.base import GatewayUnreachable, OutcomeUnknown, redact_card_numbers

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
POOL_MAXSIZE = 32
"""Connections kept per base URL: one per worker thread, so 32 concurrent payments never queue."""
MAX_SESSIONS = 16
"""Base URLs kept at once; a deployment talks to two or three, so this bound is never reached in
practice and only guards against a misconfiguration that mints a new URL per request."""

Auth = tuple[str, str]
Transcript = Callable[[str], None]
"""Receives the text of one request and its response (or its failure), unscrubbed: for tests that
prove a gateway's `scrub`. Never wire it to a log."""


class InsecureUrlError(ValueError):
    """A gateway URL is not https (plain http is allowed only for loopback test servers)."""


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


class HttpPool:
    """One pooled `requests.Session` per gateway base URL, shared by all merchants; credentials
    travel per request, never on the session."""

    def __init__(
        self,
        timeouts: Timeouts,
        *,
        transcript: Transcript | None = None,
        pool_maxsize: int = POOL_MAXSIZE,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.timeouts = timeouts
        self.transcript = transcript
        self._pool_maxsize = pool_maxsize
        self._max_sessions = max_sessions
        self._sessions: OrderedDict[str, requests.Session] = OrderedDict()
        self._lock = threading.Lock()

    def send(
        self,
        method: str,
        url: str,
        *,
        auth: Auth,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> HttpReply:
        """Send one request and return the gateway's reply.

        Raises `GatewayUnreachable` when the request cannot have been sent (refused, DNS, connect
        timeout) and `OutcomeUnknown` when it may have been carried out but no usable answer came
        back (read timeout, dropped connection, HTTP 408 or 5xx, a 2xx that is not JSON).
        """
        session = self._session_for(url)
        request = requests.Request(method, url, auth=auth, json=json, params=params)
        prepared = session.prepare_request(request)
        host = urlsplit(url).netloc
        started = time.monotonic()
        try:
            response = session.send(
                prepared,
                timeout=(self.timeouts.connect, self.timeouts.read),
                allow_redirects=False,
            )
            # JSON is UTF-8 (RFC 8259); response.text would guess the charset with a detector.
            text = response.content.decode("utf-8", errors="replace")
        except requests.RequestException as error:
            self._record(prepared, f"(no response: {type(error).__name__})")
            raise _classify(error, method, host) from error
        elapsed_ms = (time.monotonic() - started) * 1000
        log.debug("%s %s -> HTTP %d in %.0f ms", method, host, response.status_code, elapsed_ms)
        if self.transcript is not None:
            self._record(prepared, f"HTTP {response.status_code}\n{_headers_text(response.headers.items())}\n\n{text}")
        reply = HttpReply(response.status_code, _parse_json(text), text)
        if reply.status == 408 or reply.status >= 500:
            raise OutcomeUnknown(
                f"{host} answered HTTP {reply.status}; the request may have been carried out",
                code=str(reply.status),
                http_status=reply.status,
            )
        if 200 <= reply.status < 300 and reply.json is None:
            raise OutcomeUnknown(
                f"{host} answered HTTP {reply.status} without a JSON body",
                code="unreadable_response",
                http_status=reply.status,
            )
        return reply

    def close(self) -> None:
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            session.close()

    def _session_for(self, url: str) -> requests.Session:
        key = base_url_key(url)
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                self._sessions.move_to_end(key)
                return session
            session = self._new_session()
            self._sessions[key] = session
            evicted = self._sessions.popitem(last=False)[1] if len(self._sessions) > self._max_sessions else None
        if evicted is not None:
            # Closing a session only stops its idle connections from being reused; requests in
            # flight on it finish normally.
            evicted.close()
        return session

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        # Proxy settings are read once here rather than from the environment on every request
        # (requests re-reads and re-parses os.environ per call when trust_env is on).
        session.trust_env = False
        session.proxies.update(urllib.request.getproxies())
        # No retries of any kind: a sale retried after the request left can charge twice.
        no_retries = Retry(total=0, connect=0, read=0, redirect=0, status=0, other=0, raise_on_status=False)
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self._pool_maxsize, max_retries=no_retries)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers["Accept"] = "application/json"
        return session

    def _record(self, prepared: requests.PreparedRequest, response_text: str) -> None:
        if self.transcript is None:
            return
        body = prepared.body.decode() if isinstance(prepared.body, bytes) else (prepared.body or "")
        self.transcript(
            f"{prepared.method} {prepared.url}\n{_headers_text(prepared.headers.items())}\n\n{body}\n"
            f"--\n{response_text}\n"
        )


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
    if not text.strip():
        return None
    try:
        return json.loads(text, parse_float=Decimal)
    except ValueError:
        return None


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
