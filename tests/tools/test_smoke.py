"""tools.smoke against a real devhost process (the way ops run it against a deployment), plus its
refusals and its verdict on a deployment that does not replay."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gateways.cards import luhn_valid
from gateways.registry import gateway_types
from gateways.simulator import DECLINES, TIMEOUT_CARD
from tests.devhost_process import devhost, free_port
from tools import smoke

ROOT = Path(__file__).resolve().parents[2]
KEY = "smoke-test-function-key"
FULL_RUN = ["health", "no key", "bad BVMeta", "bad body", "decline", "payment", "payment replay", "full refund",
            "refund replay"]


@pytest.fixture
def host_env(tmp_path: Path) -> dict[str, str]:
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({
        "1001": {"gatewayTypeId": 900, "credentials": {}},
        "2001": {"gatewayTypeId": 2, "credentials": {"username": "u", "password": "pw-smoke", "merchantId": "1"}},
    }))
    return {
        "CREDENTIAL_SOURCE": "file",
        "LOCAL_CREDENTIALS_FILE": str(credentials),
        "ENABLE_SIMULATOR": "true",
        "IDEMPOTENCY_STORE": "sqlite",
        "IDEMPOTENCY_SQLITE_PATH": str(tmp_path / "idempotency.sqlite"),
        "DEVHOST_LOG": str(tmp_path / "devhost.log"),
        # Nothing here may reach a real gateway: a CardConnect account points at a closed port.
        "CARDCONNECT_URL": f"http://127.0.0.1:{free_port()}/cardconnect/rest",
    }


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.smoke", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})


def rows(table: str) -> dict[str, str]:
    """check name -> verdict, read from the printed table."""
    found = {}
    for line in table.splitlines():
        for verdict in ("PASS", "FAIL", "NOT RUN"):
            if f"  {verdict}  " in line or line.rstrip().endswith(f"  {verdict}"):
                found[line.split("  ")[0].strip()] = verdict
                break
    return found


def audit_statuses(log: str) -> list[int]:
    """The HTTP status of every audit line the devhost wrote (one per call that reached a function)."""
    lines = [line for line in log.splitlines() if " paymentgateway.audit " in line]
    return [json.loads(line[line.index("{"):])["data"]["status"] for line in lines]


def test_full_run_passes_against_the_devhost(host_env: dict[str, str]) -> None:
    with devhost(host_env, "--no-timers", "--function-key", KEY) as (base, log_path):
        result = run_tool("--url", base, "--key", KEY, "--merchant", "1001")
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout
    assert rows(table) == dict.fromkeys(FULL_RUN, "PASS"), table
    assert "smoke: 9 passed, 0 failed - all checks passed" in table
    assert KEY not in table
    # The service saw one decline, one sale and one refund; the replays were answered from the store.
    statuses = audit_statuses(log_path.read_text())
    assert statuses.count(200) == 4 and statuses.count(400) == 2 and statuses.count(422) == 1, statuses
    log = log_path.read_text()
    assert re.search(r'POST /paymentGateway/processPayment HTTP/1\.1\S*" 401 ', log), "the no-key request got no 401"


def test_no_charge_run_moves_no_money(host_env: dict[str, str]) -> None:
    with devhost(host_env, "--no-timers", "--function-key", KEY) as (base, log_path):
        result = run_tool("--url", base, "--merchant", "1001", "--no-charge", "--key", KEY)
    assert result.returncode == 0, result.stdout
    no_charge = ["health", "no key", "bad BVMeta", "bad body", "unknown refund"]
    assert rows(result.stdout) == dict.fromkeys(no_charge, "PASS")
    assert "smoke: 5 passed, 0 failed" in result.stdout
    statuses = audit_statuses(log_path.read_text())
    assert 200 not in statuses and 404 in statuses, statuses


def test_key_from_the_environment_and_a_host_that_does_not_enforce_it_fails(host_env: dict[str, str]) -> None:
    # This devhost enforces no key, like `func start`: the tool must say so and exit non-zero.
    with devhost(host_env, "--no-timers") as (base, _):
        result = subprocess.run(
            [sys.executable, "-m", "tools.smoke", "--url", base, "--merchant", "1001", "--no-charge"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env={"PATH": "/usr/bin:/bin", smoke.KEY_ENV: KEY},
        )
    assert result.returncode == 1, result.stdout
    verdicts = rows(result.stdout)
    assert verdicts["no key"] == "FAIL" and verdicts["bad BVMeta"] == "PASS", result.stdout
    assert "smoke: 4 passed, 1 failed" in result.stdout


def test_a_failing_health_check_fails_the_run_and_names_the_check(host_env: dict[str, str], tmp_path: Path) -> None:
    host_env["LOCAL_CREDENTIALS_FILE"] = str(tmp_path / "no-such-credentials.json")
    with devhost(host_env, "--no-timers") as (base, _):
        result = run_tool("--url", base, "--merchant", "1001", "--no-charge")
    assert result.returncode == smoke.FAILED, result.stdout
    assert rows(result.stdout)["health"] == "FAIL"
    assert "503 credentialStore=failed" in result.stdout


def test_a_real_merchant_account_under_the_simulator_type_stops_before_any_charge(host_env: dict[str, str]) -> None:
    with devhost(host_env, "--no-timers") as (base, log_path):
        result = run_tool("--url", base, "--merchant", "2001")
    assert result.returncode == smoke.REFUSED, result.stdout
    assert "stopped, nothing charged: merchant account 2001 is not a gateway type 900" in result.stdout
    verdicts = rows(result.stdout)
    assert verdicts == {"health": "PASS", "bad BVMeta": "PASS", "bad body": "PASS", "decline": "FAIL"}, result.stdout
    statuses = audit_statuses(log_path.read_text())
    assert 200 not in statuses


def test_refuses_a_real_gateway_type_without_allow_live() -> None:
    out = io.StringIO()
    # A closed port: a refusal must come before any request.
    code = smoke.main(["--url", f"http://127.0.0.1:{free_port()}", "--merchant", "2001", "--gateway-type", "2"], out)
    assert code == smoke.REFUSED
    assert "refused: gateway type 2 (CardConnect) is a real gateway" in out.getvalue()
    assert "--allow-live" in out.getvalue()
    out = io.StringIO()
    assert smoke.main(["--url", "http://127.0.0.1:1", "--merchant", "1", "--gateway-type", "77"], out) == 2
    assert "no test cards known for gateway type 77" in out.getvalue()


def test_an_unreachable_deployment_fails_every_check() -> None:
    out = io.StringIO()
    code = smoke.main(["--url", f"http://127.0.0.1:{free_port()}", "--merchant", "1001", "--timeout", "2"], out)
    assert code == smoke.FAILED
    verdicts = rows(out.getvalue())
    assert verdicts["bad BVMeta"] == "FAIL" and verdicts["payment"] == "FAIL"
    assert verdicts["full refund"] == "NOT RUN"
    assert "no answer: ConnectionError" in out.getvalue()


class _NonIdempotentHost(BaseHTTPRequestHandler):
    """A deployment that answers every valid payment with a fresh charge: no replay."""

    received: list[dict[str, Any]] = []

    def _answer(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        meta = self.headers.get("BVMeta", "")
        self.received.append({"method": self.command, "path": self.path, "meta": meta, "body": body})
        try:
            json.loads(meta)
        except ValueError:
            return self._send(400, {"success": False, "responseDetail": "Incomplete request"}, meta)
        if body.get("account") == "12":
            return self._send(422, {"success": False, "errors": [{"field": "account", "message": "x"}]}, meta)
        if body.get("account") in DECLINES:
            return self._send(400, {"success": False, "statusCode": "card_declined"}, meta)
        txn = f"sim_{len(self.received)}"
        return self._send(200, {"success": True, "paymentTransactionId": txn,
                                 "merchantAccountId": body["merchantAccountId"]}, meta)

    do_POST = do_PATCH = _answer

    def _send(self, status: int, detail: dict[str, Any], meta: str) -> None:
        payload = json.dumps({"detail": detail}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("BVMeta", meta)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def non_idempotent_host() -> Iterator[str]:
    _NonIdempotentHost.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NonIdempotentHost)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_deployment_that_charges_a_replay_again_fails(non_idempotent_host: str) -> None:
    out = io.StringIO()
    code = smoke.main(["--url", non_idempotent_host, "--merchant", "1001"], out)
    assert code == smoke.FAILED
    verdicts = rows(out.getvalue())
    assert verdicts["payment"] == "PASS"
    assert verdicts["payment replay"] == "FAIL" and verdicts["refund replay"] == "FAIL", out.getvalue()
    assert "(answer differs)" in out.getvalue()
    sent = _NonIdempotentHost.received
    payments = [r for r in sent if r["body"].get("account") == "4242424242424242" and r["meta"] != "not json"]
    # The replay is the same request: same transactionId, same body.
    assert len(payments) == 2 and payments[0] == payments[1]
    refund = next(r for r in sent if r["method"] == "PATCH")
    assert refund["body"]["paymentTransactionId"] == "sim_4" and "amount" not in refund["body"]
    assert refund["body"]["maskedCardNumber"] == "xxxxxxxxxxxx4242"


def test_test_cards_match_the_simulator_and_are_valid() -> None:
    declared = smoke.sandbox_cards(smoke.SIMULATOR_TYPE_ID)
    assert declared is not None
    name, sim = declared
    assert name == "Simulator" and sim.decline in DECLINES
    assert sim.approve not in DECLINES and sim.approve != TIMEOUT_CARD
    declaring = [cls.sandbox_cards for cls in gateway_types().values() if cls.sandbox_cards is not None]
    assert len(declaring) >= 3
    for cards in declaring:
        assert luhn_valid(cards.approve) and luhn_valid(cards.decline)
