"""The audit store: an append-only SQLite file whose records form a hash chain.

Schema (named migrations; never edit one that has shipped):

``records(id, time, principal, action, target, result, detail, source, count, hash)``
    One row per record, ``id`` from ``AUTOINCREMENT`` (never reused, so ``sqlite_sequence``
    remembers the last id even after every row is pruned). Indexed by time and by principal.
``meta(key, value)``
    ``prune_through`` (the last id pruning removed, 0 if none), ``pruned_hash`` (that row's
    hash, where the chain continues) and ``pruned`` (how many rows pruning removed).

The hash chain. ``hash = sha256(previous hash + canonical JSON of the record)``, where the
canonical JSON holds every column but ``hash`` (keys sorted, no spaces, UTF-8) and the first
record's previous hash is :data:`GENESIS`. :func:`verify_chain` recomputes it: a changed
column, or a record removed from the middle or the end, shows as the first bad id. Pruning
removes a head of the chain on purpose and keeps the hash of its last row in ``meta``, so
what is left still verifies. The chain makes tampering visible, it does not prevent it:
whoever can write the file can rewrite the whole chain. Each record's hash is published on
the bus with the record, so a subscriber elsewhere can hold anchors.

Append-only. Triggers refuse every UPDATE of a record and every DELETE except of the rows
the pruning path has declared pruned (see ``_initial``). Reads may use another connection
(WAL lets readers in while the writer commits); the functions below take a connection, so
the ``org.plantd.Audit`` service runs them on its own read-only one.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from plantd import _sqlite
from plantd.config import AuditConfig
from plantd.security import AuditEvent

__all__ = [
    "GENESIS",
    "MIGRATIONS",
    "AuditStore",
    "Pruned",
    "Verification",
    "chain_hash",
    "query_records",
    "store_status",
    "verify_chain",
]

GENESIS = "0" * 64  # the "previous hash" of the first record ever written
COLUMNS = ("id", "time", "principal", "action", "target", "result", "detail", "source", "count")
_SIZE_STEP = 10  # pruning by size removes the oldest tenth of the records at a time

MIGRATIONS = Migrations("plantd.audit")


@MIGRATIONS(name="0001_initial")
def _initial(db: Database) -> None:
    db.execute(
        """CREATE TABLE records (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            time REAL NOT NULL,
            principal TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            result TEXT NOT NULL,
            detail TEXT NOT NULL,
            source TEXT NOT NULL,
            count INTEGER NOT NULL,
            hash TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX records_time ON records (time)")
    db.execute("CREATE INDEX records_principal ON records (principal)")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID")
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('prune_through', 0), ('pruned_hash', ?), "
        "('pruned', 0)",
        [GENESIS],
    )
    db.execute(
        """CREATE TRIGGER records_no_update BEFORE UPDATE ON records BEGIN
            SELECT RAISE(ABORT, 'audit records are append-only: UPDATE refused');
        END"""
    )
    # DELETE is allowed only for rows at or below meta.prune_through, which the pruning path
    # raises first, in the same transaction. The guard is on the id, not on the time: pruning
    # must remove a head of the chain (the oldest ids), and the wall clock can step back, so
    # a time bound could let a delete punch a hole in the middle of the chain. The value may
    # only grow (second trigger), so a row once kept stays protected until it is the oldest.
    db.execute(
        """CREATE TRIGGER records_no_delete BEFORE DELETE ON records
        WHEN OLD.id > (SELECT value FROM meta WHERE key = 'prune_through') BEGIN
            SELECT RAISE(ABORT, 'audit records are append-only: DELETE refused (pruning only)');
        END"""
    )
    db.execute(
        """CREATE TRIGGER meta_prune_through_grows BEFORE UPDATE ON meta
        WHEN OLD.key = 'prune_through' AND NEW.value < OLD.value BEGIN
            SELECT RAISE(ABORT, 'audit meta: prune_through only grows');
        END"""
    )
    db.execute(
        """CREATE TRIGGER meta_no_delete BEFORE DELETE ON meta BEGIN
            SELECT RAISE(ABORT, 'audit meta: DELETE refused');
        END"""
    )


class Verification(NamedTuple):
    """What :func:`verify_chain` found: ``ok``, the records checked, the first bad id."""

    ok: bool
    checked: int
    first_bad_id: int | None


class Pruned(NamedTuple):
    by_age: int
    by_size: int


