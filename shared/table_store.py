"""Idempotency records in Azure Table storage: the store every instance of the app shares.

The atomic claim is `create_entity`, which fails with 409 EntityAlreadyExists when the key exists;
every later change is conditional on the entity's ETag. Uses the app's own storage account: a
connection string locally (Azurite), or `AzureWebJobsStorage__tableServiceUri` with the app's
managed identity in Azure (shared keys are off there).

Every call is bounded (`CLIENT_OPTIONS`; the SDK's defaults of 300 s timeouts and 10 retries
outlast the platform's 230 s HTTP limit) and every failure to reach the store becomes
`StoreUnavailable`. A table deleted under the running app is created again on the next claim.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared.idempotency import Record, State, StoreUnavailable, encode_json

if TYPE_CHECKING:
    from shared.settings import Settings


CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 5.0
RETRIES = 2
BACKOFF_MAX_SECONDS = 0.5
CLIENT_OPTIONS: dict[str, Any] = {
    "connection_timeout": CONNECT_TIMEOUT_SECONDS,
    "read_timeout": READ_TIMEOUT_SECONDS,
    # A failed connect sent nothing and is retried; a lost answer is retried only for GET, PUT and
    # DELETE (azure-core never resends a POST, so a claim is never inserted twice), and PUT and
    # DELETE carry an If-Match, so a resent one cannot act twice either.
    "retry_total": RETRIES,
    "retry_connect": RETRIES,
    "retry_read": RETRIES,
    # A throttled or failing store (429, 5xx) answers at once: the caller retries after the
    # Retry-After we send, instead of this request sleeping through the store's own Retry-After.
    "retry_status": 0,
    "retry_backoff_factor": 0.2,
    "retry_backoff_max": BACKOFF_MAX_SECONDS,
}


def worst_call_seconds() -> float:
    """The longest one SDK call can take with `CLIENT_OPTIONS` (no back-off before the first retry)."""
    attempts = 1 + RETRIES
    return attempts * (CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS) + (attempts - 2) * BACKOFF_MAX_SECONDS


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    # Only the type: the SDK's message holds the request URL and the store's answer. The store's
    # definite answers (exists, modified, not found) pass through for the caller to interpret.
    try:
        yield
    except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
        raise
    except AzureError as error:
        raise StoreUnavailable(f"Table storage: {type(error).__name__}") from error


def _keys(scope: str) -> tuple[str, str]:
    # Table keys forbid / \ # ? and control characters, and an Idempotency-Key may hold any of
    # them; the operation and account make the partition, a hash of the whole scope the row.
    operation, account, _ = scope.split(":", 2)
    return f"{operation}-{account}", hashlib.sha256(scope.encode()).hexdigest()


class TableIdempotencyStore:
    def __init__(self, table: TableClient, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._clock = clock
        self._ready = False
        self._ready_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> TableIdempotencyStore:
        if settings.storage_connection_string:
            service = TableServiceClient.from_connection_string(settings.storage_connection_string, **CLIENT_OPTIONS)
        else:
            from azure.identity import DefaultAzureCredential

            service = TableServiceClient(
                endpoint=settings.storage_table_service_uri, credential=DefaultAzureCredential(), **CLIENT_OPTIONS
            )
        return cls(service.get_table_client(settings.idempotency_table_name))

    def _client(self) -> TableClient:
        # Constructors do no I/O; the table is created on first use, and again after it vanished.
        if not self._ready:
            with self._ready_lock:
                if not self._ready:
                    with _unavailable(), contextlib.suppress(ResourceExistsError):
                        self._table.create_table()
                    self._ready = True
        return self._table

    def _lost_table(self, error: ResourceNotFoundError, *, certain: bool = False) -> bool:
        """True (and the table is created again on next use) when the table itself is gone:
        `certain` for an insert, which has no entity to miss; else the store's error code says so."""
        if certain or getattr(error, "error_code", None) == "TableNotFound":
            self._ready = False
            return True
        return False

    @staticmethod
    def _entity(record: Record) -> dict[str, Any]:
        partition, row = _keys(record.scope)
        entity: dict[str, Any] = {
            "PartitionKey": partition,
            "RowKey": row,
            "scope": record.scope,
            "fingerprint": record.fingerprint,
            "state": record.state.value,
            "created_at": float(record.created_at),
            "updated_at": float(record.updated_at),
            "context": encode_json(record.context),
        }
        if record.reconciliation:
            entity["reconciliation"] = encode_json(record.reconciliation)
        if record.status is not None:
            entity["status"] = record.status
        if record.body is not None:
            entity["body"] = record.body
        return entity

    @staticmethod
    def _record(entity: Any) -> Record:
        return Record(
            scope=entity["scope"],
            fingerprint=entity["fingerprint"],
            state=State(entity["state"]),
            created_at=float(entity["created_at"]),
            updated_at=float(entity["updated_at"]),
            status=entity.get("status"),
            body=entity.get("body"),
            context=json.loads(entity.get("context") or "{}"),
            version=entity.metadata["etag"],
            reconciliation=json.loads(entity.get("reconciliation") or "{}"),
        )

    def claim(self, record: Record) -> tuple[bool, Record]:
        return self._claim(record, table_recreated=False)

    def _claim(self, record: Record, *, table_recreated: bool) -> tuple[bool, Record]:
        try:
            with _unavailable():
                metadata = self._client().create_entity(self._entity(record))
        except ResourceExistsError:
            existing = self.get(record.scope)
            if existing is None:  # released between our insert and our read: claim again
                return self._claim(record, table_recreated=table_recreated)
            return False, existing
        except ResourceNotFoundError as error:
            if table_recreated or not self._lost_table(error, certain=True):
                raise StoreUnavailable("Table storage: the table is missing") from error
            return self._claim(record, table_recreated=True)
        return True, replace(record, version=metadata["etag"])

    def transition(self, current: Record, **changes: Any) -> Record | None:
        updated = replace(current, **{"updated_at": self._clock(), **changes})
        try:
            with _unavailable():
                metadata = self._client().update_entity(
                    self._entity(updated),
                    mode=UpdateMode.REPLACE,
                    etag=current.version,
                    match_condition=MatchConditions.IfNotModified,
                )
        except ResourceModifiedError:
            return None
        except ResourceNotFoundError as error:
            self._lost_table(error)
            return None
        return replace(updated, version=metadata["etag"])

    def release(self, current: Record) -> None:
        self._delete(current)

    def _delete(self, current: Record) -> bool:
        """Delete `current` if nobody changed it since it was read; whether it was deleted."""
        partition, row = _keys(current.scope)
        try:
            with _unavailable():
                self._client().delete_entity(
                    partition, row, etag=current.version, match_condition=MatchConditions.IfNotModified
                )
        except ResourceModifiedError:
            return False
        except ResourceNotFoundError as error:
            self._lost_table(error)
            return False
        return True

    def get(self, scope: str) -> Record | None:
        partition, row = _keys(scope)
        try:
            with _unavailable():
                return self._record(self._client().get_entity(partition, row))
        except ResourceNotFoundError as error:
            self._lost_table(error)
            return None

    def in_state(self, state: State, updated_before: float) -> Iterator[Record]:
        try:
            with _unavailable():
                entities = self._client().query_entities(
                    "state eq @state and updated_at lt @before",
                    parameters={"state": state.value, "before": float(updated_before)},
                )
                for entity in entities:
                    yield self._record(entity)
        except ResourceNotFoundError as error:
            self._lost_table(error)

    def purge(self, updated_before: float) -> int:
        # Every state: a record nobody touched for the whole retention is finished with, and an
        # unknown one has long been escalated (needs_attention, with its audit line) by then.
        try:
            with _unavailable():
                entities = list(
                    self._client().query_entities("updated_at lt @before", parameters={"before": float(updated_before)})
                )
        except ResourceNotFoundError as error:
            self._lost_table(error)
            return 0
        # Conditional deletes: a record changed since the query is no longer old and stays.
        return sum(self._delete(self._record(entity)) for entity in entities)
