"""Alarm state and history that outlive a restart: ``<paths.data>/alarms.db`` (SQLite).

Two tables. ``current`` holds each alarm's latest record (its snapshot), upserted with every
event; ``history`` holds one row per event (the record as JSON, with its time and alarm
indexed for queries). :meth:`AlarmStore.record` writes a list of events -- both tables, and
the retention of ``history`` -- in one transaction, so after a power cut the file holds every
event the engine was told were recorded and nothing half-written.

WAL with ``synchronous=FULL`` (``plantd._sqlite.connect``), and one thread owns the connection
(``plantd._dbthread``); ``record`` and ``history`` run on it without blocking the event loop.
Retention: history rows older than ``max_age`` seconds go, and beyond ``max_rows`` the oldest
go first; on every ``record`` and on :meth:`AlarmStore.maintain`. ``current`` is never pruned.

A failing write (disk full, I/O error, a locked or damaged file) raises
:class:`AlarmStoreError` naming the path and the cause; the transaction is rolled back, so the
file holds what it held before. The caller logs it and records the events again later.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from plantd._dbthread import DatabaseThread
from plantd._sqlite import connect_migrated, transaction
from plantd.control._alarm_engine import AlarmEvent, AlarmSnapshot
from plantd.errors import PlantdError

__all__ = ["MIGRATIONS", "AlarmStore", "AlarmStoreError"]

MIGRATIONS = Migrations("plantd.control.alarms")
T = TypeVar("T")


@MIGRATIONS(name="0001_initial")
def _initial(db: Database) -> None:
    db.execute(
        "CREATE TABLE current (alarm TEXT PRIMARY KEY, seq INTEGER NOT NULL, "
        "record TEXT NOT NULL) WITHOUT ROWID"
    )
    db.execute(
        "CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, "
        "alarm TEXT NOT NULL, seq INTEGER NOT NULL, record TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX history_time ON history (time)")
    db.execute("CREATE INDEX history_alarm_time ON history (alarm, time)")


class AlarmStoreError(PlantdError):
    """The alarm database could not be opened, read or written; names the file and cause."""

    def __init__(self, path: Path, doing: str, cause: BaseException) -> None:
        self.path = path
        self.cause = f"{type(cause).__name__}: {cause}"
        super().__init__(f"{path}: cannot {doing}: {self.cause}")


class AlarmStore:
    """See the module docstring. ``clock`` (wall time) dates the retention cut."""

    def __init__(
        self,
        path: Path,
        *,
        max_age: float,
        max_rows: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_age <= 0 or max_rows < 1:
            raise ValueError(f"max_age must be > 0 and max_rows >= 1, got {max_age}, {max_rows}")
        self.path = path
        self.max_age = max_age
        self.max_rows = max_rows
        self._clock = clock
        try:
            self._db = DatabaseThread("plantd-alarm-store", self._open)
        except (sqlite3.Error, OSError) as exc:
            raise AlarmStoreError(path, "open the alarm database", exc) from exc

    def _open(self) -> sqlite3.Connection:
        return connect_migrated(self.path, MIGRATIONS)

    def load(self) -> dict[str, AlarmSnapshot]:
        """Every alarm's last recorded state, by name (blocking; call it once at start).
        A row that is not a valid record is skipped: that alarm starts afresh."""
        rows = self._call("read the alarm states", _read_current)
        snapshots: dict[str, AlarmSnapshot] = {}
        for name, text in rows:
            try:
                snapshots[name] = AlarmSnapshot.from_record(json.loads(text))
            except (ValueError, TypeError):
                continue
        return snapshots

    async def record(self, events: Sequence[AlarmEvent]) -> None:
        """Commit ``events`` (current state and history) in one transaction, then prune."""
        if not events:
            return
        rows = [(e.alarm, e.seq, e.time, json.dumps(e.to_record())) for e in events]
        cut = self._clock() - self.max_age
        await self._run("record alarm events", lambda conn: self._write(conn, rows, cut))

    async def history(
        self, *, since: float, until: float, alarm: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Events with ``since <= time < until`` (of one alarm, if given), newest first, at
        most ``limit``."""
        sql = "SELECT record FROM history WHERE time >= ? AND time < ?"
        args: list[object] = [since, until]
        if alarm is not None:
            sql += " AND alarm = ?"
            args.append(alarm)
        sql += " ORDER BY time DESC, id DESC LIMIT ?"
        args.append(max(0, limit))
        rows = await self._run(
            "read the alarm history", lambda conn: conn.execute(sql, args).fetchall()
        )
        return [json.loads(text) for (text,) in rows]

    def maintain(self) -> int:
        """Apply retention now (blocking); returns how many history rows went."""
        cut = self._clock() - self.max_age
        return self._call("prune the alarm history", lambda conn: self._prune_in(conn, cut))

    def close(self) -> None:
        self._db.close()

    # -- on the database thread ----------------------------------------------------------

    def _write(self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]], cut: float) -> None:
        with transaction(conn):
            conn.executemany(
                "INSERT INTO history (alarm, seq, time, record) VALUES (?, ?, coalesce(?, 0), ?)",
                rows,
            )
            # an older event in the same list never overwrites a newer one
            conn.executemany(
                "INSERT INTO current (alarm, seq, record) VALUES (?, ?, ?) "
                "ON CONFLICT (alarm) DO UPDATE SET seq = excluded.seq, record = excluded.record "
                "WHERE excluded.seq >= current.seq",
                [(name, seq, record) for name, seq, _, record in rows],
            )
            self._prune(conn, cut)

    def _prune_in(self, conn: sqlite3.Connection, cut: float) -> int:
        with transaction(conn):
            return self._prune(conn, cut)

    def _prune(self, conn: sqlite3.Connection, cut: float) -> int:
        before = conn.total_changes
        conn.execute("DELETE FROM history WHERE time < ?", (cut,))
        conn.execute(
            "DELETE FROM history WHERE id <= "
            "(SELECT id FROM history ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (self.max_rows,),
        )
        return conn.total_changes - before

    def _call(self, doing: str, job: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return self._db.call(job)
        except sqlite3.Error as exc:
            raise AlarmStoreError(self.path, doing, exc) from exc

    async def _run(self, doing: str, job: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self._db.run(job)
        except sqlite3.Error as exc:
            raise AlarmStoreError(self.path, doing, exc) from exc


def _read_current(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return [(str(a), str(r)) for a, r in conn.execute("SELECT alarm, record FROM current")]
