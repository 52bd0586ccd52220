"""The log store: every process's log records in one SQLite file, batched, with retention.

Schema (named migrations; never edit one that has shipped):

``records(id, time, source, level, logger, message, fields)``
    ``id`` from ``AUTOINCREMENT``, so never reused: a follower's ``after_id`` stays valid even
    after every row was pruned. ``level`` is the index in :data:`plantd.telemetry.LEVELS`
    (0 debug … 4 critical), so "warning and above" is ``level >= 2``. ``fields`` is a JSON
    object of the record's other keys (module, point, unit, code, exc…), ``{}`` when none.
    Indexed by time, by (source, id) and by (level, id).

Writes go through one writer thread (:class:`~plantd._dbthread.DatabaseThread`) in batches,
one transaction each; reads use a read-only connection on a thread of its own, so a long
search never holds up a commit.

Retention. After every batch, if the pages in use (``page_count - freelist_count``) exceed
``max_bytes``, the oldest records go until about 90 % of it is in use, and ``PRAGMA
incremental_vacuum`` hands the freed pages back (the file is ``auto_vacuum = INCREMENTAL``),
so the file stays within about ``max_bytes`` plus one batch. :meth:`LogStore.prune` deletes
what is older than ``max_age`` (the logger calls it every minute).

A batch that cannot be committed (disk full, I/O error) is dropped, counted and logged once
— the store goes on with the next batch. The log line goes to the bus too and comes back here
as a record: logging only when the state changes keeps that from becoming a loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from plantd import _sqlite
from plantd._dbthread import DatabaseThread
from plantd.config import LoggerConfig
from plantd.logger._metrics_store import STORE_COUNTS
from plantd.telemetry import LEVELS

__all__ = [
    "BATCH_RECORDS",
    "MAX_FIELDS",
    "MAX_MESSAGE",
    "MIGRATIONS",
    "LogStore",
    "Row",
    "StoreStats",
    "level_number",
    "query_records",
    "store_summary",
    "to_row",
    "used_bytes",
]

log = logging.getLogger(__name__)

BATCH_RECORDS = 1000
"""A batch is written at ``batch_interval`` or once it holds this many records."""
MAX_MESSAGE = 16_384
"""Characters of a message kept; a longer one is cut (a runaway log line must not push the
rest of the history out of ``max_bytes``)."""
MAX_FIELDS = 65_536
"""Characters of the other fields (a traceback in ``exc``) kept, about."""
_KEEP = 0.9  # pruning by size goes down to this share of max_bytes
_KNOWN = frozenset(("time", "level", "source", "logger", "message"))
_ALIASES = {"warn": "warning", "fatal": "critical", "err": "error", "crit": "critical"}
COLUMNS = ("id", "time", "source", "level", "logger", "message", "fields")

Row = tuple[float, str, int, str, str, str]
"""``(time, source, level, logger, message, fields JSON)``, what a batch holds."""

MIGRATIONS = Migrations("plantd.logger")


@MIGRATIONS(name="0001_initial")
def _initial(db: Database) -> None:
    db.execute(
        """CREATE TABLE records (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            time REAL NOT NULL,
            source TEXT NOT NULL,
            level INTEGER NOT NULL,
            logger TEXT NOT NULL,
            message TEXT NOT NULL,
            fields TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX records_time ON records (time)")
    db.execute("CREATE INDEX records_source ON records (source, id)")
    db.execute("CREATE INDEX records_level ON records (level, id)")


def level_number(name: str) -> int | None:
    """The index of a level name in :data:`LEVELS` (any case; ``warn`` and ``fatal`` too),
    None if it is none of them."""
    lowered = name.strip().lower()
    lowered = _ALIASES.get(lowered, lowered)
    try:
        return LEVELS.index(lowered)
    except ValueError:
        return None


def _text(value: object) -> str:
    """``value`` as text SQLite can store (lone surrogates from JSON escapes replaced)."""
    text = value if isinstance(value, str) else str(value)
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode()
    return text


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more)"


def to_row(topic: str, record: Mapping[str, Any], received: float) -> Row:
    """A row from a record received on ``log.<source>.<level>``: what the record says, and
    where it says nothing usable, what the topic says (or the time it was received)."""
    _, _, rest = topic.partition(".")
    topic_source, _, topic_level = rest.rpartition(".")
    stamp = record.get("time")
    if isinstance(stamp, bool) or not isinstance(stamp, int | float) or not math.isfinite(stamp):
        stamp = received
    level = level_number(str(record.get("level", "")))
    if level is None:
        level = level_number(topic_level)
    source = record.get("source")
    extra = {key: value for key, value in record.items() if key not in _KNOWN}
    return (
        float(stamp),
        _text(source if isinstance(source, str) and source else topic_source),
        LEVELS.index("info") if level is None else level,
        _text(record.get("logger", "")),
        _cut(_text(record.get("message", "")), MAX_MESSAGE),
        _fields(extra),
    )


