"""Operator CLI for the idempotency records reconciliation could not settle (ops; never deployed).

    python -m tools.reconcile COMMAND
    (the store comes from the same settings as the service: IDEMPOTENCY_STORE=table with
    AzureWebJobsStorage__tableServiceUri and IDEMPOTENCY_TABLE_NAME, signed in with
    DefaultAzureCredential, e.g. `az login`, which needs Storage Table Data Contributor on the
    account; or the local SQLite file)

    list [--state needs_attention|unknown|in_progress|completed]
        Records in that state (default needs_attention), oldest first: scope, operation, merchant
        account, order id, attempts, last change and the last reason.
    show SCOPE
        One record: state, what reconciliation needs (never card data), its progress, the stored answer.
    retry SCOPE
        Back to `unknown` with its attempts reset: the next ReconcileUnknown run tries again. For
        after the cause is fixed (credentials rotated, the gateway back). A reversal already asked
        for stays recorded, so it is looked up before anything is done again.
    resolve SCOPE (--voided | --refunded REFUND_ID | --nothing-charged | --nothing-refunded)
            [--payment-id ID]
        Record what the operator settled at the gateway's portal. A payment: --voided or
        --refunded store the answer a retry gets (`voided_by_reconciliation`,
        `refunded_by_reconciliation`; --payment-id names the reversed charge when the record does not
        know it); --nothing-charged forgets the key, so a retry charges afresh. A refund: --refunded
        stores the refund's success; --nothing-refunded forgets the key, so a retry refunds afresh.

A scope is `operation:merchantAccountId:key` (the key is the request's Idempotency-Key, or BVMeta's
transactionId), as `list` and the ERROR audit line of the escalation print it. Only a record in
`needs_attention` can be retried or resolved: any other is still someone else's to settle.

Exit codes: 0 done, 1 refused (no such record, not in needs_attention, a missing --payment-id, an
option that does not fit the operation), 2 error (bad settings, the store unreachable, usage).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from gateways.base import GatewayResult
from shared.idempotency import IdempotencyStore, Record, State
from shared.reconcile import Decision, refund_found_answer, reversal_answer
from shared.runtime import build_idempotency
from shared.settings import Settings, SettingsError

OK, REFUSED, ERROR = 0, 1, 2
OPERATOR = "an operator"


class Refused(Exception):
    """The operator's request is refused (exit 1)."""


def timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def command_list(store: IdempotencyStore, state: State) -> int:
    records = sorted(store.in_state(state, time.time() + 1), key=lambda r: r.updated_at)
    for record in records:
        context, progress = record.context, record.reconciliation
        print(
            f"{record.scope}\t{context.get('operation')}\taccount {context.get('merchantAccountId')}"
            f"\torder {context.get('orderId')}\tattempts {progress.get('attempts', 0)}"
            f"\tchanged {timestamp(record.updated_at)}\t{progress.get('reason') or ''}"
        )
    print(f"{len(records)} record(s) in {state.value}", file=sys.stderr)
    return OK


def command_show(record: Record) -> int:
    shown: dict[str, Any] = {
        "scope": record.scope,
        "state": record.state.value,
        "created": timestamp(record.created_at),
        "changed": timestamp(record.updated_at),
        "context": record.context,
        "reconciliation": record.reconciliation,
        "status": record.status,
        "answer": json.loads(record.body) if record.body else None,
    }
    print(json.dumps(shown, indent=2, sort_keys=False))
    return OK


def needing_attention(store: IdempotencyStore, scope: str) -> Record:
    record = store.get(scope)
    if record is None:
        raise Refused(f"no record {scope}")
    if record.state is not State.NEEDS_ATTENTION:
        raise Refused(f"{scope} is {record.state.value}, not needs_attention: it is not the operator's to settle")
    return record


