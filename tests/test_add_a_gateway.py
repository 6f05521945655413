"""Adding a gateway is its file and its fake: proven on a copy of the tree.

The tracked tree is copied to a temporary directory, a minimal gateway `gateways/acme.py` and its fake
`tests/fakes/acme.py` (below, as text) are dropped in, and subprocesses in the copy show that
`ProcessPayment`'s `main(req)` charges through it (its URL setting read from the environment), that
`python -m tools.migrations` writes its SQL, and that the conformance suite runs every case for it, as
for every other gateway, and passes; so do the other tests that take every registered gateway (the
registry, URL, names and migrations tests), unedited. Then no tracked file of the copy has changed:
the only new files are the two dropped in and the SQL.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from gateways.registry import gateway_types

REPO = Path(__file__).resolve().parent.parent

GATEWAY = '''"""Acme: a minimal gateway for the drop-in test (JSON over HTTPS, the API key as Basic user)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from gateways.base import CredentialField, Gateway, GatewayResult, PaymentStatus, SaleRequest, require_card
from gateways.errors import Declined, NotRefundable, StandardError, TransactionNotFound
from gateways.http import HttpReply, gateway_url, scrub_transcript

Body = dict[str, Any]


def not_found(reply: HttpReply) -> TransactionNotFound:
    return TransactionNotFound("Acme has no such transaction", code="not_found", http_status=reply.status)


class AcmeGateway(Gateway):
    type_id = 4711
    name = "Acme"
    credential_fields = (CredentialField("apiKey", "API key", 1),)
    test_url = "https://sandbox.acme.test/v1"
    live_url = "https://api.acme.test/v1"
    url_setting = "ACME_URL"

    def charge(self, sale: SaleRequest) -> GatewayResult:
        card = require_card(sale, self.name)
        answer = self._commit("POST", ("transactions",), {
            "type": "sale", "amount": str(sale.amount), "currency": sale.currency, "order_id": sale.order_id,
            "card": {"number": card.number, "exp": f"{card.exp_month:02d}/{card.exp_year % 100:02d}", "cvv": card.cvv},
        })
        if answer["status"] != "approved":
            raise Declined(answer["message"], code=answer["code"], http_status=200, standard=StandardError.DECLINED,
                           transaction_id=answer["id"])
        return result_from(answer, "sale")

    def payment_status(self, payment_id: str) -> PaymentStatus:
        answer = self._commit("GET", ("transactions", payment_id))
        live = answer["status"] == "approved"
        return PaymentStatus(
            transaction_id=answer["id"], is_payment=answer["type"] == "sale", amount=Decimal(answer["amount"]),
            currency=answer["currency"], settled=answer["settled"], voided=answer["status"] == "voided",
            voidable=live and not answer["settled"], refundable=live and answer["settled"],
            refunded=Decimal(answer["refunded"]), state=answer["status"],
        )

    def void(self, payment_id: str, amount: Decimal | None = None) -> GatewayResult:
        return result_from(self._commit("POST", ("transactions", payment_id, "void")), "void")

    def refund(self, payment_id: str, amount: Decimal | None, order_id: str, comment: str | None = None
               ) -> GatewayResult:
        body = {"order_id": order_id, **({} if amount is None else {"amount": str(amount)})}
        return result_from(self._commit("POST", ("transactions", payment_id, "refund"), body), "refund")

    def find_payment(self, order_id: str) -> GatewayResult | None:
        return self._find(order_id, "sale")

    def find_refund(self, order_id: str) -> GatewayResult | None:
        return self._find(order_id, "refund")

    def verify_credentials(self) -> None:
        self._commit("GET", ("transactions",), params={"limit": "1"})

    @staticmethod
    def scrub(transcript: str) -> str:
        return scrub_transcript(transcript, json_fields=("number", "exp", "cvv"))

    def _find(self, order_id: str, kind: str) -> GatewayResult | None:
        found = self._commit("GET", ("transactions",), params={"order_id": order_id, "type": kind})["data"]
        live = [t for t in found if t["status"] == "approved"]
        return result_from(live[0], "sale" if kind == "sale" else "refund") if live else None

    def _commit(self, method: str, path: tuple[str, ...], body: Body | None = None,
                params: Mapping[str, str] | None = None) -> Any:
        reply = self.http.send(
            method, gateway_url(self.context.base_url, *path), auth=(self.credentials["apiKey"], ""), json=body,
            params=params, gateway=self.name, endpoint=path[0], url_setting=self.url_setting,
            statuses={404: not_found} if len(path) > 1 else {},
        )
        if reply.status >= 400:
            raise NotRefundable(str(reply.json), code=str(reply.status), http_status=reply.status)
        return reply.json


