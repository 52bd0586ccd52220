"""Issue 12, item 10 b–d: a probe of a silent unit waits for the answering units, quarantines
outlive reconnects, and every reason a unit or a connection is down is named as it is."""

from __future__ import annotations

import asyncio

import pytest
from plantd_drivers.modbus import ModbusDriver
from plantd_drivers.modbus._transport import Transport

from plantd.bus import Quality
from plantd.errors import DeviceUnavailable

from .conftest import Rig
from .test_faults import meter, poll, unit_group

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]


class Clock:
    """The line's clock, moved by hand: when a quarantine ends is the test's decision."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def quarantined_pair(rig: Rig, **settings: object) -> tuple[ModbusDriver, Clock]:
    """Units 1 and 2 on one connection; unit 2 silent and quarantined."""
    for unit in (1, 2):
        rig.sim.devices[unit] = meter()
    module = rig.module([unit_group(1), unit_group(2)], **settings)
    driver = ModbusDriver(module)
    clock = Clock()
    driver.line.clock = clock
    await driver.open()
    rig.sim.fail(2, "silent")
    readings = await driver.read(module.groups[1])
    assert all(r.quality is Quality.BAD for r in readings.values())
    assert driver.status()["units"]["2"]["state"] == "quarantined"
    return driver, clock


async def test_a_probe_waits_for_the_answering_units(rig: Rig) -> None:
    driver, clock = await quarantined_pair(rig, timeout=0.2, retries=0)
    healthy, silent = driver.config.groups
    clock.now += 3600  # the quarantine is over: the next read of unit 2 is a probe
    rig.sim.requests.clear()
    # the probe's group asks first; both groups are due at once, as on a poll tick
    probe = asyncio.create_task(driver.read(silent))
    read = asyncio.create_task(driver.read(healthy))
    readings, _ = await asyncio.gather(read, probe)
    assert all(r.quality is Quality.GOOD for r in readings.values())
    # both requests of unit 1 went before the probe of unit 2 (before: the probe went first
    # and unit 1 waited for its timeout)
    assert [r.unit for r in rig.sim.requests] == [1, 1, 2]
    assert driver.status()["units"]["2"]["state"] == "quarantined"
    await driver.close()


@pytest.mark.parametrize("rig", ["rtu"], indirect=True)
async def test_probes_do_not_cost_the_answering_units_their_cycles(rig: Rig) -> None:
    # timeout = interval: each probe in front of unit 1 cost it a whole cycle (about half of
    # its polls were lost before the fix)
    interval = 0.3
    for unit in (1, 2):
        rig.sim.devices[unit] = meter()
    module = rig.module(
        [unit_group(1), unit_group(2)],
        timeout=interval,
        retries=0,
        backoff_initial=interval,
        backoff_max=interval,
    )
    driver = ModbusDriver(module)
    await driver.open()
    rig.sim.fail(2, "silent")
    one, two = await asyncio.gather(*(poll(driver, g, interval, 6.0) for g in module.groups))
    probes = rig.sim.count(unit=2)
    assert probes >= 4, probes  # unit 2 was probed all along
    assert one.good >= one.scheduled - 2, (one, probes)
    assert two.good == 0
    await driver.close()


async def test_the_quarantine_outlives_a_reconnect(rig: Rig) -> None:
    driver, _ = await quarantined_pair(rig, timeout=0.2, retries=2, backoff_initial=20)
    healthy, silent = driver.config.groups
    asked = rig.sim.count(unit=2)
    await driver.close()  # what the runtime does when it reconnects
    await driver.open()
    readings = await driver.read(silent)
    assert rig.sim.count(unit=2) == asked  # not asked again (before: 3 times, with retries)
    error = readings["u2r0"].error
    assert error is not None
    assert "quarantined, next try in" in error
    assert driver.status()["units"]["2"]["state"] == "quarantined"
    assert all(r.quality is Quality.GOOD for r in (await driver.read(healthy)).values())
    await driver.close()


async def test_every_unit_quarantined_on_a_fresh_connection_is_not_a_lost_connection(
    rig: Rig,
) -> None:
    rig.sim.devices[1] = meter()
    module = rig.module([unit_group(1)], timeout=0.1, retries=0, backoff_initial=20)
    driver = ModbusDriver(module)
    await driver.open()
    rig.sim.fail(1, "silent")
    with pytest.raises(DeviceUnavailable, match="no unit answers"):
        await driver.read(module.groups[0])  # the only unit is silent: the line is suspect
    await driver.close()
    await driver.open()  # the runtime reconnects
    asked = rig.sim.count(unit=1)
    readings = await driver.read(module.groups[0])  # quarantined: answered for, not asked
    assert all(r.quality is Quality.BAD for r in readings.values())
    assert rig.sim.count(unit=1) == asked
    await driver.close()


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (0x0B, "exception 11 (gateway target device failed to respond)"),
        (0x0A, "exception 10 (gateway path unavailable)"),
    ],
)
async def test_gateway_exceptions_are_named(rig: Rig, code: int, text: str) -> None:
    rig.sim.devices[1] = meter()
    rig.sim.devices[2] = meter()
    module = rig.module([unit_group(1), unit_group(2)], retries=2)
    driver = ModbusDriver(module)
    await driver.open()
    rig.sim.fail(2, code)
    readings = await driver.read(module.groups[1])
    error = readings["u2r0"].error
    assert error is not None
    assert f"unit 2 is not reached by the gateway: {text}" in error
    assert "does not answer" not in error
    assert rig.sim.count(unit=2) == 1  # the gateway already waited: no retries
    assert text in driver.status()["units"]["2"]["why"]
    await driver.close()


async def test_a_silent_unit_is_reported_with_its_timeout(rig: Rig) -> None:
    driver, _ = await quarantined_pair(rig, timeout=0.2, retries=0)
    readings = await driver.read(driver.config.groups[1])
    error = readings["u2r0"].error
    assert error is not None
    assert "unit 2 does not answer (timeout 0.2 s) (quarantined" in error
    await driver.close()


async def test_a_refused_connection_is_named(rig: Rig) -> None:
    module = rig.module([unit_group(1)])
    assert rig.tcp is not None
    await rig.tcp.stop()  # nothing listens on the port now
    with pytest.raises(DeviceUnavailable, match=r":\d+: connection refused \(nothing listens"):
        await ModbusDriver(module).open()


def test_a_connect_that_timed_out_is_named(rig: Rig) -> None:
    transport = Transport(rig.module([unit_group(1)], timeout=0.5).connection)
    # pymodbus cancels a connect that takes too long: no error reaches the recorder
    assert transport._connect_failure([]) == "no answer to connect within 0.5 s"
    refused = transport._connect_failure([ConnectionRefusedError(111, "refused")])
    assert refused.startswith("connection refused")
