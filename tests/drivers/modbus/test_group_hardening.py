"""Issue 12, item 10e: a point the device does not map (exception 2) is not asked every cycle
for ever: its points stay bad with the refusal named, and it is asked again after a wait that
doubles (10 s, 20 s, … up to 5 minutes of the line's clock), so a later firmware that maps it
is noticed."""

from __future__ import annotations

import pytest
from plantd_drivers.modbus import ModbusDriver

from hil.modbus import Device
from plantd.bus import Quality
from plantd.errors import DeviceFault

from .conftest import Rig
from .test_line_hardening import Clock

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]

GROUP = {
    "name": "g",
    "points": [{"name": "mapped", "address": 0}, {"name": "unmapped", "address": 50}],
}


def unmapped_asked(rig: Rig) -> int:
    return sum(1 for r in rig.sim.requests if r.address == 50)


async def test_an_unmapped_point_is_asked_again_with_backoff(rig: Rig) -> None:
    device = Device()
    device.map("holding", 0, 4)
    device.set_registers("holding", 0, [7])
    rig.sim.devices[1] = device
    module = rig.module([GROUP])
    driver = ModbusDriver(module)
    clock = Clock()
    driver.line.clock = clock
    await driver.open()
    group = module.groups[0]
    for _ in range(5):  # five cycles within the first wait
        readings = await driver.read(group)
        assert readings["mapped"].value == 7
        assert readings["unmapped"].quality is Quality.BAD
        clock.now += 1
    assert unmapped_asked(rig) == 1  # before: 5, one per cycle
    error = readings["unmapped"].error
    assert error is not None
    assert "exception 2 (illegal data address)" in error
    assert "the device does not map this address; asked again in 10 s" in error
    [held] = driver.status()["held_back"]
    assert (held["unit"], held["address"], held["exception"]) == (1, 50, 2)

    clock.now += 6  # the first wait is over: asked once more, refused, wait doubled
    await driver.read(group)
    assert unmapped_asked(rig) == 2
    clock.now += 19
    error = (await driver.read(group))["unmapped"].error
    assert unmapped_asked(rig) == 2
    assert error is not None
    assert "asked again in 20 s" in error

    for _ in range(12):  # the wait stops growing at 5 minutes
        clock.now += 301
        await driver.read(group)
    assert "asked again in 300 s" in str((await driver.read(group))["unmapped"].error)

    device.map("holding", 50, 1)  # new firmware maps it
    device.set_registers("holding", 50, [9])
    clock.now += 301
    assert (await driver.read(group))["unmapped"].value == 9
    assert driver.status()["held_back"] == []
    await driver.close()


async def test_a_transient_refusal_is_asked_every_cycle(rig: Rig) -> None:
    device = Device()
    device.map("holding", 0, 51)
    rig.sim.devices[1] = device
    module = rig.module([GROUP])
    driver = ModbusDriver(module)
    await driver.open()
    rig.sim.fail(1, 6, count=4)  # server device busy: may be gone at the next cycle
    for _ in range(2):
        with pytest.raises(DeviceFault, match="exception 6"):
            await driver.read(module.groups[0])
    assert unmapped_asked(rig) == 2
    assert all(r.quality is Quality.GOOD for r in (await driver.read(module.groups[0])).values())
    await driver.close()
