"""``historian:``, the local time-series store (``plantd-historian``, see ``docs/historian.md``).

It lives in the config package (not in ``plantd.historian``) because :class:`PlantdConfig`
embeds it, and the historian package imports the config package: the dependency runs one way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from plantd.config._location import KeyPath
from plantd.config._markers import Duration, Ge, Gt, Le, Size

if TYPE_CHECKING:
    from plantd.config._model import PathsConfig

__all__ = ["HistorianConfig"]

_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class HistorianConfig:
    """``historian:``.

    Samples on the bus topics that start with ``prefix`` are kept in ``database`` (None: the
    default, ``<paths.data>/history.db``). They are written in one transaction per batch:
    when ``batch_interval`` has passed since the batch's first sample, or it holds
    ``batch_size`` samples — so a power cut loses at most one batch interval. Raw samples are
    kept ``raw_max_age``, minute rollups ``minute_max_age``, hour rollups ``hour_max_age``;
    when the database holds more than ``max_bytes``, the oldest raw samples go first.
    """

    database: Path | None = None
    prefix: str = "data."
    batch_interval: Annotated[float, Duration, Gt(0), Le(60)] = 1.0
    batch_size: Annotated[int, Ge(1), Le(1_000_000)] = 5000
    raw_max_age: Annotated[float, Duration, Gt(0)] = 7 * 24 * _HOUR
    minute_max_age: Annotated[float, Duration, Gt(0)] = 30 * 24 * _HOUR
    hour_max_age: Annotated[float, Duration, Gt(0)] = 730 * 24 * _HOUR
    max_bytes: Annotated[int, Size, Ge(1_048_576)] = 1_073_741_824
    maintenance_interval: Annotated[float, Duration, Gt(0)] = 60.0
    status_interval: Annotated[float, Duration, Gt(0)] = 10.0

    def database_path(self, paths: PathsConfig) -> Path:
        """``database``, or ``history.db`` in ``paths.data`` when it is not set."""
        return self.database if self.database is not None else paths.data / "history.db"

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        """Rollups exist to outlive raw data: each resolution is kept at least as long as the
        finer one."""
        if self.minute_max_age < self.raw_max_age:
            yield (
                ("minute_max_age",),
                f"must be at least raw_max_age ({self.raw_max_age:g} s), "
                f"got {self.minute_max_age:g} s",
            )
        if self.hour_max_age < self.minute_max_age:
            yield (
                ("hour_max_age",),
                f"must be at least minute_max_age ({self.minute_max_age:g} s), "
                f"got {self.hour_max_age:g} s",
            )
