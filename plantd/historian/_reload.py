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

from plantd.config import HistorianConfig, PlantdConfig, section_changes, sections_changed

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
    historian = section_changes(
        "historian", running.historian, read.historian, lambda key: key not in RESTART_KEYS
    )
    restart = [*historian.restart, *sections_changed(running, read, _OTHER_SECTIONS)]
    return Merged(
        dataclasses.replace(running.historian, **historian.live), historian.applied, restart
    )
