"""The state database: its connections' settings and its schema, as named migrations.

Tables (every change to them is a migration below, applied in order, each in a transaction
together with the record of it in ``_sqlite_migrations``; never edit one that has shipped):

``meta(name, value)``
    ``revision``: the global revision, the number of the last committed change;
    ``database_id``: a random number given at creation (0002), which the generation marker
    beside the database names (``_integrity``).
``scopes(name, created_revision)``
    The scopes that exist.
``scope_revisions(name, revision)``
    The last revision that touched each scope name, kept after the scope is deleted, so that
    the change stream's ``prev`` chain of a scope never breaks (a scope created again continues
    the chain of the one deleted).
``entries(scope, key, value, revision, version, created_revision)``
    The keys: ``value`` is compact JSON text, ``revision`` the global revision of the key's last
    change, ``version`` how many times it was set since it was created.
``requests(seq, request_id, fingerprint, result, created)``
    Idempotency: the result of each applied write that carried a ``request_id``, written in the
    same transaction as the write.

Durability: WAL with ``synchronous=FULL``, so a commit returns only once its WAL frames are on
disk. The writer connection is the only one that writes; readers get ``query_only``.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from plantd import _sqlite
from plantd._sqlite import connect

__all__ = ["MIGRATIONS", "connect", "fsync_directory", "migrate"]

MIGRATIONS = Migrations("plantd.state")


@MIGRATIONS(name="0001_initial")
def _initial(db: Database) -> None:
    db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID")
    db.execute("INSERT INTO meta (name, value) VALUES ('revision', 0)")
    db.execute(
        "CREATE TABLE scopes (name TEXT PRIMARY KEY, created_revision INTEGER NOT NULL) "
        "WITHOUT ROWID"
    )
    db.execute(
        "CREATE TABLE scope_revisions (name TEXT PRIMARY KEY, revision INTEGER NOT NULL) "
        "WITHOUT ROWID"
    )
    db.execute(
        """CREATE TABLE entries (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            revision INTEGER NOT NULL,
            version INTEGER NOT NULL,
            created_revision INTEGER NOT NULL,
            PRIMARY KEY (scope, key)
        ) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE requests (
            seq INTEGER PRIMARY KEY,
            request_id TEXT NOT NULL UNIQUE,
            fingerprint TEXT NOT NULL,
            result TEXT NOT NULL,
            created REAL NOT NULL
        )"""
    )
    db.execute("CREATE INDEX requests_created ON requests (created)")


@MIGRATIONS(name="0002_database_id")
def _database_id(db: Database) -> None:
    # 62 bits: positive in SQLite's signed 64-bit integers, 16 hex digits in the marker.
    db.execute(
        "INSERT INTO meta (name, value) VALUES ('database_id', ?)", [secrets.randbits(62) or 1]
    )


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply every pending migration; returns the names applied (empty when up to date)."""
    return _sqlite.migrate(conn, MIGRATIONS)


def fsync_directory(directory: Path) -> None:
    """Make the directory entries of the database and its WAL durable (SQLite does not sync
    the directory when it creates a WAL file)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
