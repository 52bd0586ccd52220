"""Every long-running unit has a memory ceiling and a file descriptor limit (issue 12, item 2;
docs/appliance.md "Resource limits"); the broker's leaves room for a flood of connections."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"


def service_section(name: str) -> configparser.SectionProxy:
    parser = configparser.RawConfigParser(strict=False, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser["Service"]


# Long-running: every service but the one-shot jobs (keys, reload, update), which run and end.
DAEMONS = sorted(
    p.name for p in UNITS.glob("*.service") if service_section(p.name).get("Type") != "oneshot"
)


def megabytes(value: str) -> int:
    assert value.endswith(("M", "G")), value
    return int(value[:-1]) * (1024 if value.endswith("G") else 1)


@pytest.mark.parametrize("name", DAEMONS)
def test_every_daemon_has_a_memory_ceiling_and_a_descriptor_limit(name: str) -> None:
    service = service_section(name)
    assert 128 <= megabytes(service["MemoryMax"]) <= 1024  # a Raspberry Pi has 1 GB or more
    assert int(service["LimitNOFILE"]) >= 1024


def test_the_broker_has_room_for_its_queues_and_many_connections() -> None:
    service = service_section("plantd-broker.service")
    # 64 MiB of queued requests (broker.max_queued_bytes) at most twice over, plus ~36 MB idle.
    assert megabytes(service["MemoryMax"]) >= 2 * 64 + 64
    assert int(service["LimitNOFILE"]) >= 4096
