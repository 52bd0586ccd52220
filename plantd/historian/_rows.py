"""Samples as rows, and rows as rollups (sans-IO: values in, values out).

Storage of a value by its bus value type (``kind``):

    f  float      REAL (NaN becomes NULL: SQLite has no NaN; ±inf stay)
    i  int        INTEGER (64-bit)
    b  bool       INTEGER 0/1
    s  str        TEXT
    n  None       NULL
    j  JSON       TEXT (arrays, objects, integers beyond 64 bits)

Rollup rules: a sample counts towards the minute and hour buckets it falls in when its value
is a finite int or float (not a bool) and its quality is good. A bucket's key is its start,
``floor(ts / width) * width``. :func:`rollup` folds a batch into per-bucket aggregates; the
store then merges them into the table (min of mins, max of maxes, sums and counts added), so
folding batch by batch gives the same result as folding everything at once. The store folds
batches into a :class:`RollupBuffer` (minute buckets; hours are merged from them) and merges
that into the table every few seconds rather than at every batch: one row per point and
bucket then costs an upsert per flush instead of one per batch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

from plantd.bus import Quality, Sample, SampleValue

__all__ = ["WIDTHS", "Aggregate", "RollupBuffer", "from_row", "rollup", "to_row"]

WIDTHS = (60, 3600)
"""Rollup resolutions, in seconds: a minute and an hour."""

RESOLUTIONS = {"minute": 60, "hour": 3600}


def to_row(value: SampleValue) -> tuple[str, object]:
    """``(kind, stored value)`` for a sample value."""
    if isinstance(value, bool):
        return "b", int(value)
    if isinstance(value, int):
        if -(2**63) <= value < 2**63:
            return "i", value
        return "j", json.dumps(value)
    if isinstance(value, float):
        return "f", None if math.isnan(value) else value
    if isinstance(value, str):
        return "s", value
    if value is None:
        return "n", None
    return "j", json.dumps(value, separators=(",", ":"))


def from_row(kind: str, stored: object) -> SampleValue:
    """The sample value a row holds (the inverse of :func:`to_row`)."""
    if kind == "f":
        return math.nan if stored is None else float(stored)  # type: ignore[arg-type]
    if kind == "b":
        return bool(stored)
    if kind == "j":
        value: SampleValue = json.loads(str(stored))
        return value
    if kind == "n":
        return None
    return stored  # type: ignore[return-value]


@dataclass(slots=True)
class Aggregate:
    min: float
    max: float
    sum: float
    count: int

    def add(self, value: float) -> None:
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        self.sum += value
        self.count += 1

    @property
    def mean(self) -> float:
        return self.sum / self.count


def rollup(rows: Iterable[tuple[int, Sample]]) -> dict[tuple[int, int, int], Aggregate]:
    """``(point id, sample)`` pairs -> ``{(point id, width, bucket start): Aggregate}``."""
    buffer = RollupBuffer()
    buffer.add(rows)
    return {
        (point, width, bucket): Aggregate(low, high, total, count)
        for point, width, bucket, low, high, total, count in buffer.take()
    }


RollupRow = tuple[int, int, int, float, float, float, int]
"""``(point, width, bucket, min, max, sum, count)``, as the ``rollups`` table has it."""


class RollupBuffer:
    """Minute aggregates of the samples folded in since the last :meth:`take` (by the rules
    above), and the oldest timestamp among them: where a rebuild from the raw samples would
    have to start if these aggregates were lost."""

    def __init__(self) -> None:
        self.minutes: dict[tuple[int, int], Aggregate] = {}
        self.since: float | None = None

    def __len__(self) -> int:
        return len(self.minutes)

    def add(self, rows: Iterable[tuple[int, Sample]]) -> float | None:
        """Fold ``(point id, sample)`` pairs in; returns their oldest timestamp that counted."""
        minutes = self.minutes
        good = Quality.GOOD
        oldest = math.inf
        for point, sample in rows:
            if sample.quality is not good:
                continue
            value = sample.value
            if type(value) is float:  # the common case first
                if value - value != 0.0:  # NaN or ±inf
                    continue
                number = value
            elif (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                number = float(value)
            else:
                continue
            stamp = sample.timestamp
            oldest = min(oldest, stamp)
            key = (point, int(stamp // 60) * 60)
            aggregate = minutes.get(key)
            if aggregate is None:
                minutes[key] = Aggregate(number, number, number, 1)
                continue
            if number < aggregate.min:
                aggregate.min = number
            elif number > aggregate.max:
                aggregate.max = number
            aggregate.sum += number
            aggregate.count += 1
        if oldest == math.inf:
            return None
        if self.since is None or oldest < self.since:
            self.since = oldest
        return oldest

    def take(self) -> list[RollupRow]:
        """Every minute and hour row to merge into the table; the buffer starts empty again."""
        hours: dict[tuple[int, int], Aggregate] = {}
        rows: list[RollupRow] = []
        for (point, bucket), a in self.minutes.items():
            rows.append((point, 60, bucket, a.min, a.max, a.sum, a.count))
            key = (point, bucket // 3600 * 3600)
            hour = hours.get(key)
            if hour is None:
                hours[key] = Aggregate(a.min, a.max, a.sum, a.count)
            else:
                hour.min = min(hour.min, a.min)
                hour.max = max(hour.max, a.max)
                hour.sum += a.sum
                hour.count += a.count
        rows += [(point, 3600, bucket, a.min, a.max, a.sum, a.count)
                 for (point, bucket), a in hours.items()]  # fmt: skip
        self.minutes, self.since = {}, None
        return rows
