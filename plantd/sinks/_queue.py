"""The disk queue of one sink: samples taken from the bus, kept until the upstream has them.

Format: one SQLite file (WAL, ``synchronous=FULL``) owned by one thread:

``entries(id, topic, payload, queued, count)``
    FIFO by ``id`` (AUTOINCREMENT: an id is never reused, even once the queue ran empty,
    so "after id N" always means "newer"). ``payload`` is a bus message in the version-1 bus
    encoding, with its epochs and seqs: a **batch** (kind ``B``) on ``data.<module>`` holding
    ``count`` samples of that module taken in one commit (what the intake writes: one row per
    module and publisher per commit, at most ``queue.batch_size`` samples), or a single
    **sample** on its point topic (``count`` 1: queue files written before batches, and topics
    without a point). ``queued`` is the wall-clock time it was committed. One row per batch
    rather than per sample is the point: at 10,000 samples/s a row per sample cost an insert,
    a read and a delete each, and most of the sink's time.
``cursors(topic, epoch, seq, ts, payload)``
    Per bus topic, the last sample taken (its numbering, for gap detection after a restart,
    and its payload, the value a Sparkplug DBIRTH announces).
``gaps(key, topic, old_epoch, old_seq, new_epoch, new_seq, since, until, found)``
    Holes in a topic's numbering still to be filled from the historian.
``events(id, topic, payload, queued)``
    Event records (``event.*``, the sink's ``events`` key) on their way, FIFO by ``id``:
    ``payload`` is the record in the bus encoding (kind ``J``). A table of their own, in the
    same file and the same intake transaction as the samples: they are delivered strictly in
    ``id`` order ahead of the samples' drain (they are few, and order matters to an alarm's
    state upstream), and the full-queue policy drops samples before them.
``event_cursors(topic, seq, payload)``
    Per event topic, the last record taken (its ``seq``, for gap detection after a restart,
    and the record, what a Sparkplug NBIRTH announces).
``event_gaps(key, topic, last, seq, since, until, found)``
    Holes in an event topic's numbering still to be filled from the alarm history; records
    found for them are queued with ``events.historical`` set.
``<queue file>.lock``
    Held (``flock``) while the queue is open: one process per queue (``_lock``).
``metric_types(device, point, datatype)``
    Sparkplug only: each metric's datatype as first born; it never changes (``_sparkplug``).
``counters(name, value)``
    Totals that survive restarts: ``taken``, ``delivered``, ``dropped``, ``lost``,
    ``repaired``, ``duplicates``, the Sparkplug ``bdseq``, and for events ``events_taken``,
    ``events_delivered``, ``events_dropped``, ``events_repaired`` and ``events_missed``
    (seqs never found).

Every intake commit (:meth:`DiskQueue.commit`) writes the entries, the cursors and the gaps
in one transaction: after a crash the queue and the cursors agree, so the gap between the
last committed sample and the next one seen is exactly what was lost in between.

Acknowledged entries are deleted (:meth:`DiskQueue.ack`) with ``synchronous=NORMAL``: that
delete reaches the disk with the next intake commit (a few hundred ms later) instead of costing
an fsync of its own per delivery. A power cut in between brings the entries back, and they are
sent again: a duplicate, which at-least-once allows; nothing taken is ever lost that way.

In memory, for the status and the metrics (``plantd.sinks._metrics``, read from another
thread): ``length`` (samples queued), ``bytes``, ``counters`` and ``oldest`` (when the oldest
entry still queued was committed, 0 when none), each updated by the operation that changes it,
on the queue's thread: reading them never touches SQLite.

Limits: past ``max_bytes`` (topic + payload + 24 bytes of row overhead per entry) the oldest
entries are deleted in the same transaction as the entries that overflowed; entries queued
longer than ``max_age`` go at the next :meth:`trim`. Both count in ``dropped`` (samples, not
rows). Lengths and counters count samples; ``bytes`` counts rows' bytes (events' too).
Events are dropped for ``max_bytes`` only once no sample is left to drop, and for
``max_age`` like samples; either way they count in ``events_dropped``; ``events`` is how
many are queued.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from plantd._dbthread import DatabaseThread
from plantd._sqlite import connect_migrated, transaction
from plantd.bus import Sample, decode_sample
from plantd.sinks._entries import (
    Entry,
    EventEntry,
    EventGap,
    Gap,
    Intake,
    entry_count,
    entry_samples,
)
from plantd.sinks._lock import QueueLock

__all__ = [
    "COUNTERS",
    "DiskQueue",
    "Entry",
    "EventEntry",
    "EventGap",
    "Gap",
    "Intake",
    "entry_count",
    "entry_samples",
]

MIGRATIONS = Migrations("plantd.sinks.queue")
_FIRST_COUNTERS = ("taken", "delivered", "dropped", "lost", "repaired", "duplicates", "bdseq")
EVENT_COUNTERS = (
    "events_taken",
    "events_delivered",
    "events_dropped",
    "events_missed",
    "events_repaired",
)
COUNTERS = _FIRST_COUNTERS + EVENT_COUNTERS
_OVERHEAD = 24
_SIZE = f"length(topic) + length(payload) + {_OVERHEAD}"


@MIGRATIONS(name="0001_initial")
def _initial(db: Database) -> None:
    db.execute(
        "CREATE TABLE entries (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
        "payload BLOB NOT NULL, queued REAL NOT NULL)"
    )
    db.execute(
        "CREATE TABLE cursors (topic TEXT PRIMARY KEY, epoch INTEGER NOT NULL, "
        "seq INTEGER NOT NULL, ts REAL NOT NULL, payload BLOB NOT NULL) WITHOUT ROWID"
    )
    db.execute(
        "CREATE TABLE gaps (key TEXT PRIMARY KEY, topic TEXT NOT NULL, old_epoch INTEGER, "
        "old_seq INTEGER, new_epoch INTEGER, new_seq INTEGER, since REAL, until REAL, "
        "found REAL NOT NULL) WITHOUT ROWID"
    )
    db.execute("CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    for name in _FIRST_COUNTERS:  # as in 0001's time: later counters come with their migration
        db.execute("INSERT INTO counters (name, value) VALUES (?, 0)", (name,))


@MIGRATIONS(name="0002_entry_count")
def _entry_count(db: Database) -> None:
    """Entries may hold a batch of samples; older rows hold one each."""
    db.execute("ALTER TABLE entries ADD COLUMN count INTEGER NOT NULL DEFAULT 1")


@MIGRATIONS(name="0003_metric_types")
def _metric_types(db: Database) -> None:
    """Sparkplug: a metric's datatype, fixed when it is first born, for the queue's life."""
    db.execute(
        "CREATE TABLE metric_types (device TEXT NOT NULL, point TEXT NOT NULL, "
        "datatype INTEGER NOT NULL, PRIMARY KEY (device, point)) WITHOUT ROWID"
    )


@MIGRATIONS(name="0004_events")
def _events(db: Database) -> None:
    """Event records (the ``events`` key) queued beside the samples, their cursors, counters."""
    db.execute(
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
        "payload BLOB NOT NULL, queued REAL NOT NULL)"
    )
    db.execute(
        "CREATE TABLE event_cursors (topic TEXT PRIMARY KEY, seq INTEGER, "
        "payload BLOB NOT NULL) WITHOUT ROWID"
    )
    for name in ("events_taken", "events_delivered", "events_dropped", "events_missed"):
        db.execute("INSERT OR IGNORE INTO counters (name, value) VALUES (?, 0)", (name,))


@MIGRATIONS(name="0005_event_repair")
def _event_repair(db: Database) -> None:
    """Event gaps to fill from the alarm history; found records are queued as historical."""
    db.execute("ALTER TABLE events ADD COLUMN historical INTEGER NOT NULL DEFAULT 0")
    db.execute(
        "CREATE TABLE event_gaps (key TEXT PRIMARY KEY, topic TEXT NOT NULL, "
        "last INTEGER NOT NULL, seq INTEGER NOT NULL, since REAL NOT NULL, until REAL NOT NULL, "
        "found REAL NOT NULL) WITHOUT ROWID"
    )
    db.execute("INSERT OR IGNORE INTO counters (name, value) VALUES ('events_repaired', 0)")


class DiskQueue:
    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        max_age: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._clock = clock
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.length = 0
        self.events = 0
        """Event records queued."""
        self.bytes = 0
        self.last_id = 0
        self.trimmed_events = 0
        self.last_event_id = 0
        """The newest event record's id (0: none queued since the queue was opened empty)."""
        """Event records the last :meth:`trim` dropped (its return value counts samples)."""
        self.oldest = 0.0
        """When the oldest entry still queued was committed (wall clock); 0.0 if none."""
        self._lock = QueueLock(path)  # one process per queue (SinkAlreadyRunning)
        try:
            self._db = DatabaseThread("plantd-sink-queue", self._open)
            self._db.call(self._load)
        except BaseException:
            self._lock.release()
            raise

    def _open(self) -> sqlite3.Connection:
        return connect_migrated(self.path, MIGRATIONS)

    def _load(self, conn: sqlite3.Connection) -> None:
        self.counters.update(dict(conn.execute("SELECT name, value FROM counters")))
        length, size, last = conn.execute(
            f"SELECT coalesce(sum(count), 0), coalesce(sum({_SIZE}), 0), coalesce(max(id), 0) "
            "FROM entries"
        ).fetchone()
        events, event_size, last_event = conn.execute(
            f"SELECT count(*), coalesce(sum({_SIZE}), 0), coalesce(max(id), 0) FROM events"
        ).fetchone()
        self.last_event_id = int(last_event)
        self.length, self.bytes, self.last_id = int(length), int(size), int(last)
        self.events = int(events)
        self.bytes += int(event_size)
        self.oldest = _oldest(conn)

    # -- the state kept for the intake (read once at start) ----------------------------------

    def cursors(self) -> dict[str, tuple[Sample, bytes]]:
        rows = self._db.call(lambda c: c.execute("SELECT topic, payload FROM cursors").fetchall())
        return {topic: (decode_sample(payload), bytes(payload)) for topic, payload in rows}

    def event_cursors(self) -> dict[str, tuple[int | None, bytes]]:
        """The last record taken per event topic: its ``seq`` (None if it has none) and its
        payload (bus record encoding)."""
        rows = self._db.call(
            lambda c: c.execute("SELECT topic, seq, payload FROM event_cursors").fetchall()
        )
        return {topic: (seq, bytes(payload)) for topic, seq, payload in rows}

    def event_gaps(self) -> list[EventGap]:
        rows = self._db.call(
            lambda c: c.execute(
                "SELECT topic, last, seq, since, until, found FROM event_gaps ORDER BY found"
            ).fetchall()
        )
        return [EventGap(*row) for row in rows]

    def gaps(self) -> list[Gap]:
        rows = self._db.call(
            lambda c: c.execute(
                "SELECT topic, old_epoch, old_seq, new_epoch, new_seq, since, until, found "
                "FROM gaps ORDER BY found"
            ).fetchall()
        )
        return [Gap(*row) for row in rows]

    # -- intake ------------------------------------------------------------------------------

    async def commit(self, intake: Intake) -> int:
        """Write one intake in one transaction; returns how many samples of old entries
        were dropped for ``max_bytes`` (``intake.dropped`` is counted too, not returned)."""
        return await self._db.run(lambda conn: self._commit(conn, intake))

    def commit_now(self, intake: Intake) -> int:
        return self._db.call(lambda conn: self._commit(conn, intake))

    def _commit(self, conn: sqlite3.Connection, intake: Intake) -> int:
        now = self._clock()
        counts = dict.fromkeys(COUNTERS, 0)
        rows = [(topic, payload, now, entry_count(payload)) for topic, payload in intake.entries]
        with transaction(conn):
            conn.executemany(
                "INSERT INTO entries (topic, payload, queued, count) VALUES (?, ?, ?, ?)", rows
            )
            conn.executemany(
                "INSERT OR REPLACE INTO cursors (topic, epoch, seq, ts, payload) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (topic, s.epoch, s.seq, s.timestamp, payload)
                    for topic, (s, payload) in intake.cursors.items()
                ],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO gaps (key, topic, old_epoch, old_seq, new_epoch, "
                "new_seq, since, until, found) VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (g.key, g.topic, g.old_epoch, g.old_seq, g.new_epoch, g.new_seq, g.since,
                     g.until, g.found)
                    for g in intake.new_gaps
                ],
            )  # fmt: skip
            conn.executemany(
                "DELETE FROM gaps WHERE key = ?", [(g.key,) for g, _, _ in intake.closed_gaps]
            )
            conn.executemany(
                "INSERT INTO events (topic, payload, queued, historical) VALUES (?, ?, ?, ?)",
                [(topic, payload, now, 0) for topic, payload in intake.events]
                + [(topic, payload, now, 1) for topic, payload in intake.repaired_events],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO event_gaps (key, topic, last, seq, since, until, found) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(g.key, g.topic, g.last, g.seq, g.since, g.until, g.found)
                 for g in intake.new_event_gaps],
            )  # fmt: skip
            conn.executemany(
                "DELETE FROM event_gaps WHERE key = ?",
                [(g.key,) for g, _, _ in intake.closed_event_gaps],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO event_cursors (topic, seq, payload) VALUES (?, ?, ?)",
                [(topic, seq, payload) for topic, (seq, payload) in intake.event_cursors.items()],
            )
            counts["events_taken"] = len(intake.events)
            counts["events_repaired"] = len(intake.repaired_events)
            counts["events_missed"] = intake.events_missed
            added = sum(len(t) + len(p) + _OVERHEAD for t, p in intake.entries)
            added += sum(
                len(t) + len(p) + _OVERHEAD for t, p in intake.events + intake.repaired_events
            )
            samples = sum(row[3] for row in rows)
            repaired = sum(r for _, r, _ in intake.closed_gaps)
            counts["taken"] = samples - repaired
            counts["repaired"] = repaired
            counts["lost"] = sum(lost for _, _, lost in intake.closed_gaps)
            counts["duplicates"] = intake.duplicates
            length, size = self.length + samples, self.bytes + added
            events = self.events + len(intake.events) + len(intake.repaired_events)
            if size > self.max_bytes:
                dropped, freed = _drop_oldest(conn, size - self.max_bytes)
                counts["dropped"] = dropped
                length, size = length - dropped, size - freed
            if size > self.max_bytes:  # no sample left to drop: the oldest events go
                dropped, freed = _drop_oldest_events(conn, size - self.max_bytes)
                counts["events_dropped"] = dropped
                events, size = events - dropped, size - freed
            _add_counters(
                conn,
                {
                    **counts,
                    "dropped": counts["dropped"] + intake.dropped,
                    "events_dropped": counts["events_dropped"] + intake.events_dropped,
                },
            )
            last = conn.execute("SELECT coalesce(max(id), 0) FROM entries").fetchone()[0]
            last_event = self.last_event_id
            if intake.events or intake.repaired_events:
                last_event = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
            oldest = _oldest(conn) if rows or counts["dropped"] else self.oldest
        self.oldest = oldest
        self.length, self.bytes, self.last_id = length, size, max(self.last_id, int(last))
        self.events = events
        self.last_event_id = max(self.last_event_id, int(last_event))
        for name, value in counts.items():
            self.counters[name] += value
        self.counters["dropped"] += intake.dropped
        self.counters["events_dropped"] += intake.events_dropped
        return counts["dropped"]

    async def trim(self) -> int:
        """Drop entries older than ``max_age``; returns how many."""
        return await self._db.run(self._trim)

    def _trim(self, conn: sqlite3.Connection) -> int:
        cutoff = self._clock() - self.max_age
        with transaction(conn):
            count, size = conn.execute(
                f"SELECT coalesce(sum(count), 0), coalesce(sum({_SIZE}), 0) FROM entries "
                "WHERE queued < ?",
                (cutoff,),
            ).fetchone()
            if count:
                conn.execute("DELETE FROM entries WHERE queued < ?", (cutoff,))
                _add_counters(conn, {"dropped": count})
            events, event_size = conn.execute(
                f"SELECT count(*), coalesce(sum({_SIZE}), 0) FROM events WHERE queued < ?",
                (cutoff,),
            ).fetchone()
            if events:
                conn.execute("DELETE FROM events WHERE queued < ?", (cutoff,))
                _add_counters(conn, {"events_dropped": events})
            oldest = _oldest(conn) if count else self.oldest
        self.oldest = oldest
        self.length -= count
        self.events -= events
        self.bytes -= size + event_size
        self.counters["dropped"] += count
        self.counters["events_dropped"] += events
        self.trimmed_events = int(events)
        return int(count)

    # -- delivery ----------------------------------------------------------------------------

    async def peek(self, after: int, limit: int, upto: int | None = None) -> list[Entry]:
        """The oldest entries with ``after < id`` (``<= upto``) holding at most ``limit``
        samples together — but always the first one, whatever its count."""

        def job(conn: sqlite3.Connection) -> list[Entry]:
            sql = "SELECT id, topic, payload, count FROM entries WHERE id > ?"
            args: list[Any] = [after]
            if upto is not None:
                sql += " AND id <= ?"
                args.append(upto)
            sql += " ORDER BY id LIMIT ?"
            args.append(max(1, limit))  # every entry holds at least one sample
            entries: list[Entry] = []
            total = 0
            for entry_id, topic, payload, count in conn.execute(sql, args):
                total += count
                if entries and total > limit:
                    break
                entries.append(Entry(entry_id, topic, bytes(payload), count))
            return entries

        return await self._db.run(job)

    async def peek_events(self, after: int, limit: int) -> list[EventEntry]:
        """The oldest queued event records with ``after < id``, at most ``limit``."""

        def job(conn: sqlite3.Connection) -> list[EventEntry]:
            rows = conn.execute(
                "SELECT id, topic, payload, queued, historical FROM events WHERE id > ? "
                "ORDER BY id LIMIT ?",
                (after, max(1, limit)),
            )
            return [
                EventEntry(i, topic, bytes(payload), queued, bool(historical))
                for i, topic, payload, queued, historical in rows
            ]

        return await self._db.run(job)

    async def ack(
        self,
        entries: Sequence[Entry],
        *,
        duplicates: int = 0,
        events: Sequence[EventEntry] = (),
    ) -> int:
        """Delete delivered entries (and event records); returns how many samples were still
        there (not dropped meanwhile)."""
        return await self._db.run(lambda conn: self._ack(conn, entries, duplicates, events))

    def _ack(
        self,
        conn: sqlite3.Connection,
        entries: Sequence[Entry],
        duplicates: int,
        events: Sequence[EventEntry] = (),
    ) -> int:
        # No fsync of its own (see the module's docstring): lost, it means a duplicate.
        conn.execute("PRAGMA synchronous = NORMAL")
        try:
            with transaction(conn):
                removed = size = 0
                ids = [entry.id for entry in entries]
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    found = conn.execute(
                        f"SELECT coalesce(sum(count), 0), coalesce(sum({_SIZE}), 0) "
                        f"FROM entries WHERE id IN ({marks})",
                        chunk,
                    ).fetchone()
                    conn.execute(f"DELETE FROM entries WHERE id IN ({marks})", chunk)
                    removed += int(found[0])
                    size += int(found[1])
                event_ids = [event.id for event in events]
                removed_events = 0
                for start in range(0, len(event_ids), 500):
                    chunk = event_ids[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    found = conn.execute(
                        f"SELECT count(*), coalesce(sum({_SIZE}), 0) FROM events "
                        f"WHERE id IN ({marks})",
                        chunk,
                    ).fetchone()
                    conn.execute(f"DELETE FROM events WHERE id IN ({marks})", chunk)
                    removed_events += int(found[0])
                    size += int(found[1])
                _add_counters(
                    conn,
                    {
                        "delivered": removed,
                        "duplicates": duplicates,
                        "events_delivered": removed_events,
                    },
                )
                oldest = _oldest(conn)
        finally:
            conn.execute("PRAGMA synchronous = FULL")
        self.length -= removed
        self.events -= removed_events
        self.counters["events_delivered"] += removed_events
        self.bytes -= size
        self.oldest = oldest
        self.counters["delivered"] += removed
        self.counters["duplicates"] += duplicates
        return removed

    def next_counter(self, name: str) -> int:
        """Add one to a persistent counter (e.g. ``bdseq``) and return its new value."""

        def job(conn: sqlite3.Connection) -> int:
            conn.execute("UPDATE counters SET value = value + 1 WHERE name = ?", (name,))
            return int(
                conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0]
            )

        value = self._db.call(job)
        self.counters[name] = value
        return value

    def metric_types(self) -> dict[tuple[str, str], int]:
        """Sparkplug metrics' datatypes, by (device, point)."""
        rows = self._db.call(
            lambda c: c.execute("SELECT device, point, datatype FROM metric_types").fetchall()
        )
        return {(device, point): int(datatype) for device, point, datatype in rows}

    async def save_metric_types(self, types: Sequence[tuple[str, str, int]]) -> None:
        """Keep new ``(device, point, datatype)`` for good (an existing one is not changed)."""

        def job(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(
                    "INSERT OR IGNORE INTO metric_types (device, point, datatype) VALUES (?, ?, ?)",
                    types,
                )

        await self._db.run(job)

    def close(self) -> None:
        self._db.close()
        self._lock.release()


def _add_counters(conn: sqlite3.Connection, counts: dict[str, int]) -> None:
    conn.executemany(
        "UPDATE counters SET value = value + ? WHERE name = ?",
        [(value, name) for name, value in counts.items() if value],
    )


def _oldest(conn: sqlite3.Connection) -> float:
    """When the first entry still queued was committed; 0.0 if none (one row, by key)."""
    row = conn.execute("SELECT queued FROM entries ORDER BY id LIMIT 1").fetchone()
    return float(row[0]) if row is not None else 0.0


def _drop_oldest_events(conn: sqlite3.Connection, excess: int) -> tuple[int, int]:
    """Delete the oldest event records until ``excess`` bytes are freed: (records, bytes)."""
    dropped = freed = 0
    last = 0
    for event_id, size in conn.execute(f"SELECT id, {_SIZE} FROM events ORDER BY id").fetchall():
        if freed >= excess:
            break
        last = event_id
        dropped += 1
        freed += size
    conn.execute("DELETE FROM events WHERE id <= ?", (last,))
    return dropped, freed


def _drop_oldest(conn: sqlite3.Connection, excess: int) -> tuple[int, int]:
    """Delete the oldest entries until ``excess`` bytes are freed: (samples, bytes)."""
    dropped = freed = 0
    last = 0
    while freed < excess:
        rows: Iterable[tuple[int, int, int]] = conn.execute(
            f"SELECT id, count, {_SIZE} FROM entries WHERE id > ? ORDER BY id LIMIT 1000",
            (last,),
        ).fetchall()
        if not rows:
            break
        for entry_id, count, size in rows:
            last = entry_id
            dropped += count
            freed += size
            if freed >= excess:
                break
    conn.execute("DELETE FROM entries WHERE id <= ?", (last,))
    return dropped, freed
