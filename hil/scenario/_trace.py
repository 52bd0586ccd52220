"""What a scenario saw, over time: samples published by plantd, simulated values, step marks.

:class:`Trace` collects rows as the scenario runs; :func:`write_csv` writes them in long form,
one row per sample (``t,source,point,value,quality``: ``t`` in seconds from the first step,
``source`` ``bus`` or ``sim``), which any spreadsheet or pandas reads. The HTML page with the
plots is :mod:`hil.scenario._html`.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Mark", "Row", "Trace", "numeric", "write_csv"]

CSV_COLUMNS = ("t", "source", "point", "value", "quality")


@dataclass(frozen=True, slots=True)
class Row:
    t: float
    source: str
    """``bus`` (a sample plantd published) or ``sim`` (a value in a simulator)."""
    point: str
    value: Any
    quality: str
    """``good``, ``uncertain`` or ``bad`` for bus samples; empty for simulated values."""


@dataclass(frozen=True, slots=True)
class Mark:
    t: float
    label: str
    ok: bool | None = None


@dataclass
class Trace:
    patterns: Sequence[str] = ()
    rows: list[Row] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)

    def wants(self, source: str, point: str) -> bool:
        """Bus points are traced unless patterns say otherwise; simulated ones when named."""
        if not self.patterns:
            return source == "bus"
        return any(fnmatch.fnmatchcase(point, pattern) for pattern in self.patterns)

    def add(self, t: float, source: str, point: str, value: Any, quality: str = "") -> None:
        if self.wants(source, point):
            self.rows.append(Row(round(t, 4), source, point, value, quality))

    def mark(self, t: float, label: str, ok: bool | None = None) -> None:
        self.marks.append(Mark(round(t, 4), label, ok))

    def series(self) -> dict[tuple[str, str], list[Row]]:
        """Rows by (source, point), in time order, sorted by point."""
        grouped: dict[tuple[str, str], list[Row]] = {}
        for row in sorted(self.rows, key=lambda r: r.t):
            grouped.setdefault((row.source, row.point), []).append(row)
        return dict(sorted(grouped.items(), key=lambda item: (item[0][1], item[0][0])))


def numeric(value: Any) -> float | None:
    """A value as a number for plotting (true/false as 1/0), or None."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return json.dumps(value, sort_keys=True)


def write_csv(trace: Trace, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for row in sorted(trace.rows, key=lambda r: r.t):
            writer.writerow([f"{row.t:.4f}", row.source, row.point, _cell(row.value), row.quality])
