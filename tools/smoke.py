"""Smoke test any deployment of the payment gateway over HTTP: devhost, `func start`, a container, Azure.

    python -m tools.smoke --url URL [--key KEY] --merchant ID [--gateway-type ID] [--allow-live]
    python -m tools.smoke --url URL [--key KEY] --merchant ID --no-charge

The function key may also come from the environment variable SMOKE_FUNCTION_KEY (it then stays out
of the shell history and the process list); it is sent as `x-functions-key` and never printed.

Full run, in this order (nothing that moves money runs before the checks that cannot):
    health               GET /health (anonymous): 200, every check ok
    no key               401 without a function key (only when a key is given)
    bad BVMeta           400 "Incomplete request"
    bad body             422 with an `errors` list
    decline              400, success false, for the gateway's decline test card
    payment              200, success true, a paymentTransactionId, BVMeta echoed
    payment replay       the same transactionId again: the identical answer, `Idempotent-Replayed: true`
    full refund          200, success true (a void before settlement, else a refund)
    refund replay        the identical answer again, replayed
--no-charge runs the first four and `unknown refund`: a refund of a payment id that does not exist,
which must answer 404 (not found). That one loads the merchant's credentials, the
idempotency store and its HMAC key, and asks the gateway, yet moves no money.

Which accounts it will charge: the simulator (gateway type 900, the default) only ever reaches the
service's built-in simulator, and the service refuses a request whose gateway type differs from the
merchant account's before any gateway call, so a full run with type 900 against a real merchant
account charges nothing and fails with `gateway_type_mismatch`. Any other gateway type is a real
gateway, and this tool cannot tell a sandbox account from a live one: it refuses a full run against
one unless `--allow-live` is given. It then charges `--amount` (1.00) with that gateway's published
test card and refunds it at once. `--no-charge` needs no such flag.

Prints one row per check and exits 0 when every check passed, 1 when one failed or could not run,
2 when it refused to run, the arguments are wrong, or the service says the merchant account is not
of the gateway type given (retrying cannot fix any of these). Uses only `requests`, the standard library
and the gateways' own declarations (`gateways/`: each names its published test cards), so it runs from
a checkout on any machine that can reach the deployment.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, TextIO

import requests

from gateways.base import SandboxCards
from gateways.registry import gateway_type as registered_gateway
from gateways.registry import gateway_types

PASSED, FAILED, REFUSED = 0, 1, 2
SIMULATOR_TYPE_ID = 900
PAYMENT_PATH = "/paymentGateway/processPayment"
REFUND_PATH = "/paymentGateway/processRefund"
HEALTH_PATH = "/health"
KEY_ENV = "SMOKE_FUNCTION_KEY"
REPLAYED_HEADER = "Idempotent-Replayed"
WRONG_MERCHANT_CODES = frozenset({"gateway_type_mismatch", "unknown_gateway_type"})


def sandbox_cards(gateway_type: int) -> tuple[str, SandboxCards] | None:
    """The name and published test cards of the registered gateway `gateway_type`, if it declares some."""
    cls = registered_gateway(gateway_type)
    if cls is None or cls.sandbox_cards is None:
        return None
    return cls.name, cls.sandbox_cards


@dataclass
class Check:
    name: str
    expected: str
    passed: bool | None = None
    """None: not run, because a check it depends on failed."""
    detail: str = ""

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "NOT RUN"}[self.passed]


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: requests.structures.CaseInsensitiveDict[str]

    @property
    def detail(self) -> dict[str, Any]:
        detail = self.body.get("detail") if isinstance(self.body, dict) else None
        return detail if isinstance(detail, dict) else {}

    def summary(self) -> str:
        parts = [str(self.status)]
        for key in ("statusCode", "responseDetail"):
            value = self.detail.get(key)
            if value not in (None, ""):
                parts.append(str(value)[:60])
        return " ".join(parts)


class NoAnswer(Exception):
    """The deployment did not answer (connection refused, timeout, TLS); the message is printable."""


class Client:
    def __init__(self, base_url: str, key: str | None, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.timeout = timeout
        self.session = requests.Session()

    def send(self, method: str, path: str, body: bytes, meta: str | None, *, with_key: bool = True) -> Answer:
        headers = {"Content-Type": "application/json"}
        if meta is not None:
            headers["BVMeta"] = meta
        if with_key and self.key:
            headers["x-functions-key"] = self.key
        try:
            response = self.session.request(method, self.base_url + path, data=body, headers=headers,
                                            timeout=self.timeout)
        except requests.RequestException as error:
            raise NoAnswer(f"no answer: {type(error).__name__}") from None
        try:
            parsed: Any = response.json()
        except ValueError:
            parsed = None
        return Answer(response.status_code, parsed, response.headers)


def new_meta(university_id: int, user_id: int) -> str:
    return json.dumps({"transactionId": str(uuid.uuid4()), "universityId": university_id, "userId": user_id})


def expiry_in_three_years(today: dt.date) -> str:
    return f"12{(today.year + 3) % 100:02d}"


@dataclass(frozen=True)
class Plan:
    merchant: int
    gateway_type: int
    gateway_name: str
    cards: SandboxCards
    amount: Decimal
    university_id: int
    user_id: int

    def payment_body(self, card: str) -> dict[str, Any]:
        return {
            "gatewayTypeId": self.gateway_type,
            "gatewayTypeName": self.gateway_name,
            "merchantAccountId": self.merchant,
            "account": card,
            "expDate": expiry_in_three_years(dt.datetime.now(dt.UTC).date()),
            "cvv2": "123",
            "amount": float(self.amount),
            "currencyType": 840,
            "userId": self.user_id,
            "name": "Smoke Test",
            "comment": "tools.smoke",
        }

    def refund_body(self, payment_id: str, card: str) -> dict[str, Any]:
        return {
            "gatewayTypeId": self.gateway_type,
            "gatewayTypeName": self.gateway_name,
            "merchantAccountId": self.merchant,
            "paymentTransactionId": payment_id,
            "userId": self.user_id,
            "maskedCardNumber": "x" * (len(card) - 4) + card[-4:],
            "comment": "tools.smoke",
        }


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


class WrongMerchant(Exception):
    """The service says the merchant account is not of the gateway type asked for: stop, charge nothing."""

    def __init__(self, message: str, answer: str) -> None:
        super().__init__(message)
        self.answer = answer


class Smoke:
    def __init__(self, client: Client, plan: Plan) -> None:
        self.client = client
        self.plan = plan
        self.checks: list[Check] = []

    def meta(self) -> str:
        return new_meta(self.plan.university_id, self.plan.user_id)

    def record(self, name: str, expected: str, verify: Callable[[], tuple[bool, str]]) -> bool:
        check = Check(name, expected)
        self.checks.append(check)
        try:
            check.passed, check.detail = verify()
        except NoAnswer as error:
            check.passed, check.detail = False, str(error)
        except WrongMerchant as error:
            check.passed, check.detail = False, error.answer
            raise
        return bool(check.passed)

    def not_run(self, name: str, expected: str, reason: str) -> None:
        self.checks.append(Check(name, expected, None, reason))

    def guard_merchant(self, answer: Answer) -> None:
        if answer.detail.get("statusCode") in WRONG_MERCHANT_CODES:
            raise WrongMerchant(
                f"merchant account {self.plan.merchant} is not a gateway type {self.plan.gateway_type} "
                f"({self.plan.gateway_name}) account on this deployment",
                answer.summary(),
            )

    def health(self) -> None:
        def verify() -> tuple[bool, str]:
            answer = self.client.send("GET", HEALTH_PATH, b"", None, with_key=False)
            body = answer.body if isinstance(answer.body, dict) else {}
            raw_checks = body.get("checks")
            checks = raw_checks if isinstance(raw_checks, dict) else {}
            failing = sorted(f"{name}={status}" for name, status in checks.items() if status != "ok")
            ok = answer.status == 200 and body.get("status") == "ok"
            return ok, f"{answer.status} " + (" ".join(failing) if failing else "all checks ok")

        self.record("health", "200 all checks ok", verify)

    def no_key(self) -> None:
        def verify() -> tuple[bool, str]:
            answer = self.client.send("POST", PAYMENT_PATH, encode(self.plan.payment_body(self.plan.cards.approve)),
                                      self.meta(), with_key=False)
            return answer.status == 401, answer.summary()

        self.record("no key", "401", verify)

    def bad_meta(self) -> None:
        def verify() -> tuple[bool, str]:
            answer = self.client.send("POST", PAYMENT_PATH, encode(self.plan.payment_body(self.plan.cards.approve)),
                                      "not json")
            ok = (answer.status == 400 and answer.detail.get("success") is False
                  and answer.detail.get("responseDetail") == "Incomplete request")
            return ok, answer.summary()

        self.record("bad BVMeta", "400 Incomplete request", verify)

    def bad_body(self) -> None:
        def verify() -> tuple[bool, str]:
            body = {**self.plan.payment_body(self.plan.cards.approve), "account": "12", "amount": -1}
            answer = self.client.send("POST", PAYMENT_PATH, encode(body), self.meta())
            errors = answer.detail.get("errors")
            named = sorted({str(e.get("field")) for e in errors if isinstance(e, dict)}) if errors else []
            ok = answer.status == 422 and answer.detail.get("success") is False and bool(named)
            return ok, f"{answer.summary()} fields={','.join(named)}"

        self.record("bad body", "422 with errors", verify)

    def unknown_refund(self) -> None:
        def verify() -> tuple[bool, str]:
            body = self.plan.refund_body(f"smoke-{uuid.uuid4().hex[:16]}", self.plan.cards.approve)
            answer = self.client.send("PATCH", REFUND_PATH, encode(body), self.meta())
            self.guard_merchant(answer)
            ok = answer.status == 404 and answer.detail.get("success") is False
            return ok, answer.summary()

        self.record("unknown refund", "404 not found", verify)

    def decline(self) -> None:
        def verify() -> tuple[bool, str]:
            answer = self.client.send("POST", PAYMENT_PATH, encode(self.plan.payment_body(self.plan.cards.decline)),
                                      self.meta())
            self.guard_merchant(answer)
            return answer.status == 400 and answer.detail.get("success") is False, answer.summary()

        self.record("decline", "400 success false", verify)

    def sale_and_refund(self) -> None:
        card = self.plan.cards.approve
        payment_body = encode(self.plan.payment_body(card))
        payment_meta = self.meta()
        first: list[Answer] = []

        def pay() -> tuple[bool, str]:
            answer = self.client.send("POST", PAYMENT_PATH, payment_body, payment_meta)
            self.guard_merchant(answer)
            first.append(answer)
            echoed = _same_json(answer.headers.get("BVMeta"), payment_meta)
            ok = (answer.status == 200 and answer.detail.get("success") is True
                  and bool(answer.detail.get("paymentTransactionId"))
                  and answer.detail.get("merchantAccountId") == self.plan.merchant
                  and echoed and REPLAYED_HEADER not in answer.headers)
            return ok, answer.summary() + ("" if echoed else " (BVMeta not echoed)")

        if not self.record("payment", "200 success true", pay):
            for name in ("payment replay", "full refund", "refund replay"):
                self.not_run(name, "", "needs a payment")
            return
        self.replay("payment replay", "POST", PAYMENT_PATH, payment_body, payment_meta, first[0])

        payment_id = str(first[0].detail["paymentTransactionId"])
        refund_body = encode(self.plan.refund_body(payment_id, card))
        refund_meta = self.meta()
        refunded: list[Answer] = []

        def refund() -> tuple[bool, str]:
            answer = self.client.send("PATCH", REFUND_PATH, refund_body, refund_meta)
            refunded.append(answer)
            return answer.status == 200 and answer.detail.get("success") is True, answer.summary()

        if not self.record("full refund", "200 success true", refund):
            self.not_run("refund replay", "", "needs a refund")
            return
        self.replay("refund replay", "PATCH", REFUND_PATH, refund_body, refund_meta, refunded[0])

    def replay(self, name: str, method: str, path: str, body: bytes, meta: str, original: Answer) -> None:
        def verify() -> tuple[bool, str]:
            again = self.client.send(method, path, body, meta)
            replayed = again.headers.get(REPLAYED_HEADER, "")
            same = again.status == original.status and again.body == original.body
            detail = f"{again.summary()} {REPLAYED_HEADER}={replayed or '-'}"
            return same and replayed.lower() == "true", detail + ("" if same else " (answer differs)")

        self.record(name, f"identical, {REPLAYED_HEADER}", verify)

    def run(self, *, charge: bool) -> None:
        self.health()
        if self.client.key:
            self.no_key()
        self.bad_meta()
        self.bad_body()
        if not charge:
            self.unknown_refund()
            return
        self.decline()
        self.sale_and_refund()


def _same_json(text: str | None, expected: str) -> bool:
    try:
        return text is not None and json.loads(text) == json.loads(expected)
    except ValueError:
        return False


def print_table(checks: Sequence[Check], out: TextIO) -> None:
    widths = [max(len(c.name) for c in checks), max(len(c.expected) for c in checks), len("NOT RUN")]
    header = f"{'check':<{widths[0]}}  {'expected':<{widths[1]}}  {'result':<{widths[2]}}  detail"
    print(header, file=out)
    print("-" * len(header), file=out)
    for c in checks:
        print(f"{c.name:<{widths[0]}}  {c.expected:<{widths[1]}}  {c.verdict:<{widths[2]}}  {c.detail}", file=out)
    passed = sum(c.passed is True for c in checks)
    failed = len(checks) - passed
    print(f"smoke: {passed} passed, {failed} failed" + ("" if failed else " - all checks passed"), file=out)


def _decimal(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise argparse.ArgumentTypeError("must be a number such as 1.00") from None
    if amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise argparse.ArgumentTypeError("must be positive with at most 2 decimal places")
    return amount


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="base URL, e.g. https://func-api-xyz.azurewebsites.net")
    parser.add_argument("--key", default=os.environ.get(KEY_ENV) or None,
                        help=f"function key (x-functions-key); default: ${KEY_ENV}")
    parser.add_argument("--merchant", required=True, type=int, help="merchantAccountId to use")
    parser.add_argument("--gateway-type", type=int, default=SIMULATOR_TYPE_ID,
                        help=f"the merchant account's gatewayTypeId (default {SIMULATOR_TYPE_ID}, the simulator)")
    parser.add_argument("--allow-live", action="store_true",
                        help="allow a full run (real charges, refunded at once) against a real gateway type")
    parser.add_argument("--no-charge", action="store_true",
                        help="only the checks that cannot move money (safe against production)")
    parser.add_argument("--amount", type=_decimal, default=Decimal("1.00"), help="payment amount (default 1.00)")
    parser.add_argument("--university-id", type=int, default=0, help="BVMeta universityId (default 0)")
    parser.add_argument("--user-id", type=int, default=0, help="BVMeta and body userId (default 0)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default 60)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = parse_args(argv)
    declared = sandbox_cards(args.gateway_type)
    if declared is None:
        known = sorted(t for t, cls in gateway_types().items() if cls.sandbox_cards is not None)
        print(f"smoke: refused: no test cards known for gateway type {args.gateway_type} "
              f"(known: {', '.join(str(t) for t in known)})", file=out)
        return REFUSED
    name, cards = declared
    charge = not args.no_charge
    if charge and args.gateway_type != SIMULATOR_TYPE_ID and not args.allow_live:
        print(f"smoke: refused: gateway type {args.gateway_type} ({name}) is a real gateway, and "
              "this tool cannot tell a sandbox account from a live one. A full run charges "
              f"{args.amount} and refunds it: pass --allow-live to do that, or --no-charge.", file=out)
        return REFUSED
    plan = Plan(args.merchant, args.gateway_type, name, cards, args.amount, args.university_id, args.user_id)
    smoke = Smoke(Client(args.url, args.key, args.timeout), plan)
    mode = "no-charge checks" if not charge else f"full run, {args.amount} charged and refunded"
    print(f"smoke: {smoke.client.base_url} merchant {plan.merchant}, gateway type {plan.gateway_type} "
          f"({name}), {mode}, key {'given' if args.key else 'not given'}", file=out)
    try:
        smoke.run(charge=charge)
    except WrongMerchant as error:
        print_table(smoke.checks, out)
        print(f"smoke: stopped, nothing charged: {error}", file=out)
        return REFUSED
    print_table(smoke.checks, out)
    return PASSED if all(c.passed for c in smoke.checks) else FAILED


if __name__ == "__main__":
    sys.exit(main())
