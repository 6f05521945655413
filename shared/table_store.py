"""Idempotency records in Azure Table storage: the store every instance of the app shares.

The atomic claim is `create_entity`, which fails with 409 EntityAlreadyExists when the key exists;
every later change is conditional on the entity's ETag. Uses the app's own storage account: a
connection string locally (Azurite), or `AzureWebJobsStorage__tableServiceUri` with the app's
managed identity in Azure (shared keys are off there).
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
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared.idempotency import Record, State, encode_json

if TYPE_CHECKING:
    from shared.settings import Settings


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
            service = TableServiceClient.from_connection_string(settings.storage_connection_string)
        else:
            from azure.identity import DefaultAzureCredential

            service = TableServiceClient(
                endpoint=settings.storage_table_service_uri, credential=DefaultAzureCredential()
            )
        return cls(service.get_table_client(settings.idempotency_table_name))

    def _client(self) -> TableClient:
        # Constructors do no I/O; the table is created on first use.
        if not self._ready:
            with self._ready_lock:
                if not self._ready:
                    with contextlib.suppress(ResourceExistsError):
                        self._table.create_table()
                    self._ready = True
        return self._table

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
        table = self._client()
        try:
            metadata = table.create_entity(self._entity(record))
        except ResourceExistsError:
            existing = self.get(record.scope)
            if existing is None:  # released between our insert and our read: claim again
                return self.claim(record)
            return False, existing
        return True, replace(record, version=metadata["etag"])

    def transition(self, current: Record, **changes: Any) -> Record | None:
        updated = replace(current, **{"updated_at": self._clock(), **changes})
        try:
            metadata = self._client().update_entity(
                self._entity(updated),
                mode=UpdateMode.REPLACE,
                etag=current.version,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return None
        return replace(updated, version=metadata["etag"])

    def release(self, current: Record) -> None:
        self._delete(current)

    def _delete(self, current: Record) -> bool:
        """Delete `current` if nobody changed it since it was read; whether it was deleted."""
        partition, row = _keys(current.scope)
        try:
            self._client().delete_entity(
                partition, row, etag=current.version, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    def get(self, scope: str) -> Record | None:
        partition, row = _keys(scope)
        try:
            return self._record(self._client().get_entity(partition, row))
        except ResourceNotFoundError:
            return None

    def in_state(self, state: State, updated_before: float) -> Iterator[Record]:
        entities = self._client().query_entities(
            "state eq @state and updated_at lt @before",
            parameters={"state": state.value, "before": float(updated_before)},
        )
        return (self._record(entity) for entity in entities)

    def purge(self, updated_before: float) -> int:
        # Every state: a record nobody touched for the whole retention is finished with, and an
        # unknown one has long been escalated (needs_attention, with its audit line) by then.
        entities = self._client().query_entities("updated_at lt @before", parameters={"before": float(updated_before)})
        # Conditional deletes: a record changed since the query is no longer old and stays.
        return sum(self._delete(self._record(entity)) for entity in list(entities))
