"""Opening plantd's SQLite databases (state, historian, sink queues) the one way they all need.

Every database is in WAL mode with ``synchronous=FULL`` (a commit returns only once its WAL
frames are on disk), in autocommit mode (transactions are explicit ``BEGIN``/``COMMIT``), with a
busy timeout for the reader connections that share the file. Schemas evolve by named
``sqlite-utils`` migrations, each applied in a transaction together with its record.

Every transaction is written the one way, :func:`transaction`::

    with transaction(conn):          # BEGIN IMMEDIATE
        conn.execute("INSERT …")
    # committed here (on disk: synchronous=FULL); any exception rolled it back and goes on
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

__all__ = ["connect", "connect_migrated", "migrate", "rollback", "transaction"]

_BUSY_TIMEOUT_MS = 5000


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode, WAL, ``synchronous=FULL``; ``readonly`` ones may only
    query. The connection belongs to the calling thread (sqlite3 checks that)."""
    if not readonly:
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, timeout=_BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        if not readonly:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"{path}: cannot use WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous = FULL")
        if readonly:
            conn.execute("PRAGMA query_only = 1")
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection, migrations: Migrations) -> list[str]:
    """Apply every pending migration; returns the names applied (empty when up to date)."""
    db = Database(conn, execute_plugins=False)
    pending = [migration.name for migration in migrations.pending(db)]
    if pending:
        migrations.apply(db)
    return pending


def connect_migrated(path: Path, migrations: Migrations) -> sqlite3.Connection:
    """:func:`connect` (writable), then :func:`migrate`; the connection is closed if either
    fails (a store that cannot be brought up to date must not be half open)."""
    conn = connect(path)
    try:
        migrate(conn, migrations)
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection, *, immediate: bool = True) -> Iterator[None]:
    """One transaction around the ``with`` body: ``BEGIN IMMEDIATE`` (or a deferred ``BEGIN``
    when ``immediate`` is false, for a read snapshot), ``COMMIT`` when the body ends, and
    ``ROLLBACK`` when it raises anything at all — ``CancelledError`` and ``KeyboardInterrupt``
    included — before the exception goes on unchanged.

    ``IMMEDIATE`` takes the write lock at once, so a writer never fails half-way with
    ``SQLITE_BUSY`` when another connection got there first. A failed ``COMMIT`` (disk full,
    I/O error) rolls back too and raises. Transactions do not nest (SQLite has no nested
    ``BEGIN``): entering one on a connection that is in a transaction already raises
    ``sqlite3.ProgrammingError`` before touching it; use a ``SAVEPOINT`` inside instead.
    """
    if conn.in_transaction:
        raise sqlite3.ProgrammingError(
            "transaction(): the connection is in a transaction already; transactions do not "
            "nest (use a SAVEPOINT inside the open one)"
        )
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException as exc:
        try:
            rollback(conn)
        except sqlite3.Error as failed:
            # The caller needs the error that ended the transaction, not this one; the
            # connection may still be in the transaction, and ``rollback`` can be tried again.
            exc.add_note(f"the ROLLBACK after it failed too: {failed}")
        raise


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if there is one (SQLite may have rolled back by
    itself after some errors). For recovery paths; transactions end in :func:`transaction`."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")
