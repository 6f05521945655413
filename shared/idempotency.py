"""Idempotency records: one per (operation, merchant account, key), shared by every instance.

A record moves `in_progress` -> `completed` (its answer is replayed) or -> `unknown` (the gateway
may have acted; the next retry or the reconciler must find out). The reconciler ends every unknown
record: `completed` with the answer a retry gets, released (nothing happened), or, after
RECONCILE_MAX_ATTEMPTS, `needs_attention` (terminal, for operators; its answer is replayed too).
Every record is deleted once unchanged for the retention, whatever its state. Claims are atomic
inserts and every later transition is conditional on the version read, so two instances can never
both act on one key. Records hold the answer envelope and a keyed fingerprint of the request, never card data
or credentials.

Two stores: Azure Table storage (shared across instances; the app's own storage account) and an
SQLite file for local runs. Nothing in memory pretends to be shared.

Every store call is bounded (timeouts, a bounded retry) to at most `STORE_CALL_SECONDS`, and any
failure to reach or use the store raises `StoreUnavailable`, whatever the store; the flow decides
what the caller is told (before a gateway call: 503, nothing sent; after one: outcome unknown).
"""

from __future__ import annotations

import contextlib
import enum
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

STORE_CALL_SECONDS = 25.0
"""The longest one call to either store may take before it raises `StoreUnavailable`: Table
storage makes at most 3 attempts of 2 s connect + 5 s read with 1 s of back-off (22 s); SQLite
waits 5 s for this process's writers and 5 s for another process's lock (10 s)."""

SQLITE_BUSY_SECONDS = 5.0


class StoreUnavailable(Exception):
    """The store refused, failed or did not answer in time. Whether a write took effect is not
    known. The message names the store and the error type, never a record's content."""


