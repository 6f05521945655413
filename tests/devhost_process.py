"""Start `python -m tools.devhost` as a real process on a free port, for tests over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def devhost(env: dict[str, str], *args: str) -> Iterator[tuple[str, Path]]:
    """Yields (base URL, path of the process's captured stdout+stderr)."""
    port = free_port()
    log_path = Path(env.get("DEVHOST_LOG", "")) if env.get("DEVHOST_LOG") else None
    if log_path is None:
        import tempfile

        log_path = Path(tempfile.mkstemp(prefix="devhost-", suffix=".log")[1])
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDENTIAL_", "IDEMPOTENCY_"))}
    full_env.update(env)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tools.devhost", "--port", str(port), *args],
            cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(base + "/", timeout=1)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("devhost did not start:\n" + log_path.read_text()) from None
                time.sleep(0.1)
        yield base, log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
