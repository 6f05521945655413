"""What both fake gateways share: a threaded loopback HTTP/1.1 server that records every request
and can inject faults. The gateway-specific behaviour lives in `cardconnect.py` and `payload.py`."""

from __future__ import annotations

import base64
import binascii
import contextlib
import itertools
import json
import re
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

MALFORMED_FAULTS = frozenset({"missing_id", "nan_amount", "listing"})
"""Answers a gateway should never give: the reply without its transaction id, with a NaN amount, or
wrapped in a JSON array instead of the object. Carried out by default, like a real gateway whose
answer got mangled."""
STATUS_FAULTS = frozenset({"http400", "http405", "http406", "http407", "http410", "http415", "http429"})
"""Not carried out: the status with the gateway's error body (`error_reply`), as a gateway, its load
balancer or an egress proxy (407) would answer. 429 is a rate limit (CardConnect's UAT: 20 inquiries a
minute per IP): refused before acting, with `Retry-After`."""
COMMON_FAULTS = frozenset({"slow", "drop", "http500", "echo"}) | MALFORMED_FAULTS | STATUS_FAULTS
""""echo": not carried out; a refusal whose texts and codes repeat what the request sent (card
number, CVV, expiry, credentials), as a careless gateway or a debugging proxy might (`echo_reply`)."""


@dataclass
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    """Parsed JSON, or a bracketed form body turned into nested dicts and lists, or None."""
    raw_body: str
    client: tuple[str, int]
    """(ip, port) of the TCP connection it came on: count distinct ports to count connections."""
    basic_auth: tuple[str, str] | None
    bearer: str | None
    target: str = ""
    """The request-target as sent: a path, or an absolute URL when the request came through a proxy."""
    status: int | None = None
    """The HTTP status answered; None when the fake dropped the connection instead."""
    fault: str | None = None
    """The fault mode applied to this request, if any."""

    @property
    def authorization(self) -> str | None:
        return self.headers.get("Authorization")


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    """Bytes to send as they are instead of `body` as JSON (a proxy relaying an answer)."""


@dataclass
class Fault:
    mode: str
    seconds: float
    remaining: int | None
    match: re.Pattern[str] | None
    carry_out: bool


class FakeServer:
    """Base of the fakes: start/stop (or `with`), `base_url`, `requests`, `set_fault`, `client_ports`."""

    fault_modes: frozenset[str] = COMMON_FAULTS
    url_path = ""
    id_field = "id"
    """The answer's transaction id field (what "missing_id" drops)."""
    nan_amount: Any = float("nan")
    """What "nan_amount" puts in the answer's amount (a JSON NaN, or the gateway's string form)."""

    def __init__(self) -> None:
        self.sets_cookies = False
        """When True, every answer sets a fresh `JSESSIONID` cookie, as a gateway's load balancer
        may: a client that keeps cookies then sends one merchant's cookie on the next request."""
        self._cookies = itertools.count(1)
        self.lock = threading.RLock()
        self._requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handle(self, request: RecordedRequest) -> Reply:
        """Carry out `request` and return the answer (gateway-specific)."""
        raise NotImplementedError

    def special_fault(self, fault: Fault, request: RecordedRequest) -> Reply | None:
        """Answer for a gateway-specific fault mode, or None if `fault` is a common one."""
        return None

    def server_error(self) -> Reply:
        return Reply(500, {"error": "Internal Server Error"})

    def echo_reply(self, request: RecordedRequest) -> Reply:
        return Reply(400, {"error": " ".join(sent_values(request))})

    def error_reply(self, status: int) -> Reply:
        return Reply(status, {"status": status, "error": HTTPStatus(status).phrase})

    def malformed(self, mode: str, reply: Reply) -> Reply:
        body = reply.body
        if mode == "listing":
            return replace(reply, body=[body])
        if not isinstance(body, dict):
            return reply
        if mode == "missing_id":
            return replace(reply, body={k: v for k, v in body.items() if k != self.id_field})
        return replace(reply, body={**body, "amount": self.nan_amount})

    def start(self) -> Self:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self), bind_and_activate=False)
        server.daemon_threads = True
        server.request_queue_size = 256  # 32 clients connecting at once must not overflow the backlog
        server.server_bind()
        server.server_activate()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the fake is not started"
        return int(self._server.server_address[1])

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + self.url_path

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self.lock:
            self._requests.clear()

    def client_ports(self, where: Callable[[RecordedRequest], bool] = lambda r: True) -> set[int]:
        return {r.client[1] for r in self.requests if where(r)}

    def set_fault(
        self,
        mode: str,
        *,
        seconds: float = 30.0,
        count: int | None = 1,
        match: str | None = None,
        carry_out: bool | None = None,
    ) -> None:
        """Apply fault `mode` to the next `count` requests (None: every request until cleared)
        whose `request_line` ("METHOD /path") matches the regex `match`. `carry_out` says whether the
        request is carried out before the fault (default: yes for slow, drop and the malformed
        answers, no for the others). A slow answer comes after `seconds` or once the client gives up,
        whichever is first: by default it outlasts any client timeout the tests set."""
        if mode not in self.fault_modes:
            raise ValueError(f"unknown fault mode {mode!r}; known: {sorted(self.fault_modes)}")
        if carry_out is None:
            carry_out = mode in ("slow", "drop") or mode in MALFORMED_FAULTS
        with self.lock:
            self._faults.append(Fault(mode, seconds, count, re.compile(match) if match else None, carry_out))

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def request_line(self, request: RecordedRequest) -> str:
        """What a fault's `match` is searched in: "METHOD /path", and for a gateway whose operations
        share one path (Payflow: every call is `POST /`) what tells them apart."""
        return f"{request.method} {request.path}"

    def _take_fault(self, request: RecordedRequest) -> Fault | None:
        line = self.request_line(request)
        with self.lock:
            for fault in self._faults:
                if fault.match is not None and not fault.match.search(line):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def _serve(self, request: RecordedRequest, client_gone: Callable[[], bool] = lambda: False) -> Reply | None:
        """The answer to send, or None to drop the connection without one. `client_gone` says whether
        the client has closed its end (a slow answer waits for that, up to the fault's seconds)."""
        with self.lock:
            self._requests.append(request)
        fault = self._take_fault(request)
        if fault is None:
            return self.handle(request)
        request.fault = fault.mode
        special = self.special_fault(fault, request)
        if special is not None:
            return special
        reply = self.handle(request) if fault.carry_out else None
        if fault.mode == "echo":
            return self.echo_reply(request)
        if fault.mode in STATUS_FAULTS:
            status = int(fault.mode.removeprefix("http"))
            refusal = self.error_reply(status)
            return replace(refusal, headers={**refusal.headers, "Retry-After": "1"}) if status == 429 else refusal
        if fault.mode in MALFORMED_FAULTS:
            return self.malformed(fault.mode, reply or Reply(200, {"object": "error"}))
        if fault.mode == "http500":
            return self.server_error()
        if fault.mode == "drop":
            return None
        # slow: answer after `seconds`, or as soon as the client has given up (its timeout fired), so
        # a test's client timeout, not a race between two clocks, decides what the client saw.
        deadline = time.monotonic() + fault.seconds
        while not client_gone() and time.monotonic() < deadline and not self._stopping.wait(0.02):
            pass
        return reply if reply is not None else self.server_error()


