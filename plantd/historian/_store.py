"""The history store: batched writes, rollups and retention on one writer thread.

Theory of operation. The historian's intake (an asyncio task) gathers samples into batches
and hands each to :meth:`HistoryStore.write_batch`; the writer thread inserts the batch in
one transaction (one fsync per batch: the point of batching on flash) into ``recent``, a
table clustered by time, and folds its rollups
into a :class:`RollupBuffer`. Every ``_ROLLUP_EVERY`` seconds (and before every read, and at
the end) the buffer is merged into ``rollups`` within a batch's transaction: a point's minute
row costs an upsert per merge rather than per batch, which was most of the writer's time at
thousands of points. Each batch's transaction also notes, in ``rollup_backlog``, the oldest
timestamp not merged yet; a crash loses the buffer but not that note, and the next start
rebuilds the rollups from there on out of the raw samples (so does a failed commit).

Every ``_SETTLE_EVERY`` seconds (or once ``recent`` holds ``_SETTLE_MAX_ROWS``) the writer
*settles* ``recent`` into ``samples``, clustered by point and time, in one transaction, sorted
by point. Why two tables: SQLite writes every page a commit changes, whole, to the WAL and
again at the checkpoint. Written straight into ``samples``, a batch of one sample per point
changes one page per point — about 9 KB written per sample stored once the file has grown,
110 times what the same rows cost clustered by time (``bench/historian_writer.py
--amplification``), which a Raspberry Pi's SD card neither keeps up with nor survives for long.
Settled every 30 s, a point's page is rewritten once per 30 s instead of once per batch.
:meth:`maintain` applies retention on the same thread, between batches:

1. raw samples older than ``raw_max_age``, minute rollups older than ``minute_max_age`` and
   hour rollups older than ``hour_max_age`` are deleted (per point, along the primary key);
2. while the pages in use exceed ``max_bytes``, the oldest tenth of the raw samples' time span
   is deleted, then, if no raw samples are left, of the minute rollups. Freed pages are reused
   by later writes, so the file stops growing at about ``max_bytes``.

Reads (queries, the repair of a sink's gap) run on a second, read-only connection owned by a
thread of its own, so a long query never holds up a commit.

Metrics (``_metrics``): each committed batch is observed once, its duration and the samples it
stored; an open store's files count in the database size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plantd._dbthread import DatabaseThread
from plantd._sqlite import rollback, transaction
from plantd.bus import Sample
from plantd.config import HistorianConfig
from plantd.historian import _metrics
from plantd.historian._rows import RollupBuffer, to_row
from plantd.historian._schema import connect, migrate

__all__ = ["HistoryStore", "WriterStats"]

log = logging.getLogger(__name__)

_UPSERT_ROLLUP = (
    "INSERT INTO rollups (point, width, bucket, min, max, sum, count) VALUES (?,?,?,?,?,?,?) "
    "ON CONFLICT (point, width, bucket) DO UPDATE SET min = min(min, excluded.min), "
    "max = max(max, excluded.max), sum = sum + excluded.sum, count = count + excluded.count"
)
_NOTE_BACKLOG = (
    "INSERT INTO rollup_backlog (id, since) VALUES (1, ?) "
    "ON CONFLICT (id) DO UPDATE SET since = min(since, excluded.since)"
)
_SETTLE_EVERY = 30.0
"""Seconds between two moves of ``recent`` into ``samples``."""
_SETTLE_MAX_ROWS = 1_000_000
"""Or sooner, once ``recent`` holds this many rows (a query scans it by time)."""
_SETTLE = (
    "INSERT OR IGNORE INTO samples (point, ts, epoch, seq, kind, value, quality) "
    "SELECT point, ts, epoch, seq, kind, value, quality FROM recent "
    "ORDER BY point, ts, epoch, seq"
)
_ROLLUP_EVERY = 5.0
"""Seconds between merges of the buffered rollups into the table."""
_ROLLUP_MAX_BUCKETS = 200_000
"""Or sooner, once the buffer holds this many minute buckets (memory: ~100 bytes each)."""
# Rebuilding a point's rollups from its raw samples, by the rules of plantd.historian._rows
# (finite numbers of good quality, bools excluded; a NaN is stored as NULL).
_REBUILD_MINUTES = (
    "INSERT INTO rollups (point, width, bucket, min, max, sum, count) "
    "SELECT point, 60, CAST(ts / 60 AS INTEGER) * 60 AS b, min(value), max(value), "
    "sum(value), count(*) FROM samples WHERE point = ? AND ts >= ? AND quality = 0 "  # settled
    "AND kind IN ('f', 'i') AND value IS NOT NULL "
    "AND value BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308 GROUP BY b"
)
_REBUILD_HOURS = (
    "INSERT INTO rollups (point, width, bucket, min, max, sum, count) "
    "SELECT point, 3600, bucket / 3600 * 3600 AS b, min(min), max(max), sum(sum), sum(count) "
    "FROM rollups WHERE point = ? AND width = 60 AND bucket >= ? GROUP BY b"
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
        self._rollups = RollupBuffer()  # writer thread only
        self._rollups_merged = time.monotonic()
        self._rebuild_since: float | None = None  # rebuild from raw, not the buffer, from here
        self._settled = time.monotonic()
        self._recent_rows = 0  # rows in ``recent`` (writer thread only)
        self._uncounted = 0  # duplicates a settle found, until its transaction commits
        self._metered = 0  # stats.samples as far as the samples counter has it (writer thread)
        self._writer = DatabaseThread("plantd-historian-writer", self._open_writer)
        try:
            self._reader = DatabaseThread(
                "plantd-historian-reader", lambda: connect(path, readonly=True)
            )
        except BaseException:
            self._writer.close()
            raise
        _metrics.track(self)

    def _open_writer(self) -> sqlite3.Connection:
        conn = connect(self.path)
        migrate(conn)
        self._recent_rows = conn.execute("SELECT count(*) FROM recent").fetchone()[0]
        row = conn.execute("SELECT since FROM rollup_backlog").fetchone()
        if row is not None:  # stopped before its last rollups were merged: rebuild them
            self._rebuild_since = float(row[0])
            self._merge_now(conn)
            log.info("historian: rebuilt the rollups from %s on from the raw samples", row[0])
        return conn

    # -- writes ------------------------------------------------------------------------------

    def write_batch(self, batch: Sequence[tuple[str, Sample]]) -> int:
        """Commit ``(point name, sample)`` pairs; blocks until on disk. Returns rows added."""
        return self._writer.call(lambda conn: self._write(conn, batch))

    def submit_batch(self, batch: Sequence[tuple[str, Sample]]) -> asyncio.Future[int]:
        """Queue ``batch`` for the writer and return at once (call from the event loop): the
        future resolves with the rows added once it is on disk. Batches are written in the
        order they are submitted."""
        return asyncio.wrap_future(self._writer.submit(lambda conn: self._write(conn, batch)))

    def _write(self, conn: sqlite3.Connection, batch: Sequence[tuple[str, Sample]]) -> int:
        started = time.monotonic()
        try:
            with transaction(conn):
                ids = self._ids
                ided = [
                    (ids.get(name) or self._point_id(conn, name), sample) for name, sample in batch
                ]
                before = conn.total_changes
                conn.executemany(
                    "INSERT OR IGNORE INTO recent (ts, point, epoch, seq, kind, value, quality) "
                    "VALUES (?,?,?,?,?,?,?)",
                    [
                        (s.timestamp, point, s.epoch, s.seq, "f", s.value, s.quality)
                        if type(s.value) is float and s.value == s.value  # common case: no NaN
                        else (s.timestamp, point, s.epoch, s.seq, *to_row(s.value), s.quality)
                        for point, s in ided
                    ],
                )
                added = conn.total_changes - before
                oldest = self._rollups.add(ided)
                if oldest is not None:
                    conn.execute(_NOTE_BACKLOG, (oldest,))
                merging = (
                    started - self._rollups_merged >= _ROLLUP_EVERY
                    or len(self._rollups) >= _ROLLUP_MAX_BUCKETS
                )
                if merging:
                    self._merge(conn)
        except sqlite3.Error as exc:
            self._rolled_back(conn)
            stats = self.stats
            if stats.last_error is None:
                log.error("historian: a batch of %d sample(s) was lost: %s", len(batch), exc)
            stats.failed_batches += 1
            stats.lost_samples += len(batch)
            stats.last_error = f"{type(exc).__name__}: {exc}"
            return 0
        except BaseException:
            self._rolled_back(conn)  # rolled back all the same: forget what it made, and go on
            raise
        if merging:
            self._rebuild_since = None  # merged (or rebuilt) for good
        self._committed()
        stats = self.stats
        if stats.last_error is not None:
            log.info("historian: commits succeed again (after: %s)", stats.last_error)
            stats.last_error = None
        stats.batches += 1
        stats.samples += added
        stats.last_commit = self._clock()
        stats.last_commit_seconds = time.monotonic() - started
        _metrics.BATCH_SECONDS.observe(stats.last_commit_seconds)
        self._meter_samples()
        self._recent_rows += added
        if started - self._settled >= _SETTLE_EVERY or self._recent_rows >= _SETTLE_MAX_ROWS:
            self._settle_now(conn)
        return added

    def _meter_samples(self) -> None:
        """Add what ``stats.samples`` gained to the samples counter. A settle takes the
        duplicates it finds off ``stats.samples`` (they were counted when their batch came), and a
        counter cannot go down: the counter waits until ``stats.samples`` is past what it has."""
        stored = self.stats.samples
        if stored > self._metered:
            _metrics.SAMPLES.inc(stored - self._metered)
            self._metered = stored

    def _settle_now(self, conn: sqlite3.Connection) -> None:
        """Move ``recent`` into ``samples`` in a transaction of its own (a failure leaves the
        rows in ``recent``, where reads see them, for the next try)."""
        self._settled = time.monotonic()
        if not self._recent_rows:
            return
        try:
            with transaction(conn):
                self._settle(conn)
        except sqlite3.Error as exc:
            self._rollback(conn)
            log.warning("historian: cannot settle the recent samples now: %s", exc)
            return
        except BaseException:
            self._rollback(conn)
            raise
        self._committed()

    def _rollback(self, conn: sqlite3.Connection) -> None:
        """After a rollback: a settle the transaction held did not happen. (``transaction``
        rolled back already; ``rollback`` tries again should its ROLLBACK have failed.)"""
        rollback(conn)
        self._uncounted = 0
        with contextlib.suppress(sqlite3.Error):
            self._recent_rows = conn.execute("SELECT count(*) FROM recent").fetchone()[0]

    def _committed(self) -> None:
        """After a commit: what its settle found stored already comes off the count."""
        self.stats.samples -= self._uncounted
        self._uncounted = 0

    def _settle(self, conn: sqlite3.Connection) -> None:
        """Within the caller's transaction: every row of ``recent`` into ``samples``, sorted by
        point (each point's pages written once), and ``recent`` emptied."""
        rows = self._recent_rows  # exact: rows each commit added, recounted after a rollback
        before = conn.total_changes
        conn.execute(_SETTLE)
        moved = conn.total_changes - before
        conn.execute("DELETE FROM recent")
        self._recent_rows = 0
        # Samples that were settled already and came again are not stored twice: taken off
        # the count once the transaction commits (``_committed``).
        self._uncounted += rows - moved

    def _merge(self, conn: sqlite3.Connection) -> None:
        """Merge the buffered rollups into the table (within the caller's transaction), or
        rebuild them from the raw samples when the buffer cannot be trusted."""
        since = self._rebuild_since
        if since is None:
            conn.executemany(_UPSERT_ROLLUP, self._rollups.take())
        else:
            buffered = self._rollups.since
            self._rollups.take()
            self._rebuild_since = since = since if buffered is None else min(since, buffered)
            self._settle(conn)  # the rebuild reads ``samples`` only
            _rebuild_rollups(conn, since)
        conn.execute("DELETE FROM rollup_backlog")
        self._rollups_merged = time.monotonic()

    def _merge_now(self, conn: sqlite3.Connection) -> None:
        """Merge what is buffered in a transaction of its own (before a read, at the end)."""
        if not self._rollups and self._rebuild_since is None:
            return
        try:
            with transaction(conn):
                self._merge(conn)
        except sqlite3.Error as exc:
            self._rolled_back(conn)
            log.warning("historian: cannot merge the rollups now: %s", exc)
            return
        except BaseException:
            self._rolled_back(conn)
            raise
        self._rebuild_since = None
        self._committed()

    def _rolled_back(self, conn: sqlite3.Connection) -> None:
        """After a failed transaction: what it wrote is gone, so are the point ids it made,
        and the buffer may hold samples that are not stored: rebuild from raw instead."""
        self._rollback(conn)
        self._ids.clear()
        candidates = [t for t in (self._rebuild_since, self._rollups.since) if t is not None]
        self._rollups.take()
        if candidates:
            self._rebuild_since = min(candidates)

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
        self._merge_now(conn)  # else buckets expired below could come back with the next merge
        self._settle_now(conn)  # retention and the size bound act on ``samples``
        config, now = self.config, self._clock()
        points = [row[0] for row in conn.execute("SELECT id FROM points")]
        by_age = by_size = 0
        with transaction(conn):
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
        for table in ("samples", "rollups"):
            while used_bytes(conn) > config.max_bytes:
                deleted = _delete_oldest_tenth(conn, table, points)
                if not deleted:
                    break
                by_size += deleted
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
        """Run a read job (see ``_query``) on the reader thread, the rollups merged first."""
        if self._rollups or self._rebuild_since is not None:
            await self._writer.run(self._merge_now)
        return await self._reader.run(job)

    def read_now(self, job: Callable[[sqlite3.Connection], Any]) -> Any:
        if self._rollups or self._rebuild_since is not None:
            self._writer.call(self._merge_now)
        return self._reader.call(job)

    async def flush(self) -> None:
        """Return once every batch handed to the writer before this call is committed, and
        their rollups merged."""
        await self._writer.run(self._merge_now)

    def close(self) -> None:
        _metrics.untrack(self)
        self._reader.close()
        try:
            self._writer.call(self._merge_now)
        except Exception as exc:  # the rollup_backlog note stays: the next start rebuilds
            log.warning("historian: rollups not merged at the end: %s", exc)
        self._writer.close()


def _rebuild_rollups(conn: sqlite3.Connection, since: float) -> None:
    """Recompute every rollup bucket from ``since`` on out of the raw samples (minutes) and the
    minute rollups (hours), point by point along the primary keys."""
    minute, hour = int(since // 60) * 60, int(since // 3600) * 3600
    for (point,) in conn.execute("SELECT id FROM points").fetchall():
        conn.execute(
            "DELETE FROM rollups WHERE point = ? AND width = 60 AND bucket >= ?", (point, minute)
        )
        conn.execute(_REBUILD_MINUTES, (point, minute))
        conn.execute(
            "DELETE FROM rollups WHERE point = ? AND width = 3600 AND bucket >= ?", (point, hour)
        )
        conn.execute(_REBUILD_HOURS, (point, hour))


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
    with transaction(conn):
        for point in points:
            deleted += conn.execute(
                f"DELETE FROM {table} WHERE point = ? AND {column} < ?{extra}", (point, cut)
            ).rowcount
    return deleted
