"""The metrics every plantd process has (docs/observability.md): its log records published
and dropped, and when it started.

Records are counted in plain ints where they pass (:data:`COUNTS`), and read at collection
time: a log call costs no metric lookup."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from prometheus_client import Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from plantd.telemetry import LEVELS, REGISTRY

__all__ = ["COUNTS", "PROCESS_START_TIME", "LogCounts"]


class LogCounts:
    """Log records published (by level) and dropped by this process, since it started."""

    def __init__(self) -> None:
        self.published = dict.fromkeys(LEVELS, 0)
        self.dropped = 0


COUNTS = LogCounts()


class _LogCollector(Collector):
    def collect(self) -> Iterator[CounterMetricFamily]:
        published = CounterMetricFamily(
            "plantd_log_records_published",
            "Log records this process sent on the bus, by level.",
            labels=["level"],
        )
        for level, count in COUNTS.published.items():
            published.add_metric([level], count)
        yield published
        yield CounterMetricFamily(
            "plantd_log_records_dropped",
            "Log records dropped because the queue to the bus was full.",
            value=COUNTS.dropped,
        )


REGISTRY.register(_LogCollector())

PROCESS_START_TIME = Gauge(
    "plantd_process_start_time_seconds",
    "Unix time this process started.",
    registry=REGISTRY,
)


def _start_time() -> float:
    """When this process started, from /proc (Linux); else now, when this module loads."""
    try:
        with open(f"/proc/{os.getpid()}/stat", "rb") as stat:
            ticks = int(stat.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/stat", "rb") as system:
            boot = next(int(line.split()[1]) for line in system if line.startswith(b"btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


PROCESS_START_TIME.set(_start_time())
