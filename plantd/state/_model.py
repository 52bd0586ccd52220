"""The values the state service deals in: entries, change events, snapshots.

Revisions: every committed change (a set, a delete, a scope created or deleted) takes the next
global revision, 1, 2, 3… with no holes. A key's ``revision`` is the global revision of its last
change (what compare-and-set compares); its ``version`` counts its sets since it was created.
A scope's ``revision`` is the last global revision that touched it.

A change event is what the service publishes on the bus after each commit, one per revision, on
topic ``state.<scope>.<key>`` (``state.<scope>.`` for a scope's own creation or deletion), as a
bus record (see docs/state.md for the field list). ``prev`` is the revision of the previous
change to the same scope (0 if none), so a subscriber filtered to one scope sees a hole in that
chain as surely as a subscriber of everything sees a hole in the revisions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from plantd.service import Json

__all__ = [
    "ChangeEvent",
    "Entry",
    "Op",
    "ScopeSnapshot",
    "Snapshot",
    "canonical_json",
    "topic_for",
]

Op = Literal["set", "delete", "create-scope", "delete-scope"]
_OPS: frozenset[str] = frozenset(("set", "delete", "create-scope", "delete-scope"))


def topic_for(scope: str, key: str = "") -> str:
    """``state.<scope>.<key>``; a scope's own events have an empty key (``state.<scope>.``)."""
    return f"state.{scope}.{key}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One key's value and bookkeeping."""

    value: Json
    revision: int
    version: int

    def as_json(self) -> dict[str, Json]:
        return {"value": self.value, "revision": self.revision, "version": self.version}


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One committed change, as published on the bus."""

    op: Op
    scope: str
    key: str
    revision: int
    prev: int
    value: Json = None
    version: int = 0
    keys: int = 0  # delete-scope: how many keys went with the scope

    @property
    def topic(self) -> str:
        return topic_for(self.scope, self.key)

    def to_record(self) -> dict[str, Json]:
        fields: dict[str, Json] = {
            "op": self.op,
            "scope": self.scope,
            "key": self.key,
            "revision": self.revision,
            "prev": self.prev,
        }
        if self.op == "set":
            fields["value"] = self.value
            fields["version"] = self.version
        elif self.op == "delete":
            fields["version"] = self.version
        elif self.op == "delete-scope":
            fields["keys"] = self.keys
        return fields

    @classmethod
    def from_record(cls, fields: dict[str, Any]) -> ChangeEvent:
        """Read a bus record; ``ValueError`` names the field that is wrong."""
        op = fields.get("op")
        if op not in _OPS:
            raise ValueError(f"unknown op {op!r}")
        for name in ("scope", "key"):
            if not isinstance(fields.get(name), str):
                raise ValueError(f"{name!r} is not text")
        for name in ("revision", "prev", "version", "keys"):
            value = fields.get(name, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name!r} is not a revision number")
        if op == "set" and "value" not in fields:
            raise ValueError("a set has no 'value'")
        return cls(
            cast(Op, op),
            fields["scope"],
            fields["key"],
            fields["revision"],
            fields["prev"],
            fields.get("value"),
            fields.get("version", 0),
            fields.get("keys", 0),
        )


@dataclass(slots=True)
class ScopeSnapshot:
    """A scope as a snapshot (or a replica) holds it. ``exists`` is False for a scope that was
    asked for by name and does not exist; its ``revision`` then continues the chain."""

    exists: bool
    revision: int
    entries: dict[str, Entry] = field(default_factory=dict)

    def as_json(self) -> dict[str, Json]:
        return {
            "exists": self.exists,
            "revision": self.revision,
            "keys": {key: entry.as_json() for key, entry in self.entries.items()},
        }


@dataclass(slots=True)
class Snapshot:
    """Scopes as of global revision ``revision``: one named scope, or every scope that exists."""

    revision: int
    scopes: dict[str, ScopeSnapshot] = field(default_factory=dict)

    def canonical(self) -> bytes:
        """A byte string equal for equal contents, whatever the order things arrived in."""
        return canonical_json(self.scopes)

    def keys(self) -> int:
        return sum(len(scope.entries) for scope in self.scopes.values())


def canonical_json(scopes: dict[str, ScopeSnapshot]) -> bytes:
    data = {name: scope.as_json() for name, scope in scopes.items()}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode()
