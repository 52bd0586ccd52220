"""The state service: durable scoped key/value with a change stream (``org.plantd.State``).

- :class:`Store`: the SQLite file, one writer thread with group commit (in-process use);
- :class:`StateService`, :func:`open_store`: the service in a process (``plantd-state``);
- :class:`StateClient`: call the service from asyncio code (writes carry request ids);
- :class:`Replica`, :class:`ReplicaState`: a local copy that follows the change stream;
- :class:`Limits`, :class:`StateError` and its :data:`ERROR_CODES`;
- :class:`StateDamaged`: the database is damaged or misses acknowledged changes (``_integrity``).

``docs/state.md`` documents the data model, every operation, the durability guarantees and the
change-stream format.
"""

from __future__ import annotations

from plantd.state._client import StateClient, new_request_id, snapshot_from_parts
from plantd.state._errors import ERROR_CODES, StateDamaged, StateError
from plantd.state._limits import MAX_SCOPE_CHARS, Limits
from plantd.state._model import ChangeEvent, Entry, ScopeSnapshot, Snapshot, topic_for
from plantd.state._replica import Changed, Outcome, Replica, ReplicaState, Resynced, Update
from plantd.state._server import StateService, open_store
from plantd.state._service import SERVICE_NAME, build_definition
from plantd.state._store import Store, StoreStats
from plantd.state._writes import CreateScope, Delete, DeleteScope, Set, Write

__all__ = [
    "ERROR_CODES",
    "MAX_SCOPE_CHARS",
    "SERVICE_NAME",
    "ChangeEvent",
    "Changed",
    "CreateScope",
    "Delete",
    "DeleteScope",
    "Entry",
    "Limits",
    "Outcome",
    "Replica",
    "ReplicaState",
    "Resynced",
    "ScopeSnapshot",
    "Set",
    "Snapshot",
    "StateClient",
    "StateDamaged",
    "StateError",
    "StateService",
    "Store",
    "StoreStats",
    "Update",
    "Write",
    "build_definition",
    "new_request_id",
    "open_store",
    "snapshot_from_parts",
    "topic_for",
]
