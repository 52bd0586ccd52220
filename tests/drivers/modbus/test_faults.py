"""Devices that misbehave: restarts, dead units on a shared line, exception answers, broken
answers, and a server that accepts connections but never answers. The driver is driven as the
module runtime drives it: ``read(group)`` per group on a drift-free schedule, nothing else."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import pytest
from plantd_drivers.modbus import ModbusDriver, ModbusGroup

from hil.modbus import Device
from plantd.bus import Quality
from plantd.errors import DeviceFault, DeviceUnavailable

from .conftest import Rig

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]


def meter() -> Device:
    device = Device()
    device.map("holding", 0, 20)
    device.set_registers("holding", 0, list(range(100, 120)))
    device.map("input", 0, 4)
    return device


GROUP = {"name": "g", "points": [{"name": f"r{a}", "address": a} for a in range(0, 20, 2)]}


def unit_group(unit: int) -> dict[str, object]:
    """Two requests per poll: without a breaker, a dead unit would cost two timeouts a cycle."""
    points: list[dict[str, object]] = [
        {"name": f"u{unit}r{a}", "address": a} for a in range(0, 20, 2)
    ]
    points.append({"name": f"u{unit}in", "table": "input", "address": 3})
    return {"name": f"unit{unit}", "unit": unit, "points": points}


@dataclass
class Polls:
    """What a group's poll loop saw, tick by tick."""

    scheduled: int = 0
    good: int = 0
    outcomes: list[str] = field(default_factory=list)


async def poll(driver: ModbusDriver, group: ModbusGroup, interval: float, duration: float) -> Polls:
    """Read ``group`` every ``interval`` for ``duration`` on a drift-free schedule: the n-th read
    is due at start + n × interval; deadlines that pass during a read are skipped, as the
    runtime's schedule does."""
    loop = asyncio.get_running_loop()
    polls = Polls(scheduled=round(duration / interval))
    start = loop.time()
    n = 0
    while n < polls.scheduled:
        delay = start + n * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            readings = await driver.read(group)
        except (DeviceUnavailable, DeviceFault) as exc:
            polls.outcomes.append(type(exc).__name__)
        else:
            ok = all(r.quality is Quality.GOOD for r in readings.values())
            polls.good += ok and len(readings) == len(group.points)
            polls.outcomes.append("good" if ok else "bad")
        n = max(n + 1, int((loop.time() - start) / interval) + 1)
    return polls


