"""The appliance's own health numbers, read when they are scraped: the data partition's free
and total bytes, and the CPU temperature where the kernel reports one (a Raspberry Pi).

Nothing is sampled in the background: each collection costs one ``statvfs`` and one small
file read, and only when someone asks (``/metrics``, ``org.plantd.Health``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["THERMAL_ZONE", "DiskUsage", "SystemCollector", "cpu_temperature", "disk_usage"]

log = logging.getLogger(__name__)

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")
"""Where Linux reports the first thermal zone, in millidegrees Celsius."""


@dataclass(frozen=True, slots=True)
class DiskUsage:
    path: str
    free_bytes: int  # available to an unprivileged writer (what plantd's services are)
    size_bytes: int

    @property
    def free_fraction(self) -> float:
        return self.free_bytes / self.size_bytes if self.size_bytes else 0.0


def disk_usage(path: Path) -> DiskUsage | None:
    """The partition holding ``path`` (or its nearest existing parent: ``paths.data`` may not
    exist yet on a fresh appliance); None if even that cannot be read."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        stat = os.statvfs(probe)
    except OSError as exc:
        log.debug("cannot read the disk usage of %s: %s", probe, exc)
        return None
    return DiskUsage(str(path), stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize)


def cpu_temperature(zone: Path = THERMAL_ZONE) -> float | None:
    """The temperature ``zone`` reports in °C, None where there is no such file (a PC, a
    container) or it does not hold a number."""
    try:
        return int(zone.read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None


class SystemCollector(Collector):
    """``plantd_disk_free_bytes{path}``, ``plantd_disk_size_bytes{path}`` for ``data`` and
    ``plantd_cpu_temperature_celsius`` when ``thermal_zone`` exists."""

    def __init__(self, data: Path, *, thermal_zone: Path = THERMAL_ZONE) -> None:
        self.data = data
        self.thermal_zone = thermal_zone

    def disk(self) -> DiskUsage | None:
        return disk_usage(self.data)

    def collect(self) -> Iterator[Metric]:
        usage = self.disk()
        if usage is not None:
            free = GaugeMetricFamily(
                "plantd_disk_free_bytes",
                "Bytes an unprivileged writer may still use on the data partition.",
                labels=["path"],
            )
            free.add_metric([usage.path], usage.free_bytes)
            yield free
            size = GaugeMetricFamily(
                "plantd_disk_size_bytes", "Size of the data partition in bytes.", labels=["path"]
            )
            size.add_metric([usage.path], usage.size_bytes)
            yield size
        celsius = cpu_temperature(self.thermal_zone)
        if celsius is not None:
            yield GaugeMetricFamily(
                "plantd_cpu_temperature_celsius",
                "CPU temperature (thermal zone 0).",
                value=celsius,
            )