def chain_hash(previous: str, record: dict[str, Any]) -> str:
    """The hash of ``record`` (a dict with at least :data:`COLUMNS`) after ``previous``."""
    canonical = json.dumps(
        {column: record[column] for column in COLUMNS},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256((previous + canonical).encode()).hexdigest()


def _text(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    try:
        text.encode()
    except UnicodeEncodeError:  # lone surrogates: SQLite could not store them
        text = text.encode("utf-8", "replace").decode()
    return text


def _meta(conn: sqlite3.Connection, key: str) -> Any:
    return conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]


def _last_id(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
    return int(row[0]) if row else 0


def _row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def query_records(
    conn: sqlite3.Connection,
    *,
    since: float | None = None,
    until: float | None = None,
    principal: str | None = None,
    action: str | None = None,
    result: str | None = None,
    target_prefix: str | None = None,
    limit: int = 1000,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Records matching every filter given, newest (highest id) first, at most ``limit``.

    ``since <= time < until``; ``target_prefix`` matches the start of ``target`` exactly
    (case-sensitive); ``before_id`` pages back: pass the last id of the previous page.
    """
    where, args = ["1"], []
    for clause, value in (
        ("time >= ?", since),
        ("time < ?", until),
        ("principal = ?", principal),
        ("action = ?", action),
        ("result = ?", result),
        ("id < ?", before_id),
    ):
        if value is not None:
            where.append(clause)
            args.append(value)
    if target_prefix:
        where.append("substr(target, 1, ?) = ?")
        args += [len(target_prefix), target_prefix]
    cursor = conn.execute(
        f"SELECT {', '.join(COLUMNS)}, hash FROM records WHERE {' AND '.join(where)} "
        "ORDER BY id DESC LIMIT ?",
        [*args, limit],
    )
    return [_row(cursor, row) for row in cursor]


def verify_chain(conn: sqlite3.Connection) -> Verification:
    """Recompute the chain from the pruned head to the last id ever written (one snapshot).

    Checks that ids run on without a hole from ``prune_through + 1``, that each hash is the
    hash of its record after the previous one, and that the last record is the last id
    ``AUTOINCREMENT`` handed out (a truncated tail). ``first_bad_id`` is the first id that is
    missing or does not match.
    """
    with _sqlite.transaction(conn, immediate=False):  # one snapshot, even while the writer commits
        expected_id = int(_meta(conn, "prune_through")) + 1
        previous = str(_meta(conn, "pruned_hash"))
        last_id = _last_id(conn)
        checked = 0
        cursor = conn.execute(f"SELECT {', '.join(COLUMNS)}, hash FROM records ORDER BY id")
        for row in cursor:
            record = _row(cursor, row)
            if record["id"] != expected_id:
                return Verification(False, checked, expected_id)
            checked += 1
            previous_hash, previous = previous, record["hash"]
            if chain_hash(previous_hash, record) != record["hash"]:
                return Verification(False, checked, record["id"])
            expected_id += 1
        if expected_id <= last_id:
            return Verification(False, checked, expected_id)
        return Verification(True, checked, None)


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes in pages that hold data (the file's pages less the free list)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def store_status(conn: sqlite3.Connection, path: Path) -> dict[str, Any]:
    """Records, events (their counts summed), the time span, pruned rows and file sizes."""
    count, events, oldest, newest = conn.execute(
        "SELECT count(*), coalesce(sum(count), 0), min(time), max(time) FROM records"
    ).fetchone()
    files = [path, path.with_name(path.name + "-wal")]
    return {
        "database": str(path),
        "count": count,
        "events": events,
        "oldest": oldest,
        "newest": newest,
        "last_id": _last_id(conn),
        "pruned": int(_meta(conn, "pruned")),
        "bytes": sum(f.stat().st_size for f in files if f.exists()),
        "used_bytes": used_bytes(conn),
    }


class AuditStore:
    """The audit file, opened for writing (with migrations) by the thread that will use it.

    sqlite3 ties the connection to the thread that opened it; :class:`AuditLog` opens the
    store on its writer thread. ``clock`` is the wall clock that :meth:`prune` uses by default.
    """

    def __init__(
        self, path: Path, config: AuditConfig, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.config = config
        self._clock = clock
        self._conn = _sqlite.connect(path)
        try:
            _sqlite.migrate(self._conn, MIGRATIONS)
        except BaseException:
            self._conn.close()
            raise

    def append(self, events: Sequence[AuditEvent]) -> int:
        """Append ``events`` in one transaction (on disk when it returns); returns how many."""
        return len(self.append_records(events))

    def append_records(self, events: Sequence[AuditEvent]) -> list[dict[str, Any]]:
        """Like :meth:`append`, returning the records written (with ``id`` and ``hash``).

        Each event's ``time`` is stored as it is: stamp it before (``AuditLog`` does).
        """
        conn = self._conn
        with _sqlite.transaction(conn):
            previous_row = conn.execute(
                "SELECT hash FROM records ORDER BY id DESC LIMIT 1"
            ).fetchone()
            previous = previous_row[0] if previous_row else str(_meta(conn, "pruned_hash"))
            next_id = _last_id(conn) + 1
            records = []
            for number, event in enumerate(events, start=next_id):
                record: dict[str, Any] = {
                    "id": number,
                    "time": float(event.time),
                    "principal": _text(event.principal),
                    "action": _text(event.action),
                    "target": _text(event.target),
                    "result": _text(event.result),
                    "detail": _text(event.detail),
                    "source": _text(event.source),
                    "count": int(event.count),
                }
                previous = record["hash"] = chain_hash(previous, record)
                records.append(record)
            conn.executemany(
                f"INSERT INTO records ({', '.join(COLUMNS)}, hash) "
                f"VALUES ({', '.join('?' * (len(COLUMNS) + 1))})",
                [tuple(record.values()) for record in records],
            )
        return records

    def query(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        principal: str | None = None,
        action: str | None = None,
        result: str | None = None,
        target_prefix: str | None = None,
        limit: int = 1000,
        before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """See :func:`query_records`."""
        return query_records(
            self._conn,
            since=since,
            until=until,
            principal=principal,
            action=action,
            result=result,
            target_prefix=target_prefix,
            limit=limit,
            before_id=before_id,
        )

    def verify(self) -> Verification:
        """See :func:`verify_chain`."""
        return verify_chain(self._conn)

    def count(self) -> int:
        """How many records the file holds (not the sum of their counts)."""
        return int(self._conn.execute("SELECT count(*) FROM records").fetchone()[0])

    def status(self) -> dict[str, Any]:
        return store_status(self._conn, self.path)

    def prune(self, now: float | None = None) -> Pruned:
        """Remove the records older than ``max_age`` at ``now`` (default: the clock), then,
        while the pages in use exceed ``max_bytes``, the oldest tenth of what is left.

        Age pruning removes the longest run of oldest ids whose times are all before the
        cutoff, so a record stamped early by a clock that stepped back waits for its
        neighbours. Freed pages are reused by later appends: the file stops growing at about
        ``max_bytes`` rather than shrinking.
        """
        conn = self._conn
        cutoff = (self._clock() if now is None else now) - self.config.max_age
        young = conn.execute("SELECT min(id) FROM records WHERE time >= ?", (cutoff,))
        first_young = young.fetchone()[0]
        cut = first_young - 1 if first_young is not None else _last_id(conn)
        by_age = self._prune_through(cut)
        by_size = 0
        while used_bytes(conn) > self.config.max_bytes:
            first, last = conn.execute("SELECT min(id), max(id) FROM records").fetchone()
            if first is None:
                break
            by_size += self._prune_through(first + max(1, (last - first + 1) // _SIZE_STEP) - 1)
        return Pruned(by_age, by_size)

    def _prune_through(self, cut: int) -> int:
        """Delete every record with ``id <= cut``, keeping the chain's continuation."""
        conn = self._conn
        with _sqlite.transaction(conn):
            row = conn.execute("SELECT hash FROM records WHERE id = ?", (cut,)).fetchone()
            if row is None or cut <= int(_meta(conn, "prune_through")):
                return 0  # nothing to prune: the transaction wrote nothing, nor will its COMMIT
            # The order matters: the delete trigger reads prune_through.
            conn.execute("UPDATE meta SET value = ? WHERE key = 'prune_through'", (cut,))
            conn.execute("UPDATE meta SET value = ? WHERE key = 'pruned_hash'", (row[0],))
            deleted = conn.execute("DELETE FROM records WHERE id <= ?", (cut,)).rowcount
            conn.execute("UPDATE meta SET value = value + ? WHERE key = 'pruned'", (deleted,))
        return deleted

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