async def read_until_good(driver: ModbusDriver, group: ModbusGroup, within: float) -> float:
    """Poll every 20 ms until a fully good read; return how long it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while loop.time() - start < within:
        try:
            readings = await driver.read(group)
            if all(r.quality is Quality.GOOD for r in readings.values()):
                return loop.time() - start
        except DeviceUnavailable:
            pass
        await asyncio.sleep(0.02)
    raise AssertionError(f"no good read within {within} s: {driver.status()}")


async def test_server_restart_resumes_polling_within_the_backoff_bound(rig: Rig) -> None:
    rig.sim.devices[1] = meter()
    module = rig.module([GROUP], backoff_initial=0.05, backoff_max=0.4)
    driver = ModbusDriver(module)
    group = module.groups[0]
    await driver.open()
    assert (await driver.read(group))["r0"].value == 100
    assert rig.tcp is not None
    for _ in range(2):  # twice: recovery leaves nothing behind that spoils the next one
        restart = asyncio.create_task(rig.tcp.restart(downtime=0.5))
        await asyncio.sleep(0.1)  # the server is down now
        with pytest.raises(DeviceUnavailable):
            await driver.read(group)
        await restart
        # back within one backoff_max (plus one poll) of the server's return, by itself
        assert await read_until_good(driver, group, within=0.4 + 0.3) <= 0.4 + 0.2
    assert rig.tcp.connections == 3
    await driver.close()


@pytest.mark.parametrize("rig", ["rtu"], indirect=True)
async def test_one_dead_unit_of_three_does_not_stall_the_line(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plantd_drivers.modbus")
    for unit in (1, 2, 3):
        rig.sim.devices[unit] = meter()
    groups = [unit_group(unit) for unit in (1, 2, 3)]
    module = rig.module(groups, timeout=0.04, retries=1, backoff_initial=0.3, backoff_max=1.2)
    driver = ModbusDriver(module)
    await driver.open()
    rig.sim.fail(2, "silent")
    interval, duration = 0.1, 5.0
    results = await asyncio.gather(
        *(poll(driver, group, interval, duration) for group in module.groups)
    )
    one, two, three = results
    # 85 %, not more: beside a loaded suite the simulator itself answers late now and then
    # (47 of 50 seen). The quarantine is what keeps the line going: asserted below, by how
    # often unit 2 was asked.
    assert one.good >= 0.85 * one.scheduled, (one, driver.status())
    assert three.good >= 0.85 * three.scheduled, (three, driver.status())
    assert two.good == 0
    assert set(two.outcomes) == {"bad"}  # the dead unit's points are bad; nothing raised
    # quarantined: unit 2 was asked a handful of times, not 50
    asked = rig.sim.count(unit=2)
    assert 2 <= asked <= 10, asked
    status = driver.status()
    assert status["units"]["2"]["state"] in ("quarantined", "probing")
    assert status["units"]["1"]["state"] == "ok"
    readings = await driver.read(module.groups[1])
    error = readings["u2r0"].error
    assert error is not None
    assert "unit 2 does not answer" in error
    # unit 2 comes back: probed again within backoff_max, then polled normally
    rig.sim.heal()
    await read_until_good(driver, module.groups[1], within=1.2 + 0.5)
    assert driver.status()["units"]["2"]["state"] == "ok"
    await driver.close()
    # logged on transitions only: quarantined once, back once, however many polls failed
    messages = [r.getMessage() for r in caplog.records if r.name == "plantd_drivers.modbus"]
    assert sum("unit 2 does not answer" in m for m in messages) == 1, messages
    assert sum("unit 2 answers again" in m for m in messages) == 1, messages


@pytest.mark.parametrize("rig", ["tcp", "rtu"], indirect=True)
async def test_exception_answers_are_device_faults(rig: Rig) -> None:
    rig.sim.devices[1] = meter()
    module = rig.module([GROUP])
    driver = ModbusDriver(module)
    group = module.groups[0]
    await driver.open()
    rig.sim.fail(1, 4)
    with pytest.raises(DeviceFault, match=r"unit 1 refused FC 3 .*exception 4 \(server device"):
        await driver.read(group)
    rig.sim.heal()
    assert (await driver.read(group))["r2"].value == 102
    assert driver.status()["connection_lost"] == 0
    await driver.close()


async def test_gateway_exceptions_count_as_a_silent_unit(rig: Rig) -> None:
    rig.sim.devices[1] = meter()
    rig.sim.devices[2] = meter()
    groups = [unit_group(unit) for unit in (1, 2)]
    module = rig.module(groups, retries=2, backoff_initial=0.2, backoff_max=0.2)
    driver = ModbusDriver(module)
    await driver.open()
    rig.sim.fail(2, 0x0B)  # gateway target device failed to respond
    readings = await driver.read(module.groups[1])
    error = readings["u2r0"].error
    assert error is not None
    assert "unit 2 is not reached by the gateway: exception 11" in error
    assert rig.sim.count(unit=2) == 1  # the gateway already waited: no retries
    assert all(r.quality is Quality.GOOD for r in (await driver.read(module.groups[0])).values())
    await driver.close()


@pytest.mark.parametrize("rig", ["tcp", "rtu-over-tcp", "rtu"], indirect=True)
async def test_short_answers_spoil_only_their_request(rig: Rig) -> None:
    rig.sim.devices[1] = meter()
    rig.sim.devices[1].map("input", 0, 4)
    points = [*GROUP["points"], {"name": "in0", "table": "input", "address": 0}]
    module = rig.module([{"name": "g", "points": points}])
    driver = ModbusDriver(module)
    group = module.groups[0]
    await driver.open()
    rig.sim.fail(1, "short")
    readings = await driver.read(group)
    error = readings["r0"].error
    assert error is not None
    assert "asked for 19 registers from 0, got 9" in error
    assert readings["in0"].quality is Quality.BAD  # short too, its own request
    rig.sim.heal()
    assert all(r.quality is Quality.GOOD for r in (await driver.read(group)).values())
    assert driver.status()["connects"] == 1  # the connection was never dropped
    await driver.close()


async def test_malformed_answers_keep_the_connection(rig: Rig) -> None:
    rig.sim.devices[1] = meter()
    module = rig.module([GROUP])
    driver = ModbusDriver(module)
    group = module.groups[0]
    await driver.open()
    rig.sim.fail(1, "malformed")
    readings = await driver.read(group)
    error = readings["r0"].error
    assert error is not None
    assert "cannot be decoded" in error
    rig.sim.heal()
    assert all(r.quality is Quality.GOOD for r in (await driver.read(group)).values())
    assert driver.status()["connects"] == 1
    await driver.close()


@pytest.mark.parametrize("rig", ["tcp", "rtu-over-tcp", "rtu"], indirect=True)
async def test_garbage_answers_are_survived(rig: Rig) -> None:
    rig.sim.devices[1] = meter()
    module = rig.module([GROUP], timeout=0.1, backoff_initial=0.05, backoff_max=0.2)
    driver = ModbusDriver(module)
    group = module.groups[0]
    await driver.open()
    rig.sim.fail(1, "garbage")
    for _ in range(3):
        try:
            readings = await driver.read(group)
        except DeviceUnavailable:
            continue  # noise only, from the only unit: the line is as good as dead
        assert all(r.quality is Quality.BAD for r in readings.values())
    rig.sim.heal()
    await read_until_good(driver, group, within=1.0)
    await driver.close()


@pytest.mark.parametrize("rig", ["tcp", "rtu-over-tcp"], indirect=True)
async def test_a_server_that_accepts_and_never_answers(rig: Rig) -> None:
    rig.sim.devices[1] = meter()
    rig.sim.devices[2] = meter()
    groups = [unit_group(unit) for unit in (1, 2)]
    module = rig.module(groups, timeout=0.1, retries=1, backoff_initial=0.5, backoff_max=0.5)
    driver = ModbusDriver(module)
    await driver.open()
    rig.sim.hang = True
    loop = asyncio.get_running_loop()
    started = loop.time()
    first = await driver.read(module.groups[0])  # unit 1 silent; unit 2 may still be fine
    assert all(r.quality is Quality.BAD for r in first.values())
    with pytest.raises(DeviceUnavailable, match="no unit answers"):
        await driver.read(module.groups[1])  # now every unit is silent: the line is dead
    assert loop.time() - started < 4 * 0.1 + 0.3  # two units × (1 + 1 retry) × timeout
    with pytest.raises(DeviceUnavailable):  # fails fast while quarantined: no waiting
        await asyncio.wait_for(driver.read(module.groups[0]), 0.05)
    assert driver.status()["connected"] is False
    rig.sim.heal()
    await read_until_good(driver, module.groups[0], within=0.5 + 0.5)
    await read_until_good(driver, module.groups[1], within=0.5 + 0.5)
    assert rig.tcp is not None
    assert rig.tcp.connections >= 2  # the driver dropped the wedged connection and came back
    await driver.close()


async def test_read_after_close_is_unavailable_and_open_reconnects(rig: Rig) -> None:
    rig.sim.devices[1] = meter()
    module = rig.module([GROUP])
    driver = ModbusDriver(module)
    await driver.open()
    await driver.close()
    with pytest.raises(DeviceUnavailable, match="closed"):
        await driver.read(module.groups[0])
    await driver.open()
    assert (await driver.read(module.groups[0]))["r4"].value == 104
    await driver.close()


async def test_open_fails_with_device_unavailable(rig: Rig) -> None:
    module = rig.module([GROUP], port=1)
    with pytest.raises(DeviceUnavailable, match=r"tcp 127\.0\.0\.1:1"):
        await ModbusDriver(module).open()
    serial = rig.module([GROUP], transport="rtu", host=None, device="/dev/does-not-exist")
    with pytest.raises(DeviceUnavailable, match="/dev/does-not-exist"):
        await ModbusDriver(serial).open()