def _handler_for(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 30
        disable_nagle_algorithm = True  # headers and body go out in two writes; don't stall 40 ms

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def do_PUT(self) -> None:
            self._answer()

        def do_DELETE(self) -> None:
            self._answer()

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _client_gone(self) -> bool:
            """The client closed its end: the request is read whole, so the socket turning readable
            can only mean end-of-file (or a reset)."""
            try:
                readable, _, _ = select.select([self.connection], [], [], 0)
                return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
            except OSError:
                return True

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
            parts = urlsplit(self.path)
            headers = dict(self.headers.items())
            basic, bearer = _credentials(headers.get("Authorization"))
            request = RecordedRequest(
                method=self.command,
                path=parts.path,
                query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                headers=headers,
                body=_parse_body(raw, headers.get("Content-Type", "")),
                raw_body=raw,
                client=(str(self.client_address[0]), int(self.client_address[1])),
                basic_auth=basic,
                bearer=bearer,
                target=self.path,
            )
            reply = fake._serve(request, self._client_gone)
            if reply is None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            request.status = reply.status
            payload = b"" if reply.body is None else json.dumps(reply.body, default=_json_default).encode()
            if reply.raw is not None:
                payload = reply.raw
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if fake.sets_cookies:
                    self.send_header("Set-Cookie", f"JSESSIONID=lb-{next(fake._cookies)}; Path=/; HttpOnly")
                if payload and "Content-Type" not in reply.headers:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                self.close_connection = True  # the client gave up (slow mode)

    return Handler


def sent_values(request: RecordedRequest) -> list[str]:
    """Every string and number the request carried: its credentials, path segments, query and body
    values (nested ones included), for a fake that echoes them back."""
    values = [*(request.basic_auth or ()), *([request.bearer] if request.bearer else [])]
    values += [part for part in request.path.split("/") if part] + list(request.query.values())
    pending: list[Any] = [request.body]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str | int | Decimal) and not isinstance(item, bool):
            values.append(str(item))
    return [value for value in values if value]


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _credentials(header: str | None) -> tuple[tuple[str, str] | None, str | None]:
    if not header:
        return None, None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return None, value.strip()
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    user, _, password = decoded.partition(":")
    return (user, password), None


def _parse_body(raw: str, content_type: str) -> Any:
    if not raw:
        return None
    if "application/x-www-form-urlencoded" in content_type:
        return unflatten_form(parse_qsl(raw, keep_blank_values=True))
    try:
        return json.loads(raw, parse_float=Decimal)
    except ValueError:
        return None


_KEY_PART = re.compile(r"\[([^\[\]]*)\]")


def unflatten_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """`a[b][0][c]=v` pairs as {"a": {"b": [{"c": "v"}]}} (Payload's bracketed form encoding)."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        parts = [head, *_KEY_PART.findall("[" + rest)] if rest else [head]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    unflattened: dict[str, Any] = _lists(root)
    return unflattened


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _lists(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def unused_local_url() -> str:
    """http://127.0.0.1:<port> where nothing listens: a connection there is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