def command_retry(store: IdempotencyStore, record: Record) -> int:
    progress = {**record.reconciliation, "attempts": 0, "retriedByOperatorAt": timestamp(time.time())}
    if store.transition(record, state=State.UNKNOWN, status=None, body=None, reconciliation=progress) is None:
        raise Refused(f"{record.scope} changed while this ran; look again")
    print(f"{record.scope} is unknown again; the next ReconcileUnknown run tries it")
    return OK


def command_resolve(store: IdempotencyStore, record: Record, args: argparse.Namespace) -> int:
    operation = record.context.get("operation")
    merchant = int(record.context["merchantAccountId"])
    progress = {**record.reconciliation, "resolvedByOperatorAt": timestamp(time.time())}
    if args.nothing_charged or args.nothing_refunded:
        if args.nothing_charged != (operation == "payment"):
            fitting = "--nothing-charged" if operation == "payment" else "--nothing-refunded"
            raise Refused(f"{record.scope} is a {operation}: use {fitting}")
        store.release(record)
        print(f"{record.scope} forgotten: a retry with its key starts afresh")
        return OK
    if operation == "refund":
        if args.voided:
            raise Refused(f"{record.scope} is a refund: use --refunded REFUND_ID or --nothing-refunded")
        found = GatewayResult(args.refunded, "refund", "resolved", "refund confirmed by an operator", None)
        answer = refund_found_answer(found, merchant, who=OPERATOR)
    else:
        payment_id = args.payment_id or record.reconciliation.get("paymentId")
        if not payment_id:
            raise Refused(f"{record.scope} does not know the charge's id: pass --payment-id")
        decision = Decision.VOIDED if args.voided else Decision.REFUNDED
        answer = reversal_answer(decision, merchant, str(payment_id), args.refunded, who=OPERATOR)
    saved = store.transition(
        record, state=State.COMPLETED, status=answer.status, body=answer.body, reconciliation=progress
    )
    if saved is None:
        raise Refused(f"{record.scope} changed while this ran; look again")
    print(f"{record.scope} completed: a retry gets {answer.status} {answer.detail.statusCode}")
    return OK


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m tools.reconcile",
        description="Idempotency records reconciliation could not settle: list, show, retry, resolve.",
    )
    commands = cli.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="records in a state (default needs_attention)")
    listing.add_argument("--state", type=State, default=State.NEEDS_ATTENTION, choices=list(State))
    for name, text in (("show", "one record"), ("retry", "let reconciliation try again")):
        commands.add_parser(name, help=text).add_argument("scope", metavar="SCOPE")
    resolve = commands.add_parser("resolve", help="record what was settled by hand")
    resolve.add_argument("scope", metavar="SCOPE")
    outcome = resolve.add_mutually_exclusive_group(required=True)
    outcome.add_argument("--voided", action="store_true", help="the charge was voided")
    outcome.add_argument("--refunded", metavar="REFUND_ID", help="the charge (or the refund) was refunded")
    outcome.add_argument("--nothing-charged", action="store_true", help="no charge exists")
    outcome.add_argument("--nothing-refunded", action="store_true", help="no refund exists")
    resolve.add_argument("--payment-id", metavar="ID", help="the reversed charge's id, if the record lacks it")
    return cli


def main(argv: Sequence[str] | None = None, *, store: IdempotencyStore | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:
        return OK if exit_.code in (0, None) else ERROR
    try:
        store = store or build_idempotency(Settings.from_env())
        if args.command == "list":
            return command_list(store, args.state)
        record = store.get(args.scope) if args.command == "show" else needing_attention(store, args.scope)
        if record is None:
            raise Refused(f"no record {args.scope}")
        if args.command == "show":
            return command_show(record)
        if args.command == "retry":
            return command_retry(store, record)
        return command_resolve(store, record, args)
    except Refused as error:
        print(f"refused: {error}", file=sys.stderr)
        return REFUSED
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return ERROR
    except Exception as error:  # noqa: BLE001 - the store's own errors (Azure, SQLite) for the operator
        print(f"error: the idempotency store failed ({type(error).__name__}): {error}", file=sys.stderr)
        return ERROR


if __name__ == "__main__":
    sys.exit(main())
