"""A TCP relay in front of a server (Azurite in the tests) that can pass, refuse, drop or freeze.

    with Relay(("127.0.0.1", azurite_port)) as relay:
        relay.port                  # where clients connect instead
        relay.set_mode("refuse")    # the port is closed: connect fails at once (ECONNREFUSED)
        relay.set_mode("drop")      # connections are accepted, and closed when the request arrives
        relay.set_mode("freeze")    # connections are accepted and the request read; nothing ever answers
        relay.set_mode("pass")      # bytes flow both ways again
        relay.connections           # connections accepted so far

Every change of mode cuts the connections already open, so a client's pooled keep-alive
connection meets the new mode on its next request, as it would when a storage front end fails.
Threads are daemons and the relay closes every socket it opened on exit.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Literal

Mode = Literal["pass", "refuse", "drop", "freeze"]
CHUNK = 65536


class Relay:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.mode: Mode = "pass"
        self.connections = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._changed = threading.Condition(self._lock)
        self._closed = False
        self._listener: socket.socket | None = None
        self.port = self._listen(0)

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()

    def set_mode(self, mode: Mode) -> None:
        with self._lock:
            self.mode = mode
            self._cut_locked()
            listener, self._listener = self._listener, None
            self._changed.notify_all()
        if listener is not None:
            _close(listener)
        if mode != "refuse":
            self._listen(self.port)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._cut_locked()
            listener, self._listener = self._listener, None
            self._changed.notify_all()
        if listener is not None:
            _close(listener)

    def _listen(self, port: int) -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return int(listener.getsockname()[1])

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed: refuse, or the end
            with self._lock:
                if self._closed:
                    _close(client)
                    return
                self.connections += 1
                self._open.add(client)
                mode = self.mode
            threading.Thread(target=self._serve, args=(client, mode), daemon=True).start()

    def _serve(self, client: socket.socket, mode: Mode) -> None:
        if mode == "drop":
            with contextlib.suppress(OSError):
                client.recv(CHUNK)
            self._forget(client)
            return
        if mode == "freeze":
            self._hold(client)
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            self._forget(client)
            return
        upstream.settimeout(None)
        with self._lock:
            if self.mode != mode or self._closed:
                self._open.add(upstream)
                self._cut_locked()
                return
            self._open.add(upstream)
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
        self._pump(client, upstream)

    def _hold(self, client: socket.socket) -> None:
        """Read and discard what the client sends; answer nothing until the mode changes."""
        client.settimeout(0.1)
        while True:
            with self._lock:
                if self._closed or self.mode != "freeze" or client not in self._open:
                    break
            try:
                if not client.recv(CHUNK):
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        self._forget(client)

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(CHUNK):
                target.sendall(data)
        except OSError:
            pass
        self._forget(source)
        self._forget(target)

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        _close(sock)

    def _cut_locked(self) -> None:
        for sock in self._open:
            _close(sock)
        self._open.clear()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
