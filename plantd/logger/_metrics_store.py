"""The log store's metrics (docs/observability.md): records stored by level, records pruned,
the database's size.

The store counts in plain ints it keeps anyway (:data:`STORE_COUNTS`, updated once per
committed batch, never per record); a collector reads them when ``/metrics`` is scraped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from plantd.telemetry import LEVELS, REGISTRY

__all__ = ["STORE_COUNTS", "StoreCounts"]


@dataclass(slots=True)
class StoreCounts:
    """Process-wide counts of every log store (a test may open several; counters only grow)."""

    stored: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LEVELS, 0))
    pruned: int = 0
    database_bytes: int = 0  # of the store that committed last


STORE_COUNTS = StoreCounts()


class _StoreCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        stored = CounterMetricFamily(
            "plantd_logger_records", "Log records stored, by level.", labels=["level"]
        )
        for level, count in STORE_COUNTS.stored.items():
            stored.add_metric([level], count)
        yield stored
        yield CounterMetricFamily(
            "plantd_logger_records_pruned",
            "Log records deleted by retention (age or size).",
            value=STORE_COUNTS.pruned,
        )
        yield GaugeMetricFamily(
            "plantd_logger_database_bytes",
            "Bytes the log store's database holds in pages in use.",
            value=STORE_COUNTS.database_bytes,
        )


REGISTRY.register(_StoreCollector())
