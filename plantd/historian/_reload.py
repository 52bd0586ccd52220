"""What the historian takes from a re-read ``plantd.yaml`` on SIGHUP (``systemctl reload``).

Sans-IO: :func:`merge` gets the ``historian:`` section the historian runs with and the one just
read, and returns the one to run with from now on plus a line per change.

Applied live: retention (``raw_max_age``, ``minute_max_age``, ``hour_max_age``,
``max_bytes``: a retention pass runs at once with them), the batch bounds (``batch_interval``,
``batch_size``: from the next batch) and the periods of the housekeeping tasks
(``maintenance_interval``, ``status_interval``: from their next round). Need a restart:
``database`` (the open store) and ``prefix`` (the bus subscription), and every other section.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from plantd.config import HistorianConfig, PlantdConfig

__all__ = ["RESTART_KEYS", "RETENTION_KEYS", "Merged", "merge"]

RESTART_KEYS = ("database", "prefix")
RETENTION_KEYS = ("raw_max_age", "minute_max_age", "hour_max_age", "max_bytes")
_OTHER_SECTIONS = ("broker", "bus", "paths", "logging", "metrics", "security")


@dataclasses.dataclass(frozen=True)
class Merged:
    """The ``historian:`` settings to run with, and what changed."""

    settings: HistorianConfig
    applied: list[str]
    restart: list[str]

    @property
    def retention_changed(self) -> bool:
        """A retention pass is due now, with the new bounds."""
        return any(line.startswith(f"historian.{key}:") for key in RETENTION_KEYS
                   for line in self.applied)  # fmt: skip


def merge(running: PlantdConfig, read: PlantdConfig) -> Merged:
    """``running.historian`` with every live setting taken from ``read``."""
    applied: list[str] = []
    restart: list[str] = []
    live: dict[str, Any] = {}
    for field in dataclasses.fields(HistorianConfig):
        old, new = getattr(running.historian, field.name), getattr(read.historian, field.name)
        if old == new:
            continue
        line = f"historian.{field.name}: {old!r} -> {new!r}"
        if field.name in RESTART_KEYS:
            restart.append(line)
        else:
            live[field.name] = new
            applied.append(line)
    for section in _OTHER_SECTIONS:
        if getattr(running, section) != getattr(read, section):
            restart.append(f"{section}: changed")
    return Merged(dataclasses.replace(running.historian, **live), applied, restart)
