"""``control:``, the alarms, calculated points and control loops process (``plantd-control``,
see ``docs/control.md``).

It lives in the config package (not in ``plantd.control``) because :class:`PlantdConfig`
embeds it, and the control package imports the config package: the dependency runs one way.
The alarms, calculations and loops themselves are not here: they are in ``alarms.d/``,
``calc.d/`` and ``control.d/`` beside ``modules.d/``, read by ``plantd.control``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from plantd.config._markers import Duration, Ge, Gt, Le

if TYPE_CHECKING:
    from plantd.config._model import PathsConfig

__all__ = ["ControlConfig"]

_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class ControlConfig:
    """``control:``.

    The current state of every alarm and their history are kept in ``database`` (None: the
    default, ``<paths.data>/alarms.db``); history rows older than ``history_max_age`` or
    beyond the newest ``history_max_rows`` are deleted. A control write that gets no answer
    within ``write_timeout`` counts as failed (the loop tries again on its next period).
    ``status_interval`` is how often a status record goes out on ``event.control.status``.
    """

    database: Path | None = None
    history_max_age: Annotated[float, Duration, Gt(0)] = 90 * _DAY
    history_max_rows: Annotated[int, Ge(1000), Le(100_000_000)] = 1_000_000
    write_timeout: Annotated[float, Duration, Gt(0), Le(60)] = 2.0
    status_interval: Annotated[float, Duration, Gt(0)] = 10.0

    def database_path(self, paths: PathsConfig) -> Path:
        """``database``, or ``alarms.db`` in ``paths.data`` when it is not set."""
        return self.database if self.database is not None else paths.data / "alarms.db"