class State(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    UNKNOWN = "unknown"
    NEEDS_ATTENTION = "needs_attention"

    @property
    def final(self) -> bool:
        """Nothing acts on the key any more: a retry gets the stored answer."""
        return self in (State.COMPLETED, State.NEEDS_ATTENTION)


@dataclass(frozen=True)
class Record:
    scope: str
    """operation:merchantAccountId:key, the record's identity."""
    fingerprint: str
    state: State
    created_at: float
    updated_at: float
    status: int | None = None
    body: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    """What reconciliation needs without the request: operation, account, gateway type, order id,
    the BVMeta ids, amount, currency, masked card. Never a card number, CVV or credential."""
    version: str = ""
    """Opaque concurrency token (an ETag, a counter) for conditional updates."""
    reconciliation: dict[str, Any] = field(default_factory=dict)
    """The reconciler's progress: attempts so far, the step it took or is about to take (written
    before the gateway call, so a crash resumes instead of acting twice), and the last reason."""


class IdempotencyStore(Protocol):
    def claim(self, record: Record) -> tuple[bool, Record]:
        """Insert `record` if no record has its scope. Returns (True, inserted) when this caller now
        owns the key, else (False, the existing record)."""
        ...

    def transition(self, current: Record, **changes: Any) -> Record | None:
        """Replace `current` with `changes` (state, status, body, updated_at, reconciliation) applied
        if nobody changed it since it was read; the new record, or None when another instance got
        there first. The scope, fingerprint and context never change after the claim."""
        ...

    def release(self, current: Record) -> None:
        """Forget a record whose request provably did nothing, so a retry starts afresh."""
        ...

    def get(self, scope: str) -> Record | None: ...

    def in_state(self, state: State, updated_before: float) -> Iterator[Record]:
        """Records in `state` last changed before `updated_before` (for the reconciler)."""
        ...

    def purge(self, updated_before: float) -> int:
        """Delete every record, whatever its state, last changed before `updated_before`; returns
        how many."""
        ...


def encode_json(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, default=str)


_COLUMNS = "scope, fingerprint, state, created_at, updated_at, status, body, context, version, reconciliation"
_SELECT = f"SELECT {_COLUMNS} FROM idempotency"  # noqa: S608 - constant column list, no input
_INSERT = f"INSERT OR IGNORE INTO idempotency ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?)"  # noqa: S608


class SqliteIdempotencyStore:
    """For local runs and the devhost: one SQLite file in WAL mode. Each change is one statement
    (INSERT OR IGNORE, UPDATE ... WHERE version = ?), atomic across threads and processes on one
    machine."""

    def __init__(self, path: Path, clock: Any = time.time, busy_seconds: float = SQLITE_BUSY_SECONDS) -> None:
        self._path = path
        self._clock = clock
        self._busy_seconds = busy_seconds
        self._local = threading.local()
        # Threads of this process queue here instead of in SQLite's busy handler, which sleeps in
        # steps of milliseconds when the database is locked.
        self._write_lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        setup = sqlite3.connect(path, timeout=busy_seconds, isolation_level=None)
        try:
            setup.execute("PRAGMA journal_mode=WAL")
            setup.execute(
                "CREATE TABLE IF NOT EXISTS idempotency ("
                " scope TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, state TEXT NOT NULL,"
                " created_at REAL NOT NULL, updated_at REAL NOT NULL, status INTEGER, body TEXT,"
                " context TEXT NOT NULL, version INTEGER NOT NULL, reconciliation TEXT NOT NULL DEFAULT '{}')"
            )
            columns = {row[1] for row in setup.execute("PRAGMA table_info(idempotency)")}
            if "reconciliation" not in columns:  # a file made before the reconciler kept progress
                setup.execute("ALTER TABLE idempotency ADD COLUMN reconciliation TEXT NOT NULL DEFAULT '{}'")
        finally:
            setup.close()

    def _db(self) -> sqlite3.Connection:
        """This thread's connection, in autocommit mode: every statement below is a single atomic
        statement, so no explicit transaction is needed."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self._path, timeout=self._busy_seconds, isolation_level=None)
            # WAL with synchronous=NORMAL survives a crash of the process (not of the machine)
            # without an fsync per commit; this store is for local runs, Azure uses Table storage.
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def _write(self, sql: str, parameters: tuple[Any, ...]) -> sqlite3.Cursor:
        if not self._write_lock.acquire(timeout=self._busy_seconds):
            raise StoreUnavailable("SQLite: this process's writers queued too long")
        try:
            with _sqlite_faults():
                return self._db().execute(sql, parameters)
        finally:
            self._write_lock.release()

    def _read(self, sql: str, parameters: tuple[Any, ...]) -> list[Any]:
        with _sqlite_faults():
            return self._db().execute(sql, parameters).fetchall()

    @staticmethod
    def _row(row: tuple[Any, ...]) -> Record:
        scope, fingerprint, state, created, updated, status, body, context, version, reconciliation = row
        return Record(
            scope, fingerprint, State(state), created, updated, status, body, json.loads(context), str(version),
            json.loads(reconciliation),
        )

    def claim(self, record: Record) -> tuple[bool, Record]:
        # One INSERT OR IGNORE is atomic on its own: whoever inserts first owns the key.
        inserted = self._write(
            _INSERT,
            (
                record.scope, record.fingerprint, record.state.value, record.created_at,
                record.updated_at, record.status, record.body, encode_json(record.context),
                encode_json(record.reconciliation),
            ),
        ).rowcount
        if inserted == 1:
            return True, replace(record, version="1")
        existing = self.get(record.scope)
        if existing is None:  # released between our insert and our read: claim again
            return self.claim(record)
        return False, existing

    def transition(self, current: Record, **changes: Any) -> Record | None:
        updated = replace(current, **{"updated_at": self._clock(), **changes})
        new_version = str(int(current.version) + 1)
        # The scope, fingerprint and context are fixed when the key is claimed.
        cursor = self._write(
            "UPDATE idempotency SET state = ?, updated_at = ?, status = ?, body = ?, reconciliation = ?,"
            " version = ? WHERE scope = ? AND version = ?",
            (
                updated.state.value, updated.updated_at, updated.status, updated.body,
                encode_json(updated.reconciliation), int(new_version), current.scope, int(current.version),
            ),
        )
        if cursor.rowcount != 1:
            return None
        return replace(updated, version=new_version)

    def release(self, current: Record) -> None:
        self._write(
            "DELETE FROM idempotency WHERE scope = ? AND version = ?", (current.scope, int(current.version))
        )

    def get(self, scope: str) -> Record | None:
        rows = self._read(_SELECT + " WHERE scope = ?", (scope,))
        return self._row(rows[0]) if rows else None

    def in_state(self, state: State, updated_before: float) -> Iterator[Record]:
        rows = self._read(_SELECT + " WHERE state = ? AND updated_at < ?", (state.value, updated_before))
        return iter([self._row(row) for row in rows])

    def purge(self, updated_before: float) -> int:
        cursor = self._write("DELETE FROM idempotency WHERE updated_at < ?", (updated_before,))
        return cursor.rowcount


@contextlib.contextmanager
def _sqlite_faults() -> Iterator[None]:
    # A locked, unwritable, full or corrupt database: the store is unavailable, as when Table
    # storage is unreachable. SQLite's text ("database is locked") never holds a bound value.
    try:
        yield
    except sqlite3.Error as error:
        raise StoreUnavailable(f"SQLite: {type(error).__name__}: {error}") from error