def _fields(extra: dict[str, Any]) -> str:
    """The other keys as a JSON object; a value too long to keep whole is cut."""
    if not extra:
        return "{}"
    text = _text(json.dumps(extra, ensure_ascii=False, sort_keys=True, default=str))
    if len(text) <= MAX_FIELDS:
        return text
    share = MAX_FIELDS // len(extra)
    cut = {k: v if len(json.dumps(v, default=str)) <= share else _cut(str(v), share)
           for k, v in extra.items()}  # fmt: skip
    return _text(json.dumps(cut, ensure_ascii=False, sort_keys=True, default=str))


@dataclass(slots=True)
class StoreStats:
    """What the writer has done (plain ints: read them from any thread)."""

    stored: int = 0
    batches: int = 0
    failed_batches: int = 0
    lost: int = 0  # records in batches that could not be committed
    pruned_by_age: int = 0
    pruned_by_size: int = 0
    last_error: str | None = None
    used_bytes: int = 0


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes in pages that hold data (the file's pages less the free list)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def _open(path: Path, max_bytes: int) -> sqlite3.Connection:
    conn = _sqlite.connect(path)
    try:
        # The WAL counts against the disk too: checkpoint after about a tenth of max_bytes
        # (SQLite's default, 1000 pages, at most) and cut the file back to that size after.
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute(
            f"PRAGMA wal_autocheckpoint = {max(16, min(1000, max_bytes // 10 // page_size))}"
        )
        conn.execute(f"PRAGMA journal_size_limit = {max_bytes // 10}")
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
            # WAL is set before any table exists, which keeps auto_vacuum from taking effect
            # by itself: a VACUUM applies it (cheap on a new file; once on an old one).
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("VACUUM")
        _sqlite.migrate(conn, MIGRATIONS)
    except BaseException:
        conn.close()
        raise
    return conn


class LogStore:
    """The log file: :meth:`submit` batches from the event loop, :meth:`read` queries.

    ``clock`` is the wall clock that age retention measures against (a test passes its own).
    """

    def __init__(
        self, path: Path, config: LoggerConfig, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.config = config
        self.stats = StoreStats()
        self._clock = clock
        self._writer = DatabaseThread("plantd-logger-writer", lambda: _open(path, config.max_bytes))
        try:
            self.stats.used_bytes = self._writer.call(used_bytes)
            self._reader = DatabaseThread(
                "plantd-logger-reader", lambda: _sqlite.connect(path, readonly=True)
            )
        except BaseException:
            self._writer.close()
            raise

    # -- writes ------------------------------------------------------------------------------

    def write(self, rows: Sequence[Row]) -> int:
        """Commit ``rows`` (blocks); returns how many were stored (0 if the batch was lost)."""
        return self._writer.call(lambda conn: self._write(conn, rows))

    def submit(self, rows: Sequence[Row]) -> asyncio.Future[int]:
        """Queue ``rows`` for the writer and return at once (call from the event loop)."""
        return asyncio.wrap_future(self._writer.submit(lambda conn: self._write(conn, rows)))

    def _write(self, conn: sqlite3.Connection, rows: Sequence[Row]) -> int:
        stats = self.stats
        try:
            with _sqlite.transaction(conn):
                conn.executemany(
                    "INSERT INTO records (time, source, level, logger, message, fields) "
                    "VALUES (?,?,?,?,?,?)",
                    rows,
                )
        except sqlite3.Error as exc:
            if stats.last_error is None:  # once per spell of failures: see the module doc
                log.error("logger: a batch of %d record(s) was lost: %s", len(rows), exc)
            stats.failed_batches += 1
            stats.lost += len(rows)
            stats.last_error = f"{type(exc).__name__}: {exc}"
            self._make_room(conn)
            return 0
        if stats.last_error is not None:
            log.info("logger: commits succeed again (after: %s)", stats.last_error)
            stats.last_error = None
        stats.batches += 1
        stats.stored += len(rows)
        counts = STORE_COUNTS.stored
        for row in rows:
            counts[LEVELS[row[2]]] += 1
        try:
            self._bound_size(conn)
        except sqlite3.Error as exc:  # stored all the same; the next batch tries again
            _sqlite.rollback(conn)
            log.debug("logger: cannot apply max_bytes now: %s", exc)
        return len(rows)

    def _make_room(self, conn: sqlite3.Connection) -> None:
        """After a failed commit (the disk may be full): give back the oldest tenth, so that
        the next batch may fit. Failing that too is only logged at debug level."""
        try:
            first, last = conn.execute("SELECT min(id), max(id) FROM records").fetchone()
            if first is not None:
                self._delete_through(conn, first + max(1, (last - first + 1) // 10) - 1, "size")
        except sqlite3.Error as exc:
            _sqlite.rollback(conn)
            log.debug("logger: cannot make room either: %s", exc)

    # -- retention ---------------------------------------------------------------------------

    def _bound_size(self, conn: sqlite3.Connection) -> None:
        """While the pages in use exceed ``max_bytes``, delete the oldest records, down to
        about 90 % of it, and give the freed pages back to the file system."""
        limit = self.config.max_bytes
        used = used_bytes(conn)
        while used > limit:
            count, first = conn.execute("SELECT count(*), min(id) FROM records").fetchone()
            if not count:
                break
            share = 1 - _KEEP * limit / used  # of the rows, assuming rows of about one size
            doomed = max(1, min(count, math.ceil(count * share)))
            self._delete_through(conn, first + doomed - 1, "size")
            used = used_bytes(conn)
        self.stats.used_bytes = STORE_COUNTS.database_bytes = used

    def _delete_through(self, conn: sqlite3.Connection, last_id: int, why: str) -> int:
        with _sqlite.transaction(conn):
            deleted = conn.execute("DELETE FROM records WHERE id <= ?", (last_id,)).rowcount
        conn.execute("PRAGMA incremental_vacuum")
        self._pruned(deleted, why)
        return deleted

    def _pruned(self, deleted: int, why: str) -> None:
        if why == "age":
            self.stats.pruned_by_age += deleted
        else:
            self.stats.pruned_by_size += deleted
        STORE_COUNTS.pruned += deleted

    def prune(self, now: float | None = None) -> int:
        """Delete the records older than ``max_age`` at ``now`` (default: the clock); blocks.
        Returns how many went."""
        return self._writer.call(lambda conn: self._prune(conn, now))

    async def prune_async(self, now: float | None = None) -> int:
        return await self._writer.run(lambda conn: self._prune(conn, now))

    def _prune(self, conn: sqlite3.Connection, now: float | None) -> int:
        cutoff = (self._clock() if now is None else now) - self.config.max_age
        with _sqlite.transaction(conn):
            deleted = conn.execute("DELETE FROM records WHERE time < ?", (cutoff,)).rowcount
        if deleted:
            conn.execute("PRAGMA incremental_vacuum")
            self._pruned(deleted, "age")
        self.stats.used_bytes = STORE_COUNTS.database_bytes = used_bytes(conn)
        return int(deleted)

    # -- reads -------------------------------------------------------------------------------

    async def read(self, job: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``job(connection)`` on the reader thread (see :func:`query_records`)."""
        return await self._reader.run(job)

    def read_now(self, job: Callable[[sqlite3.Connection], Any]) -> Any:
        return self._reader.call(job)

    async def flush(self) -> None:
        """Return once every batch submitted before this call is committed."""
        await self._writer.run(lambda conn: None)

    def file_bytes(self) -> int:
        """The file's size on disk, its WAL included."""
        files = [self.path, self.path.with_name(self.path.name + "-wal")]
        return sum(f.stat().st_size for f in files if f.exists())

    def close(self) -> None:
        self._reader.close()
        self._writer.close()


def _record(row: tuple[Any, ...]) -> dict[str, Any]:
    ident, stamp, source, level, logger, message, fields = row
    return {
        "id": ident,
        "time": stamp,
        "source": source,
        "level": LEVELS[level] if 0 <= level < len(LEVELS) else str(level),
        "logger": logger,
        "message": message,
        "fields": json.loads(fields),
    }


def query_records(
    conn: sqlite3.Connection,
    *,
    since: float | None = None,
    until: float | None = None,
    source: str | None = None,
    level: int | None = None,
    contains: str | None = None,
    limit: int = 1000,
    after_id: int | None = None,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Records matching every filter given, at most ``limit``: newest (highest id) first, or
    oldest first when ``after_id`` is given (following: pass the last id seen).

    ``since <= time < until``. ``source`` ending in ``.`` is a prefix (``module.`` — every
    module); otherwise it names a source and those below it (``module.boiler`` matches
    ``module.boiler`` and ``module.boiler.x``, not ``module.boiler2``). ``level`` is the
    minimum (an index in LEVELS). ``contains`` matches text in the message, ASCII letters in
    any case.
    """
    where: list[str] = []
    args: list[Any] = []
    for clause, value in (
        ("time >= ?", since),
        ("time < ?", until),
        ("level >= ?", level),
        ("id > ?", after_id),
        ("id < ?", before_id),
    ):
        if value is not None:
            where.append(clause)
            args.append(value)
    if source:
        if source.endswith("."):
            where.append("substr(source, 1, ?) = ?")
            args += [len(source), source]
        else:
            where.append("(source = ? OR substr(source, 1, ?) = ?)")
            args += [source, len(source) + 1, source + "."]
    if contains:
        escaped = contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("message LIKE ? ESCAPE '\\'")
        args.append(f"%{escaped}%")
    order = "ASC" if after_id is not None else "DESC"
    cursor = conn.execute(
        f"SELECT {', '.join(COLUMNS)} FROM records "
        f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY id {order} LIMIT ?",
        [*args, limit],
    )
    return [_record(row) for row in cursor]


def store_summary(conn: sqlite3.Connection) -> dict[str, Any]:
    """Records held, the oldest and newest time, the last id and the pages in use."""
    count, oldest, newest = conn.execute(
        "SELECT count(*), min(time), max(time) FROM records"
    ).fetchone()
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
    return {
        "records": count,
        "oldest": oldest,
        "newest": newest,
        "last_id": int(row[0]) if row else 0,
        "used_bytes": used_bytes(conn),
    }
