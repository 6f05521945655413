"""Azurite's Table service (from npm) on a free loopback port, for the Table-storage tests.

`make test` installs azurite@3.35.0 with npm and passes its `azurite-table` binary in
AZURITE_TABLE; the process is started here once per test session and stopped by its PID.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Azurite's published development account key (the same for every Azurite install; not a secret).
DEV_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def azurite_binary() -> Path:
    configured = os.environ.get("AZURITE_TABLE")
    binary = Path(configured) if configured else ROOT / "node_modules" / ".bin" / "azurite-table"
    if not binary.exists():
        raise RuntimeError(
            f"azurite-table not found at {binary}; run the tests through `make test`, which installs it with npm"
        )
    return binary


@contextmanager
def azurite_table() -> Iterator[str]:
    """Yields a connection string for a fresh in-memory Azurite Table service."""
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="azurite-")
    log = Path(workdir) / "azurite.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(azurite_binary()), "--inMemoryPersistence", "--disableTelemetry", "--silent",
             "--tableHost", "127.0.0.1", "--tablePort", str(port)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=workdir,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("Azurite did not start:\n" + log.read_text()) from None
                time.sleep(0.2)
        yield (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={DEV_ACCOUNT_KEY};TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
        )
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
