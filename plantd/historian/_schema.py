"""The history database: connection settings and schema, as named migrations.

Tables (every change is a migration below; never edit one that has shipped):

``points(id, name)``
    One row per point ever stored; ``name`` is the bus topic without ``data.``
    (``pump1.flow``). Samples refer to the id, which keeps their rows short.
``samples(point, ts, epoch, seq, kind, value, quality)``
    Raw samples, clustered by point and time (``WITHOUT ROWID``, primary key
    ``(point, ts, epoch, seq)``). ``kind`` is the bus value type (``f``, ``i``, ``b``, ``s``,
    ``n``, ``j``) and says how to read ``value`` back: a float NaN is stored as NULL (SQLite
    has no NaN), JSON as text. ``epoch``/``seq`` are the publisher's numbering, kept so that a
    sink can fill a gap in what it took from the bus (see docs/sinks.md, "repair").
``rollups(point, width, bucket, min, max, sum, count)``
    Per point, per ``width`` (60 or 3600 s), per bucket (its start, Unix seconds, a multiple of
    the width): aggregates of the point's finite numeric samples of good quality.
``recent(ts, point, epoch, seq, kind, value, quality)``
    Raw samples not yet *settled* into ``samples``: the same columns, clustered by time
    (``WITHOUT ROWID``, key ``(ts, point, epoch, seq)``), so that a batch appends at the end of
    the tree instead of rewriting a page of every point it holds. The writer moves them into
    ``samples`` every 30 s, sorted by point (see ``_store``). Reads see both tables (the
    ``every_sample`` view, and the query functions).
``rollup_backlog(id, since)``
    At most one row: present while samples are on disk whose rollups are not yet merged into
    ``rollups`` (the writer merges them every few seconds); ``since`` is the oldest of their
    timestamps. Written in the same transaction as the samples, deleted in the one that merges
    their rollups: after a crash, the rollups from ``since`` on are rebuilt from the samples.

Durability: WAL with ``synchronous=FULL``: a batch's commit returns once it is on disk.
"""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from plantd import _sqlite
from plantd._sqlite import connect

__all__ = ["MIGRATIONS", "connect", "migrate"]

MIGRATIONS = Migrations("plantd.historian")


@MIGRATIONS(name="0001_initial")
def _initial(db: Database) -> None:
    db.execute("CREATE TABLE points (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
    db.execute(
        """CREATE TABLE samples (
            point INTEGER NOT NULL,
            ts REAL NOT NULL,
            epoch INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            value,
            quality INTEGER NOT NULL,
            PRIMARY KEY (point, ts, epoch, seq)
        ) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE rollups (
            point INTEGER NOT NULL,
            width INTEGER NOT NULL,
            bucket INTEGER NOT NULL,
            min REAL NOT NULL,
            max REAL NOT NULL,
            sum REAL NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (point, width, bucket)
        ) WITHOUT ROWID"""
    )


@MIGRATIONS(name="0002_rollup_backlog")
def _rollup_backlog(db: Database) -> None:
    db.execute(
        "CREATE TABLE rollup_backlog (id INTEGER PRIMARY KEY CHECK (id = 1), since REAL NOT NULL)"
    )


@MIGRATIONS(name="0003_recent")
def _recent(db: Database) -> None:
    db.execute(
        """CREATE TABLE recent (
            ts REAL NOT NULL,
            point INTEGER NOT NULL,
            epoch INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            value,
            quality INTEGER NOT NULL,
            PRIMARY KEY (ts, point, epoch, seq)
        ) WITHOUT ROWID"""
    )
    db.execute(
        "CREATE VIEW every_sample AS "
        "SELECT point, ts, epoch, seq, kind, value, quality FROM samples UNION ALL "
        "SELECT point, ts, epoch, seq, kind, value, quality FROM recent"
    )


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply every pending migration; returns the names applied (empty when up to date)."""
    return _sqlite.migrate(conn, MIGRATIONS)
