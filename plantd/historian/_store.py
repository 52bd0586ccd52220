"""The history store: batched writes, rollups and retention on one writer thread.

Theory of operation. The historian's intake (an asyncio task) gathers samples into batches
and hands each to :meth:`HistoryStore.write_batch`; the writer thread inserts the batch and
merges its rollups in one transaction (one fsync per batch: the point of batching on flash).
:meth:`maintain` applies retention on the same thread, between batches:

1. raw samples older than ``raw_max_age``, minute rollups older than ``minute_max_age`` and
   hour rollups older than ``hour_max_age`` are deleted (per point, along the primary key);
2. while the pages in use exceed ``max_bytes``, the oldest tenth of the raw samples' time span
   is deleted, then, if no raw samples are left, of the minute rollups. Freed pages are reused
   by later writes, so the file stops growing at about ``max_bytes``.

Reads (queries, the repair of a sink's gap) run on a second, read-only connection owned by a
thread of its own, so a long query never holds up a commit.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plantd._dbthread import DatabaseThread
from plantd.bus import Sample
from plantd.config import HistorianConfig
from plantd.historian._rows import rollup, to_row
from plantd.historian._schema import connect, migrate

__all__ = ["HistoryStore", "WriterStats"]

log = logging.getLogger(__name__)

_UPSERT_ROLLUP = (
    "INSERT INTO rollups (point, width, bucket, min, max, sum, count) VALUES (?,?,?,?,?,?,?) "
    "ON CONFLICT (point, width, bucket) DO UPDATE SET min = min(min, excluded.min), "
    "max = max(max, excluded.max), sum = sum + excluded.sum, count = count + excluded.count"
)


@dataclass(slots=True)
class WriterStats:
    """What the writer has done (plain ints and floats: read them from any thread)."""

    batches: int = 0
    samples: int = 0
    failed_batches: int = 0
    lost_samples: int = 0  # in batches whose commit failed
    last_commit: float | None = None
    last_commit_seconds: float = 0.0
    last_error: str | None = None
    deleted_by_age: int = 0
    deleted_by_size: int = 0


class HistoryStore:
    def __init__(
        self, path: Path, config: HistorianConfig, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.config = config
        self.stats = WriterStats()
        self._clock = clock
        self._ids: dict[str, int] = {}  # writer thread only
        self._writer = DatabaseThread("plantd-historian-writer", self._open_writer)
        try:
            self._reader = DatabaseThread(
                "plantd-historian-reader", lambda: connect(path, readonly=True)
            )
        except BaseException:
            self._writer.close()
            raise

    def _open_writer(self) -> sqlite3.Connection:
        conn = connect(self.path)
        migrate(conn)
        return conn

    # -- writes ------------------------------------------------------------------------------

    def write_batch(self, batch: Sequence[tuple[str, Sample]]) -> int:
        """Commit ``(point name, sample)`` pairs; blocks until on disk. Returns rows added."""
        return self._writer.call(lambda conn: self._write(conn, batch))

    async def write_batch_async(self, batch: Sequence[tuple[str, Sample]]) -> int:
        return await self._writer.run(lambda conn: self._write(conn, batch))

    def submit_batch(self, batch: Sequence[tuple[str, Sample]]) -> asyncio.Future[int]:
        """Queue ``batch`` for the writer and return at once (call from the event loop): the
        future resolves with the rows added once it is on disk. Batches are written in the
        order they are submitted."""
        return asyncio.wrap_future(self._writer.submit(lambda conn: self._write(conn, batch)))

    def _write(self, conn: sqlite3.Connection, batch: Sequence[tuple[str, Sample]]) -> int:
        started = time.monotonic()
        try:
            conn.execute("BEGIN IMMEDIATE")
            ids = self._ids
            ided = [(ids.get(name) or self._point_id(conn, name), sample) for name, sample in batch]
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO samples (point, ts, epoch, seq, kind, value, quality) "
                "VALUES (?,?,?,?,?,?,?)",
                [
                    (point, s.timestamp, s.epoch, s.seq, "f", s.value, s.quality)
                    if type(s.value) is float and s.value == s.value  # the common case: no NaN
                    else (point, s.timestamp, s.epoch, s.seq, *to_row(s.value), s.quality)
                    for point, s in ided
                ],
            )
            added = conn.total_changes - before
            conn.executemany(
                _UPSERT_ROLLUP,
                [(*key, a.min, a.max, a.sum, a.count) for key, a in rollup(ided).items()],
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._ids.clear()  # ids created in the rolled-back transaction are gone
            stats = self.stats
            if stats.last_error is None:
                log.error("historian: a batch of %d sample(s) was lost: %s", len(batch), exc)
            stats.failed_batches += 1
            stats.lost_samples += len(batch)
            stats.last_error = f"{type(exc).__name__}: {exc}"
            return 0
        stats = self.stats
        if stats.last_error is not None:
            log.info("historian: commits succeed again (after: %s)", stats.last_error)
            stats.last_error = None
        stats.batches += 1
        stats.samples += added
        stats.last_commit = self._clock()
        stats.last_commit_seconds = time.monotonic() - started
        return added

    def _point_id(self, conn: sqlite3.Connection, name: str) -> int:
        point = self._ids.get(name)
        if point is None:
            row = conn.execute("SELECT id FROM points WHERE name = ?", (name,)).fetchone()
            if row is None:
                cursor = conn.execute("INSERT INTO points (name) VALUES (?)", (name,))
                point = int(cursor.lastrowid or 0)
            else:
                point = int(row[0])
            self._ids[name] = point
        return point

    # -- retention ---------------------------------------------------------------------------

    def maintain(self) -> dict[str, int]:
        """Apply retention now (blocks); returns rows deleted by age and by size."""
        return self._writer.call(self._maintain)

    async def maintain_async(self) -> dict[str, int]:
        return await self._writer.run(self._maintain)

    def _maintain(self, conn: sqlite3.Connection) -> dict[str, int]:
        config, now = self.config, self._clock()
        points = [row[0] for row in conn.execute("SELECT id FROM points")]
        by_age = by_size = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            for point in points:
                by_age += conn.execute(
                    "DELETE FROM samples WHERE point = ? AND ts < ?",
                    (point, now - config.raw_max_age),
                ).rowcount
                for width, age in ((60, config.minute_max_age), (3600, config.hour_max_age)):
                    by_age += conn.execute(
                        "DELETE FROM rollups WHERE point = ? AND width = ? AND bucket < ?",
                        (point, width, now - age),
                    ).rowcount
            conn.execute("COMMIT")
            for table in ("samples", "rollups"):
                while used_bytes(conn) > config.max_bytes:
                    deleted = _delete_oldest_tenth(conn, table, points)
                    if not deleted:
                        break
                    by_size += deleted
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        self.stats.deleted_by_age += by_age
        self.stats.deleted_by_size += by_size
        if by_size:
            log.warning(
                "historian: over max_bytes (%d): deleted the %d oldest rows",
                config.max_bytes,
                by_size,
            )
        return {"by_age": by_age, "by_size": by_size}

    # -- reads -------------------------------------------------------------------------------

    async def read(self, job: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run a read job (see ``_query``) on the reader thread."""
        return await self._reader.run(job)

    def read_now(self, job: Callable[[sqlite3.Connection], Any]) -> Any:
        return self._reader.call(job)

    async def flush(self) -> None:
        """Return once every batch handed to the writer before this call is committed."""
        await self._writer.run(lambda conn: None)

    def close(self) -> None:
        self._reader.close()
        self._writer.close()


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes in pages that hold data (the file's pages less the free list)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def _delete_oldest_tenth(conn: sqlite3.Connection, table: str, points: list[int]) -> int:
    column = "ts" if table == "samples" else "bucket"
    extra = "" if table == "samples" else " AND width = 60"
    span = conn.execute(f"SELECT min({column}), max({column}) FROM {table} WHERE 1{extra}")
    oldest, newest = span.fetchone()
    if oldest is None:
        return 0
    cut = oldest + max((newest - oldest) / 10, 1e-6)
    deleted = 0
    conn.execute("BEGIN IMMEDIATE")
    for point in points:
        deleted += conn.execute(
            f"DELETE FROM {table} WHERE point = ? AND {column} < ?{extra}", (point, cut)
        ).rowcount
    conn.execute("COMMIT")
    return deleted
