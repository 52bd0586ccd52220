"""The appliance's numbers: the data partition's space and the CPU temperature."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry

from plantd.logger._system import SystemCollector, cpu_temperature, disk_usage


def registry_of(collector: SystemCollector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def test_disk_space_of_the_data_partition(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    registry = registry_of(SystemCollector(data, thermal_zone=tmp_path / "no-such-zone"))
    stat = os.statvfs(data)
    size = registry.get_sample_value("plantd_disk_size_bytes", {"path": str(data)})
    free = registry.get_sample_value("plantd_disk_free_bytes", {"path": str(data)})
    assert size == stat.f_blocks * stat.f_frsize
    assert free is not None
    assert 0 < free <= size
    assert registry.get_sample_value("plantd_cpu_temperature_celsius") is None


def test_a_data_path_not_made_yet_reports_the_partition_it_will_be_on(tmp_path: Path) -> None:
    usage = disk_usage(tmp_path / "not" / "yet")
    assert usage is not None
    assert usage.path == str(tmp_path / "not" / "yet")
    assert usage.size_bytes == os.statvfs(tmp_path).f_blocks * os.statvfs(tmp_path).f_frsize


def test_cpu_temperature_from_the_thermal_zone_in_millidegrees(tmp_path: Path) -> None:
    zone = tmp_path / "temp"
    zone.write_text("48312\n")
    registry = registry_of(SystemCollector(tmp_path, thermal_zone=zone))
    assert registry.get_sample_value("plantd_cpu_temperature_celsius") == 48.312
    zone.write_text("garbage\n")
    assert cpu_temperature(zone) is None
    assert registry.get_sample_value("plantd_cpu_temperature_celsius") is None
