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
``<queue file>.lock``
    Held (``flock``) while the queue is open: one process per queue (``_lock``).
``metric_types(device, point, datatype)``
    Sparkplug only: each metric's datatype as first born; it never changes (``_sparkplug``).
``counters(name, value)``
    Totals that survive restarts: ``taken``, ``delivered``, ``dropped``, ``lost``,
    ``repaired``, ``duplicates``, and the Sparkplug ``bdseq``.

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
rows). Lengths and counters count samples; ``bytes`` counts rows' bytes.
"""

from __future__ import annotations

import sqlite3
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from plantd._dbthread import DatabaseThread
from plantd._sqlite import connect_migrated, transaction
from plantd.bus import Sample, SampleValue, decode_batch, decode_sample, encode_batch, is_batch
from plantd.sinks._lock import QueueLock

__all__ = ["COUNTERS", "DiskQueue", "Entry", "Gap", "Intake", "entry_count", "entry_samples"]

MIGRATIONS = Migrations("plantd.sinks.queue")
COUNTERS = ("taken", "delivered", "dropped", "lost", "repaired", "duplicates", "bdseq")
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
    for name in COUNTERS:
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


BatchItem = tuple[bytes, SampleValue, float, int, int]
"""A sample as a batch item (``plantd.bus.encode_batch``): the point's name prefixed by its
length byte, the value, the timestamp, the quality and the seq."""

_BATCH_COUNT = struct.Struct("<I")  # a batch payload's sample count, at offset 6


def entry_count(payload: bytes) -> int:
    """How many samples a queued payload holds: a batch's count, else 1 (a sample)."""
    if is_batch(payload):
        return int(_BATCH_COUNT.unpack_from(payload, 6)[0])
    return 1


def entry_samples(topic: str, payload: bytes) -> list[tuple[str, Sample]]:
    """The samples a queued entry holds, each with its point topic."""
    if not is_batch(payload):
        return [(topic, decode_sample(payload))]
    prefix = topic + "."
    return [(prefix + name, sample) for name, sample in decode_batch(payload)[1]]


@dataclass(frozen=True, slots=True)
class Gap:
    """Samples of ``topic`` missing between two taken ones: those of ``old_epoch`` after
    ``old_seq``, and (when the publisher restarted in between) those of ``new_epoch`` before
    ``new_seq``. With ``old_epoch == new_epoch`` it is the plain range between the two."""

    topic: str
    old_epoch: int
    old_seq: int
    new_epoch: int
    new_seq: int
    since: float
    until: float
    found: float

    @property
    def key(self) -> str:
        return f"{self.topic}|{self.old_epoch}|{self.old_seq}|{self.new_epoch}|{self.new_seq}"

    def wants(self, sample: Sample) -> bool:
        if self.old_epoch == self.new_epoch:
            return sample.epoch == self.old_epoch and self.old_seq < sample.seq < self.new_seq
        if sample.epoch == self.old_epoch:
            return sample.seq > self.old_seq
        return sample.epoch == self.new_epoch and sample.seq < self.new_seq

    def known_missing(self) -> set[int]:
        """The seqs sure to be missing: the range in the same epoch, else 1..new_seq-1."""
        if self.old_epoch == self.new_epoch:
            return set(range(self.old_seq + 1, self.new_seq))
        return set(range(1, self.new_seq))


@dataclass(frozen=True, slots=True)
class Entry:
    """One queued row: a sample on its point topic, or a batch of ``count`` on a module's."""

    id: int
    topic: str
    payload: bytes
    count: int = 1


@dataclass(slots=True)
class Intake:
    """What one intake commit writes (built by the forwarder between two commits).

    ``entries`` are ``(topic, payload)`` bus messages, ready to queue: a sample on its point
    topic, or a batch on ``data.<module>``. The intake gathers samples in ``batches``, by
    ``(data.<module>, epoch)``, as batch items; :meth:`seal` turns them into entries.
    """

    entries: list[tuple[str, bytes]] = field(default_factory=list)
    cursors: dict[str, tuple[Sample, bytes]] = field(default_factory=dict)
    new_gaps: list[Gap] = field(default_factory=list)
    closed_gaps: list[tuple[Gap, int, int]] = field(default_factory=list)  # (gap, repaired, lost)
    duplicates: int = 0
    dropped: int = 0
    """Samples dropped from memory while commits failed (``IntakeState.restore``): never
    taken, so they count in ``dropped`` only, with the next commit that succeeds."""
    batches: dict[tuple[str, int], list[BatchItem]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(
            self.entries
            or self.batches
            or self.cursors
            or self.new_gaps
            or self.closed_gaps
            or self.dropped
        )

    def seal(self, batch_size: int) -> None:
        """Encode the gathered batches as entries of at most ``batch_size`` samples each."""
        for (topic, epoch), items in self.batches.items():
            for start in range(0, len(items), batch_size):
                self.entries.append((topic, encode_batch(epoch, items[start : start + batch_size])))
        self.batches = {}


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
        self.bytes = 0
        self.last_id = 0
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
        self.length, self.bytes, self.last_id = int(length), int(size), int(last)
        self.oldest = _oldest(conn)

    # -- the state kept for the intake (read once at start) ----------------------------------

    def cursors(self) -> dict[str, tuple[Sample, bytes]]:
        rows = self._db.call(lambda c: c.execute("SELECT topic, payload FROM cursors").fetchall())
        return {topic: (decode_sample(payload), bytes(payload)) for topic, payload in rows}

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
            added = sum(len(t) + len(p) + _OVERHEAD for t, p in intake.entries)
            samples = sum(row[3] for row in rows)
            repaired = sum(r for _, r, _ in intake.closed_gaps)
            counts["taken"] = samples - repaired
            counts["repaired"] = repaired
            counts["lost"] = sum(lost for _, _, lost in intake.closed_gaps)
            counts["duplicates"] = intake.duplicates
            length, size = self.length + samples, self.bytes + added
            if size > self.max_bytes:
                dropped, freed = _drop_oldest(conn, size - self.max_bytes)
                counts["dropped"] = dropped
                length, size = length - dropped, size - freed
            _add_counters(conn, {**counts, "dropped": counts["dropped"] + intake.dropped})
            last = conn.execute("SELECT coalesce(max(id), 0) FROM entries").fetchone()[0]
            oldest = _oldest(conn) if rows or counts["dropped"] else self.oldest
        self.oldest = oldest
        self.length, self.bytes, self.last_id = length, size, max(self.last_id, int(last))
        for name, value in counts.items():
            self.counters[name] += value
        self.counters["dropped"] += intake.dropped
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
            oldest = _oldest(conn) if count else self.oldest
        self.oldest = oldest
        self.length -= count
        self.bytes -= size
        self.counters["dropped"] += count
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

    async def ack(self, entries: Sequence[Entry], *, duplicates: int = 0) -> int:
        """Delete delivered entries; returns how many samples were still there (not dropped
        meanwhile)."""
        return await self._db.run(lambda conn: self._ack(conn, entries, duplicates))

    def _ack(self, conn: sqlite3.Connection, entries: Sequence[Entry], duplicates: int) -> int:
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
                _add_counters(conn, {"delivered": removed, "duplicates": duplicates})
                oldest = _oldest(conn)
        finally:
            conn.execute("PRAGMA synchronous = FULL")
        self.length -= removed
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
