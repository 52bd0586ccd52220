"""Writes, and how each one changes the database inside the writer's open transaction.

A :class:`Write` is what a client asked for, already validated (see ``_limits``): one or more
operations, all or nothing, with an optional ``request_id``. :class:`Transaction` applies writes
one after another inside the transaction the writer thread holds open for a group commit; it
numbers every change with the next global revision and returns the result the client will get
and the change events to publish once the commit is on disk. A write that is refused raises
:class:`StateError` before or while it changes anything; the writer rolls it back to its
savepoint, so it leaves no trace and takes no revision.

Idempotency: a write with a ``request_id`` records ``(request_id, fingerprint, result)`` in the
same transaction as its changes. A later write with the same id gets the recorded result back
and changes nothing; with the same id but a different fingerprint (other params) it is refused.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass

from plantd.service import Json
from plantd.state._errors import StateError
from plantd.state._model import ChangeEvent

__all__ = [
    "CreateScope",
    "Delete",
    "DeleteScope",
    "Set",
    "Transaction",
    "Write",
    "WriteOp",
    "fingerprint",
]


@dataclass(frozen=True, slots=True)
class Set:
    scope: str
    key: str
    value: Json  # as the client sent it (published as is)
    value_json: str  # compact JSON text, as stored
    if_revision: int | None = None  # compare-and-set: 0 means "must not exist"


@dataclass(frozen=True, slots=True)
class Delete:
    scope: str
    key: str
    if_revision: int | None = None


@dataclass(frozen=True, slots=True)
class CreateScope:
    scope: str


@dataclass(frozen=True, slots=True)
class DeleteScope:
    scope: str


WriteOp = Set | Delete | CreateScope | DeleteScope


@dataclass(frozen=True, slots=True)
class Write:
    """``operation`` names the service operation; ``batch`` answers one result per op."""

    operation: str
    ops: tuple[WriteOp, ...]
    request_id: str | None = None
    fingerprint: str = ""


def fingerprint(operation: str, params: dict[str, Json]) -> str:
    """A digest of what a request asks for (``request_id`` left out), to tell a retry from a
    different request that reuses its id."""
    asked = {k: v for k, v in params.items() if k != "request_id"}
    text = json.dumps([operation, asked], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(errors="surrogatepass"), digest_size=16).hexdigest()


class Transaction:
    """Applies writes inside an open transaction, numbering changes from ``revision``."""

    def __init__(self, conn: sqlite3.Connection, revision: int, now: float) -> None:
        self.conn = conn
        self.revision = revision
        self.now = now
        self.recorded = 0  # request ids recorded (the writer prunes old ones now and then)

    def apply(self, write: Write) -> tuple[Json, list[ChangeEvent]]:
        """The client's result and the events to publish; raises :class:`StateError`."""
        if write.request_id is not None:
            row = self.conn.execute(
                "SELECT fingerprint, result FROM requests WHERE request_id = ?",
                (write.request_id,),
            ).fetchone()
            if row is not None:
                if row[0] != write.fingerprint:
                    raise StateError(
                        "state.request-id-reused",
                        f"request_id {write.request_id!r} was already used for a different "
                        f"request; use a fresh id for a new {write.operation}",
                    )
                return json.loads(row[1]), []
        events: list[ChangeEvent] = []
        result: Json
        if write.operation == "batch":
            results = []
            for index, op in enumerate(write.ops):
                try:
                    results.append(self._one(op, events))
                except StateError as exc:
                    raise StateError(exc.code, f"ops[{index}]: {exc.message}") from None
            result = {"revision": self.revision, "results": results}
        else:
            (op,) = write.ops
            result = self._one(op, events)
        if write.request_id is not None:
            self.conn.execute(
                "INSERT INTO requests (request_id, fingerprint, result, created) "
                "VALUES (?, ?, ?, ?)",
                (write.request_id, write.fingerprint, json.dumps(result), self.now),
            )
            self.recorded += 1
        return result, events

    def _one(self, op: WriteOp, events: list[ChangeEvent]) -> dict[str, Json]:
        if isinstance(op, Set):
            return self._set(op, events)
        if isinstance(op, Delete):
            return self._delete(op, events)
        if isinstance(op, CreateScope):
            return self._create_scope(op, events)
        return self._delete_scope(op, events)

    def _set(self, op: Set, events: list[ChangeEvent]) -> dict[str, Json]:
        self._require_scope(op.scope)
        row = self.conn.execute(
            "SELECT revision, version FROM entries WHERE scope = ? AND key = ?",
            (op.scope, op.key),
        ).fetchone()
        self._compare(op.scope, op.key, op.if_revision, row[0] if row else 0)
        revision, prev = self._next(op.scope)
        if row is None:
            version = 1
            self.conn.execute(
                "INSERT INTO entries (scope, key, value, revision, version, created_revision) "
                "VALUES (?, ?, ?, ?, 1, ?)",
                (op.scope, op.key, op.value_json, revision, revision),
            )
        else:
            version = row[1] + 1
            self.conn.execute(
                "UPDATE entries SET value = ?, revision = ?, version = ? "
                "WHERE scope = ? AND key = ?",
                (op.value_json, revision, version, op.scope, op.key),
            )
        events.append(ChangeEvent("set", op.scope, op.key, revision, prev, op.value, version))
        return {"scope": op.scope, "key": op.key, "revision": revision, "version": version}

    def _delete(self, op: Delete, events: list[ChangeEvent]) -> dict[str, Json]:
        self._require_scope(op.scope)
        row = self.conn.execute(
            "SELECT revision, version FROM entries WHERE scope = ? AND key = ?",
            (op.scope, op.key),
        ).fetchone()
        if row is None:
            raise StateError("state.unknown-key", f"scope {op.scope!r} has no key {op.key!r}")
        self._compare(op.scope, op.key, op.if_revision, row[0])
        revision, prev = self._next(op.scope)
        self.conn.execute("DELETE FROM entries WHERE scope = ? AND key = ?", (op.scope, op.key))
        events.append(ChangeEvent("delete", op.scope, op.key, revision, prev, version=row[1]))
        return {"scope": op.scope, "key": op.key, "revision": revision}

    def _create_scope(self, op: CreateScope, events: list[ChangeEvent]) -> dict[str, Json]:
        if self._scope_exists(op.scope):
            last = self._scope_revision(op.scope)
            return {"scope": op.scope, "created": False, "revision": last}
        revision, prev = self._next(op.scope)
        self.conn.execute(
            "INSERT INTO scopes (name, created_revision) VALUES (?, ?)", (op.scope, revision)
        )
        events.append(ChangeEvent("create-scope", op.scope, "", revision, prev))
        return {"scope": op.scope, "created": True, "revision": revision}

    def _delete_scope(self, op: DeleteScope, events: list[ChangeEvent]) -> dict[str, Json]:
        self._require_scope(op.scope)
        (keys,) = self.conn.execute(
            "SELECT count(*) FROM entries WHERE scope = ?", (op.scope,)
        ).fetchone()
        revision, prev = self._next(op.scope)
        self.conn.execute("DELETE FROM entries WHERE scope = ?", (op.scope,))
        self.conn.execute("DELETE FROM scopes WHERE name = ?", (op.scope,))
        events.append(ChangeEvent("delete-scope", op.scope, "", revision, prev, keys=keys))
        return {"scope": op.scope, "revision": revision, "keys": keys}

    def _next(self, scope: str) -> tuple[int, int]:
        """The next global revision, and the previous one that touched ``scope``."""
        prev = self._scope_revision(scope)
        self.revision += 1
        self.conn.execute(
            "INSERT INTO scope_revisions (name, revision) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET revision = excluded.revision",
            (scope, self.revision),
        )
        return self.revision, prev

    def _scope_revision(self, scope: str) -> int:
        row = self.conn.execute(
            "SELECT revision FROM scope_revisions WHERE name = ?", (scope,)
        ).fetchone()
        return int(row[0]) if row else 0

    def _scope_exists(self, scope: str) -> bool:
        found = self.conn.execute("SELECT 1 FROM scopes WHERE name = ?", (scope,)).fetchone()
        return found is not None

    def _require_scope(self, scope: str) -> None:
        if not self._scope_exists(scope):
            raise StateError(
                "state.unknown-scope", f"no scope {scope!r} (create it with create-scope)"
            )

    @staticmethod
    def _compare(scope: str, key: str, expected: int | None, current: int) -> None:
        if expected is None or expected == current:
            return
        if current == 0:
            found = "does not exist"
        elif expected == 0:
            found = f"already exists (revision {current}); if_revision 0 means it must not"
        else:
            found = f"has revision {current}"
        raise StateError(
            "state.conflict",
            f"key {key!r} in scope {scope!r} {found}, not the expected revision {expected}"
            if expected != 0
            else f"key {key!r} in scope {scope!r} {found}",
        )