def result_from(answer: Mapping[str, Any], action: Any) -> GatewayResult:
    return GatewayResult(answer["id"], action, answer["code"], answer["message"], 200, Decimal(answer["amount"]))
'''

FAKE = '''"""A stateful fake of the Acme API on the fake kit."""

from __future__ import annotations

from typing import Any

from tests.fakes import kit
from tests.fakes._server import RecordedRequest, Reply
from tests.fakes.kit import KitFake, Profile, Refused, TestCard, Txn, dig, parse_amount

DECLINES = {"4000000000000002": ("do_not_honor", "Do not honor")}


class AcmeFake(KitFake):
    url_path = "/v1"

    def __init__(self, keys: dict[str, str]) -> None:
        super().__init__()
        self.keys = keys

    def handle(self, request: RecordedRequest) -> Reply:
        merchant = self.keys.get(request.basic_auth[0] if request.basic_auth else "")
        if merchant is None:
            self.refuse_credentials()
            return Reply(401, {"error": "unauthorized"})
        parts, body = request.path.strip("/").split("/")[1:], request.body if isinstance(request.body, dict) else {}
        with self.lock:
            try:
                return Reply(200, self._act(request.method, parts, body, request.query, merchant))
            except Refused as refusal:
                return Reply(404 if refusal.reason == "not_found" else 422, {"error": refusal.reason})

    def _act(self, method: str, parts: list[str], body: dict[str, Any], query: dict[str, str], merchant: str) -> Any:
        if parts == ["transactions"] and method == "GET":
            kind = {"sale": "payment", "refund": "refund"}.get(query.get("type", ""))
            found = [t for t in self.ledger if t.merchant == merchant and query.get("order_id") in (None, t.order_id)
                     and kind in (None, t.kind)]
            return {"data": [self.show(t) for t in found]}
        if parts == ["transactions"] and method == "POST":
            number = str(dig(body, "card").get("number"))
            status = kit.DECLINED if number in DECLINES else kit.APPROVED
            txn = self.ledger.pay(merchant, parse_amount(body["amount"]), body["currency"], body["order_id"],
                                  card=number, status=status, answer=DECLINES.get(number))
            return self.show(txn)
        txn = self.ledger.find(merchant, parts[1])
        if parts[2:] == ["void"]:
            return self.show(self.ledger.void(merchant, txn.id)[0])
        if parts[2:] == ["refund"]:
            amount = parse_amount(body["amount"]) if "amount" in body else None
            return self.show(self.ledger.refund(merchant, txn.id, amount, body.get("order_id")))
        return self.show(txn)

    def show(self, txn: Txn) -> dict[str, Any]:
        code, message = txn.data.get("answer") or ("approved", "Approved")
        return {"id": txn.id, "type": "sale" if txn.kind == "payment" else "refund", "status": txn.status,
                "amount": str(txn.amount), "currency": txn.currency, "settled": txn.settled,
                "refunded": str(txn.refunded), "code": code, "message": message}


PROFILE = Profile(
    start=lambda: AcmeFake({"acme_key_one": "m1"}),
    credentials={"apiKey": "acme_key_one"},
    wrong_credentials={"apiKey": "acme_key_revoked"},
    approving=TestCard("4242424242424242"),
    approved={"statusCode": "approved", "responseMessage": "Approved"},
    declining=TestCard("4000000000000002"),
    declined={"statusCode": "do_not_honor", "errorCode": "declined", "responseMessage": "Do not honor"},
    sale="POST /v1/transactions$",
)
'''

SALE = '''
import json, sys
import azure.functions as func
from tests.fakes.acme import PROFILE

with PROFILE.start() as fake:
    import os
    os.environ["ACME_URL"] = fake.base_url
    from ProcessPayment import main
    body = {"gatewayTypeId": 4711, "gatewayTypeName": "Acme", "merchantAccountId": 5001, "account": "4242424242424242",
            "expDate": "1239", "cvv2": "987", "amount": 25.00, "currencyType": 840, "userId": 42}
    meta = {"transactionId": "6f1c2a0e-3b7e-4f7a-9d55-1a2b3c4d5e6f", "universityId": 7, "userId": 42}
    request = func.HttpRequest(method="POST", url="http://localhost/paymentGateway/processPayment",
                               headers={"BVMeta": json.dumps(meta)}, body=json.dumps(body).encode())
    response = main(request)
    charges = [(t.id, str(t.amount), t.order_id) for t in fake.ledger.live_payments()]
    print(json.dumps({"status": response.status_code, "body": json.loads(response.get_body()), "charges": charges}))
