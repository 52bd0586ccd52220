"""Reads: plain functions over a connection, used on the reader's thread (and by the writer for
the revision). Multi-statement reads run in one read transaction, so that what they return is
one consistent state, the one of the global revision they report."""

from __future__ import annotations

import json
import sqlite3

from plantd._sqlite import transaction
from plantd.service import Json
from plantd.state._errors import StateError
from plantd.state._model import Entry, ScopeSnapshot, Snapshot

__all__ = ["get", "list_keys", "revision", "scopes", "snapshot", "totals"]


def revision(conn: sqlite3.Connection) -> int:
    (value,) = conn.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()
    return int(value)


def totals(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """(global revision, scopes, keys), at one revision."""
    with transaction(conn, immediate=False):  # one read snapshot
        (scope_count,) = conn.execute("SELECT count(*) FROM scopes").fetchone()
        (key_count,) = conn.execute("SELECT count(*) FROM entries").fetchone()
        return revision(conn), int(scope_count), int(key_count)


def _scope_exists(conn: sqlite3.Connection, scope: str) -> bool:
    return conn.execute("SELECT 1 FROM scopes WHERE name = ?", (scope,)).fetchone() is not None


def _unknown_scope(scope: str) -> StateError:
    return StateError("state.unknown-scope", f"no scope {scope!r}")


def get(conn: sqlite3.Connection, scope: str, key: str) -> Entry:
    row = conn.execute(
        "SELECT value, revision, version FROM entries WHERE scope = ? AND key = ?", (scope, key)
    ).fetchone()
    if row is None:
        if not _scope_exists(conn, scope):
            raise _unknown_scope(scope)
        raise StateError("state.unknown-key", f"scope {scope!r} has no key {key!r}")
    return Entry(json.loads(row[0]), row[1], row[2])


def _after_prefix(prefix: str) -> str | None:
    """The least string greater than every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else None


def list_keys(
    conn: sqlite3.Connection,
    scope: str,
    *,
    prefix: str,
    after: str | None,
    limit: int,
    values: bool,
    max_bytes: int,
) -> dict[str, Json]:
    """Keys of ``scope`` starting with ``prefix``, in order, after the key ``after``.

    A page ends after ``limit`` keys, or once the values returned pass ``max_bytes``; ``next``
    is then the key to pass as ``after`` for the following page (None on the last page).
    """
    sql = "SELECT key, revision, version, value FROM entries WHERE scope = ? AND key >= ?"
    args: list[object] = [scope, prefix]
    upper = _after_prefix(prefix)
    if upper is not None:
        sql += " AND key < ?"
        args.append(upper)
    if after is not None:
        sql += " AND key > ?"
        args.append(after)
    sql += " ORDER BY key LIMIT ?"
    args.append(limit + 1)
    with transaction(conn, immediate=False):  # one read snapshot
        if not _scope_exists(conn, scope):
            raise _unknown_scope(scope)
        rows = conn.execute(sql, args).fetchall()
        current = revision(conn)
    keys: list[Json] = []
    size = 0
    next_key: str | None = None
    for index, (key, key_revision, version, value) in enumerate(rows):
        if index == limit or (values and keys and size + len(value) > max_bytes):
            next_key = keys[-1]["key"] if keys else None
            break
        item: dict[str, Json] = {"key": key, "revision": key_revision, "version": version}
        if values:
            item["value"] = json.loads(value)
            size += len(value)
        keys.append(item)
    return {"scope": scope, "revision": current, "keys": keys, "next": next_key}


def scopes(conn: sqlite3.Connection) -> dict[str, Json]:
    """Every scope with its key count and revisions, and the global revision."""
    with transaction(conn, immediate=False):  # one read snapshot
        rows = conn.execute(
            "SELECT s.name, s.created_revision, r.revision, "
            "(SELECT count(*) FROM entries e WHERE e.scope = s.name) "
            "FROM scopes s JOIN scope_revisions r ON r.name = s.name ORDER BY s.name"
        ).fetchall()
        current = revision(conn)
    listed: list[Json] = [
        {"scope": name, "keys": keys, "revision": last, "created_revision": created}
        for name, created, last, keys in rows
    ]
    return {"revision": current, "scopes": listed}


def snapshot(conn: sqlite3.Connection, scope: str | None = None) -> Snapshot:
    """One scope (``exists`` False if it does not exist) or every scope, at one revision."""
    with transaction(conn, immediate=False):  # one read snapshot
        current = revision(conn)
        if scope is None:
            names = conn.execute(
                "SELECT s.name, r.revision FROM scopes s JOIN scope_revisions r ON r.name = s.name"
            ).fetchall()
            rows = conn.execute(
                "SELECT scope, key, value, revision, version FROM entries ORDER BY scope, key"
            ).fetchall()
            result = Snapshot(current, {name: ScopeSnapshot(True, last) for name, last in names})
        else:
            exists = _scope_exists(conn, scope)
            last = conn.execute(
                "SELECT revision FROM scope_revisions WHERE name = ?", (scope,)
            ).fetchone()
            rows = conn.execute(
                "SELECT scope, key, value, revision, version FROM entries WHERE scope = ? "
                "ORDER BY key",
                (scope,),
            ).fetchall()
            result = Snapshot(current, {scope: ScopeSnapshot(exists, last[0] if last else 0)})
    for name, key, value, key_revision, version in rows:
        result.scopes[name].entries[key] = Entry(json.loads(value), key_revision, version)
    return result
