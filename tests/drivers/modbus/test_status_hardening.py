"""Issue 12, item 10f: plain ``plant module status`` shows quarantined units (and requests held
back), not only with ``--json``."""

from __future__ import annotations

from typing import Any

import pytest
from plantd_drivers.modbus import ModbusDriver

from hil.modbus import Device
from plantd.cli._module_cmd import status_text

from .conftest import Rig
from .test_line_hardening import quarantined_pair

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]


def module_status(driver_status: dict[str, Any]) -> dict[str, Any]:
    """A module's status around a driver's, as ModuleRuntime.status builds it."""
    return {
        "module": "line",
        "driver": "modbus",
        "connection": {"state": "connected", "for": 12.0, "last_error": None},
        "points": 22,
        "bad_points": 11,
        "published": 40,
        "suppressed": 3,
        "groups": {},
        "driver_status": driver_status,
    }


async def test_quarantined_units_are_shown(rig: Rig) -> None:
    driver, _ = await quarantined_pair(rig, timeout=0.2, retries=0, backoff_initial=20)
    text = status_text(module_status(driver.status()))
    await driver.close()
    [line] = [line for line in text.splitlines() if line.startswith("unit 2")]
    assert "quarantined, next try in" in line
    assert "does not answer (timeout 0.2 s)" in line
    assert not any(line.startswith("unit 1") for line in text.splitlines())  # ok units: quiet


async def test_held_back_requests_are_shown(rig: Rig) -> None:
    rig.sim.devices[1] = Device()
    rig.sim.devices[1].map("holding", 0, 1)
    module = rig.module(
        [{"name": "g", "points": [{"name": "a", "address": 0}, {"name": "b", "address": 50}]}]
    )
    driver = ModbusDriver(module)
    await driver.open()
    await driver.read(module.groups[0])
    text = status_text(module_status(driver.status()))
    await driver.close()
    assert "unit 1      FC 3 from 50, 1 held back after exception 2, next try in 10 s" in text


def test_a_driver_without_units_shows_none() -> None:
    text = status_text(module_status({"connected": True}))
    assert not any(line.startswith("unit ") for line in text.splitlines())
