"""The historian: the local time series of every ``data.*`` sample, with rollups and
retention, queried over MDP (``org.plantd.Historian``) and ``plant history``.

See ``docs/historian.md``.
"""

from __future__ import annotations

from plantd.config import HistorianConfig
from plantd.historian._historian import STATUS_TOPIC, Historian, run_historian
from plantd.historian._rows import WIDTHS, Aggregate, from_row, rollup, to_row
from plantd.historian._service import SERVICE
from plantd.historian._store import HistoryStore

__all__ = [
    "SERVICE",
    "STATUS_TOPIC",
    "WIDTHS",
    "Aggregate",
    "Historian",
    "HistorianConfig",
    "HistoryStore",
    "from_row",
    "rollup",
    "run_historian",
    "to_row",
]
