"""Opening plantd's SQLite databases (state, historian, sink queues) the one way they all need.

Every database is in WAL mode with ``synchronous=FULL`` (a commit returns only once its WAL
frames are on disk), in autocommit mode (transactions are explicit ``BEGIN``/``COMMIT``), with a
busy timeout for the reader connections that share the file. Schemas evolve by named
``sqlite-utils`` migrations, each applied in a transaction together with its record.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

__all__ = ["connect", "migrate"]

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
