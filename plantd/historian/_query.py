"""Reading the history: jobs that run on the reader connection's thread.

``query`` pages through one or more points (a glob such as ``pump1.*``), in point-name order
then time order, raw or rolled up; a page ends after ``limit`` rows and carries ``next``, the
key of its last row, to pass back as ``after`` for the following page (None on the last page).

Raw samples live in two tables (``_schema``): ``samples``, by point and time, and ``recent``,
by time, which holds the last ~30 s until the writer settles them. A raw read takes a point's
rows from ``samples`` along its key and the rows of ``recent`` in the time range with one scan
(``recent`` is small), and merges them; a sample in both (settled, then received again) is
given once.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Collection
from typing import Any, Literal

from plantd.bus import Quality, Sample
from plantd.historian._rows import RESOLUTIONS, from_row

__all__ = ["MAX_LIMIT", "RAW_COLUMNS", "ROLLUP_COLUMNS", "query", "samples_between", "summary"]

MAX_LIMIT = 10_000
RAW_COLUMNS = ["point", "timestamp", "value", "quality", "epoch", "seq"]
ROLLUP_COLUMNS = ["point", "bucket", "min", "max", "mean", "count"]

Resolution = Literal["raw", "minute", "hour"]
RawRow = tuple[float, str, Any, int, int, int]
"""``(ts, kind, stored value, quality, epoch, seq)``."""


def _recent_by_point(
    conn: sqlite3.Connection, points: Collection[int], since: float, until: float
) -> dict[int, list[RawRow]]:
    """The unsettled rows of ``points`` with ``since <= ts <= until``, by point, in order."""
    found: dict[int, list[RawRow]] = {}
    for ts, point, epoch, seq, kind, value, quality in conn.execute(
        "SELECT ts, point, epoch, seq, kind, value, quality FROM recent WHERE ts >= ? AND ts <= ?",
        (since, until),
    ):
        if point in points:
            found.setdefault(point, []).append((ts, kind, value, quality, epoch, seq))
    for rows in found.values():
        rows.sort(key=_order)
    return found


def _order(row: RawRow) -> tuple[float, int, int]:
    return (row[0], row[4], row[5])


def _merged(settled: list[RawRow], recent: list[RawRow], after: Any, limit: int) -> list[RawRow]:
    """The first ``limit`` rows of both (``settled`` already starts after ``after`` and holds
    at most ``limit``), in order, each key once."""
    if after is not None:
        recent = [row for row in recent if _order(row) > after]
    if not recent:
        return settled[:limit]
    seen = {_order(row) for row in settled}
    rows = settled + [row for row in recent if _order(row) not in seen]
    rows.sort(key=_order)
    return rows[:limit]


def query(
    conn: sqlite3.Connection,
    pattern: str,
    *,
    since: float,
    until: float,
    resolution: Resolution = "raw",
    limit: int = 1000,
    after: list[Any] | None = None,
) -> dict[str, Any]:
    """Rows of the points whose name matches ``pattern`` with time in ``[since, until]``."""
    points = conn.execute(
        "SELECT id, name FROM points WHERE name GLOB ? ORDER BY name", (pattern,)
    ).fetchall()
    raw = resolution == "raw"
    rows: list[list[Any]] = []
    more = False
    recent = _recent_by_point(conn, {p for p, _ in points}, since, until) if raw else {}
    for point, name in points:
        if after is not None and name < after[0]:
            continue
        key = after[1:] if after is not None and name == after[0] else None
        wanted = limit - len(rows) + 1
        if raw:
            found = _raw_rows(
                conn, point, recent.get(point, []), since=since, until=until, key=key, limit=wanted
            )
            rows.extend([name, *row] for row in found)
        else:
            found = _rollup_rows(
                conn,
                point,
                RESOLUTIONS[resolution],
                since=since,
                until=until,
                key=key,
                limit=wanted,
            )
            rows.extend([name, *row] for row in found)
        if len(rows) > limit:
            more = True
            del rows[limit:]
            break
    last = rows[-1] if more else None
    next_key = None
    if last is not None:
        next_key = [last[0], last[1], last[4], last[5]] if raw else [last[0], last[1]]
    return {
        "resolution": resolution,
        "columns": RAW_COLUMNS if raw else ROLLUP_COLUMNS,
        "rows": rows,
        "next": next_key,
    }


def _raw_rows(
    conn: sqlite3.Connection,
    point: int,
    recent: list[RawRow],
    *,
    since: float,
    until: float,
    key: list[Any] | None,
    limit: int,
) -> list[list[Any]]:
    sql = "SELECT ts, kind, value, quality, epoch, seq FROM samples WHERE point = ? AND ts >= ? "
    args: list[Any] = [point, since]
    if key is not None:
        sql += "AND (ts, epoch, seq) > (?, ?, ?) "
        args += key
    sql += "AND ts <= ? ORDER BY ts, epoch, seq LIMIT ?"
    args += [until, limit]
    settled: list[RawRow] = conn.execute(sql, args).fetchall()
    after = tuple(key) if key is not None else None
    return [
        [ts, _json_value(from_row(kind, value)), Quality(quality).label, epoch, seq]
        for ts, kind, value, quality, epoch, seq in _merged(settled, recent, after, limit)
    ]


def _rollup_rows(
    conn: sqlite3.Connection,
    point: int,
    width: int,
    *,
    since: float,
    until: float,
    key: list[Any] | None,
    limit: int,
) -> list[list[Any]]:
    # A bucket is included when it overlaps [since, until].
    sql = (
        "SELECT bucket, min, max, sum, count FROM rollups "
        "WHERE point = ? AND width = ? AND bucket > ? AND bucket <= ? "
    )
    args: list[Any] = [point, width, since - width, until]
    if key is not None:
        sql += "AND bucket > ? "
        args.append(key[0])
    sql += "ORDER BY bucket LIMIT ?"
    args.append(limit)
    return [
        [bucket, low, high, total / count, count]
        for bucket, low, high, total, count in conn.execute(sql, args)
    ]


def samples_between(
    conn: sqlite3.Connection, name: str, since: float, until: float
) -> list[Sample]:
    """Every raw sample of point ``name`` with ``since <= ts <= until``, with its numbering."""
    row = conn.execute("SELECT id FROM points WHERE name = ?", (name,)).fetchone()
    if row is None:
        return []
    point = row[0]
    settled: list[RawRow] = conn.execute(
        "SELECT ts, kind, value, quality, epoch, seq FROM samples "
        "WHERE point = ? AND ts >= ? AND ts <= ? ORDER BY ts, epoch, seq",
        (point, since, until),
    ).fetchall()
    recent = _recent_by_point(conn, (point,), since, until).get(point, [])
    return [
        Sample(from_row(kind, value), ts, Quality(quality), seq, epoch)
        for ts, kind, value, quality, epoch, seq in _merged(
            settled, recent, None, len(settled) + len(recent)
        )
    ]


def summary(conn: sqlite3.Connection) -> dict[str, Any]:
    """Counts for ``status``: points, and the bytes the database uses."""
    points = conn.execute("SELECT count(*) FROM points").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return {"points": points, "used_bytes": (pages - free) * size, "file_bytes": pages * size}


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