'''


def registry_tests(copy: Path) -> list[str]:
    """The test modules that take every registered gateway (they read the registry): the conformance
    suite, the names test, the migrations' tests... A new gateway must pass them unedited, so none of
    them may list the gateways."""
    reads_registry = re.compile(r"gateway_types\(\)|url_settings\(\)")
    return sorted(
        path.relative_to(copy).as_posix() for path in (copy / "tests").rglob("test_*.py")
        if reads_registry.search(path.read_text(encoding="utf-8")) and path.name != Path(__file__).name
    )


def wire_modules() -> set[str]:
    """The module names of the gateways the conformance suite runs, the dropped-in one with them."""
    return {cls.__module__.rsplit(".", 1)[-1] for cls in gateway_types().values() if cls.url_setting} | {"acme"}


def tracked_files() -> list[str]:
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=30)
    return [name for name in listing.stdout.decode().split("\0") if name and (REPO / name).is_file()]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(copy: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "ACME"))}
    return subprocess.run([sys.executable, *args], cwd=copy, env={**clean, **(env or {})}, capture_output=True,
                          text=True, timeout=180)


def test_a_gateway_file_and_its_fake_are_all_a_new_gateway_needs(tmp_path: Path) -> None:
    copy = tmp_path / "tree"
    files = tracked_files()
    for name in files:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, copy / name)
    before = {name: digest(copy / name) for name in files}
    (copy / "gateways" / "acme.py").write_text(GATEWAY, encoding="utf-8")
    (copy / "tests" / "fakes" / "acme.py").write_text(FAKE, encoding="utf-8")
    (tmp_path / "credentials.json").write_text(json.dumps(
        {"5001": {"gatewayTypeId": 4711, "credentials": {"apiKey": "acme_key_one"}}}), encoding="utf-8")

    sold = run(copy, "-c", SALE, env={"LOCAL_CREDENTIALS_FILE": str(tmp_path / "credentials.json"),
                                      "IDEMPOTENCY_SQLITE_PATH": str(tmp_path / "idempotency.sqlite")})
    assert sold.returncode == 0, sold.stderr[-3000:]
    answer = json.loads(sold.stdout.strip().splitlines()[-1])
    assert answer["status"] == 200 and answer["body"]["detail"]["success"] is True, answer
    [(charge_id, amount, _)] = answer["charges"]
    assert (answer["body"]["detail"]["paymentTransactionId"], amount) == (charge_id, "25.00")

    listed = run(copy, "-m", "tools.migrations")
    script = copy / "infra" / "sql" / "V4711__gateway_type_acme.sql"
    assert listed.returncode == 0 and script.is_file(), listed.stdout + listed.stderr
    assert "N'Acme'" in script.read_text(encoding="utf-8") and "N'API key'" in script.read_text(encoding="utf-8")
    assert run(copy, "-m", "tools.migrations", "--check").returncode == 0

    suite = run(copy, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", *registry_tests(copy))
    assert suite.returncode == 0, suite.stdout[-5000:]
    assert re.findall(r"^(?:SKIPPED \[\d+\]|XFAIL|XPASS|FAILED|ERROR) tests/.*$", suite.stdout, re.M) == []
    passed = r"^PASSED tests/conformance/test_conformance\.py::(\w+)\[([a-z0-9_]+)(.*)\]$"
    ran = re.findall(passed, suite.stdout, re.M)
    cases = {gateway: {(test, rest) for test, name, rest in ran if name == gateway} for gateway in wire_modules()}
    assert {name for _, name, _ in ran} == set(cases), "the suite ran every gateway with a URL, the new one too"
    assert cases["acme"] and all(found == cases["acme"] for found in cases.values()), \
        "every conformance case ran and passed for each gateway"

    ruff = [str(Path(sys.executable).parent / "ruff"), "check", "--no-cache", "gateways/acme.py", "tests/fakes/acme.py"]
    linted = subprocess.run(ruff, cwd=copy, capture_output=True, text=True, timeout=60)
    assert linted.returncode == 0, linted.stdout

    assert {name: digest(copy / name) for name in files} == before, "a tracked file changed"
    new = {str(path.relative_to(copy)) for path in copy.rglob("*") if path.is_file()} - set(files)
    assert {name for name in new if "__pycache__" not in name and not name.startswith(".data/")} == {
        "gateways/acme.py", "tests/fakes/acme.py", "infra/sql/V4711__gateway_type_acme.sql"}
