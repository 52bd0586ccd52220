"""``metrics:`` and ``logger:``, what every process reports and where it is gathered
(``plantd-logger``, see ``docs/observability.md``).

In the config package for the same reason as ``historian:``: :class:`PlantdConfig` embeds them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from plantd.config._location import KeyPath
from plantd.config._markers import Duration, Ge, Gt, Le, Size
from plantd.config._network import parse_listen

if TYPE_CHECKING:
    from plantd.config._model import PathsConfig

__all__ = ["LoggerConfig", "MetricsConfig"]

_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """``metrics:``.

    Every plantd process keeps its metrics (``prometheus_client``) and, when ``enabled``,
    publishes a snapshot of them on the bus every ``interval`` (topic ``metrics.<source>``).
    ``plantd-logger`` gathers the snapshots and serves them all on one OpenMetrics endpoint
    (``logger.listen``).
    """

    enabled: bool = True
    interval: Annotated[float, Duration, Gt(0), Le(300)] = 5.0


@dataclass(frozen=True, slots=True)
class LoggerConfig:
    """``logger:``, the log store and the metrics endpoint (``plantd-logger``).

    Records published on ``log.*`` are kept in ``database`` (None: ``<paths.data>/logs.db``),
    written at most ``batch_interval`` after they arrive. Records older than ``max_age`` go;
    when the file holds more than ``max_bytes``, the oldest go first. ``listen`` is the
    ``HOST:PORT`` of the HTTP endpoint serving ``/metrics`` (every process's metrics) — port
    ``0`` takes any free port, written to ``logger-endpoints.json`` in ``paths.run``; empty:
    no endpoint.
    """

    database: Path | None = None
    max_bytes: Annotated[int, Size, Ge(65_536)] = 64 * 1_048_576
    max_age: Annotated[float, Duration, Gt(0)] = 14 * _DAY
    batch_interval: Annotated[float, Duration, Gt(0), Le(10)] = 0.2
    listen: str = "127.0.0.1:9798"

    def database_path(self, paths: PathsConfig) -> Path:
        """``database``, or ``logs.db`` in ``paths.data`` when it is not set."""
        return self.database if self.database is not None else paths.data / "logs.db"

    def listen_address(self) -> tuple[str, int] | None:
        """``listen`` as (host, port), None when empty (call after :meth:`cross_check`)."""
        return parse_listen(self.listen)

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        """``listen`` is empty or ``HOST:PORT``."""
        if not self.listen:
            return
        if parse_listen(self.listen) is None:
            yield (
                ("listen",),
                f"expected HOST:PORT (port 0 to 65535, 0 for any free port) or empty, "
                f"got {self.listen!r}",
            )
