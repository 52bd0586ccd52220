"""The driver against in-process simulated devices: Modbus TCP, RTU on a pseudo-terminal, and RTU
over TCP. Values are put into the device with hil's own encoder and read with the driver's."""

from __future__ import annotations

from typing import Any

import pytest
from plantd_drivers.modbus import ORDERS, ModbusDriver

from hil.modbus import Device, from_registers
from plantd.bus import Quality
from plantd.errors import DeviceFault
from plantd.testing import check_driver

from .conftest import TRANSPORTS, Rig
from .test_codec import GOLDEN, same

pytestmark = pytest.mark.timeout(30)

ALL_TRANSPORTS = pytest.mark.parametrize("rig", TRANSPORTS, indirect=True)


def golden_points(device: Device) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every golden (type, value, order) as a point at its own address, filled in ``device``."""
    points: list[dict[str, Any]] = []
    expected: dict[str, Any] = {}
    address = 0
    device.map("holding", 0, 400)
    for index, (kind, value, orders) in enumerate(GOLDEN):
        for order in ORDERS:
            name = f"{kind}_{order}_{index}".lower()
            point: dict[str, Any] = {"name": name, "address": address, "type": kind, "order": order}
            if kind == "string":
                point["length"] = 8
            device.set_value(
                "holding", address, kind, value, order=order, length=point.get("length")
            )
            points.append(point)
            expected[name] = value
            address += len(orders[order]) + 1  # one unused register between points
    return points, expected


@ALL_TRANSPORTS
async def test_every_type_and_order(rig: Rig) -> None:
    device = Device()
    rig.sim.devices[7] = device
    points, expected = golden_points(device)
    module = rig.module([{"name": "all", "unit": 7, "points": points}], max_gap=2)
    driver = ModbusDriver(module)
    await driver.open()
    try:
        readings = await driver.read(module.groups[0])
    finally:
        await driver.close()
    assert set(readings) == set(expected)
    for name, value in expected.items():
        assert readings[name].quality is Quality.GOOD, (name, readings[name])
        assert same(readings[name].value, value), (name, readings[name].value, value)
    # ~150 registers of points in a few requests, not one per point
    sent = rig.sim.count(unit=7, function=3)
    assert sent == 2
    assert len(points) == 4 * len(GOLDEN)


@ALL_TRANSPORTS
async def test_merged_reads_are_counted_on_the_server(rig: Rig) -> None:
    device = Device()
    device.map("holding", 0, 300)
    device.map("input", 0, 10)
    device.map("coil", 0, 100)
    device.map("discrete", 0, 16)
    rig.sim.devices[1] = device
    points = [{"name": f"h{a}", "address": a} for a in range(0, 200)]  # 200 uint16 in a row
    points += [{"name": f"gap{a}", "address": a, "type": "uint32"} for a in (210, 214, 240)]
    points += [{"name": f"i{a}", "table": "input", "address": a} for a in range(10)]
    points += [{"name": f"c{a}", "table": "coil", "address": a} for a in range(0, 100, 3)]
    points += [{"name": "d0", "table": "discrete", "address": 0}]
    module = rig.module([{"name": "g", "points": points}], max_gap=4)
    driver = ModbusDriver(module)
    await driver.open()
    for _ in range(3):
        readings = await driver.read(module.groups[0])
        assert all(r.quality is Quality.GOOD for r in readings.values())
    await driver.close()
    # holding: [0,125) [125,200) [210,216) [240,242); input, coils, discrete: one each
    assert rig.sim.count(function=3) == 3 * 4
    assert rig.sim.count(function=4) == 3
    assert rig.sim.count(function=1) == 3
    assert rig.sim.count(function=2) == 3
    assert len(points) / 7 > 35
    assert driver.status()["requests_per_cycle"] == {"g": 7}


@ALL_TRANSPORTS
async def test_writes_round_trip_through_the_same_codec(rig: Rig) -> None:
    device = Device()
    device.map("holding", 0, 100)
    device.map("coil", 0, 8)
    rig.sim.devices[3] = device
    points: list[dict[str, Any]] = [
        {"name": "i16", "address": 0, "type": "int16", "scale": 0.1},
        {"name": "u32", "address": 2, "type": "uint32", "order": "CDAB"},
        {"name": "f32", "address": 4, "type": "float32", "order": "DCBA"},
        {"name": "f64", "address": 6, "type": "float64", "order": "BADC"},
        {"name": "i48", "address": 10, "type": "int48", "order": "CDAB"},
        {"name": "text", "address": 14, "type": "string", "length": 10},
        {"name": "mode", "address": 20, "enum": {"off": 0, "auto": 2}},
        {"name": "flags", "address": 21, "bits": {"a": 0, "b": 9}},
        {"name": "bit5", "address": 22, "bit": 5},
        {"name": "coil", "table": "coil", "address": 3},
    ]
    for point in points:
        point.update(writable=True, read_back=True)
    module = rig.module([{"name": "g", "unit": 3, "points": points}])
    driver = ModbusDriver(module)
    byname = {p.name: p for p in module.groups[0].points}
    device.set_registers("holding", 21, [0x0200])
    device.set_registers("holding", 22, [0x8001])
    await driver.open()
    writes: dict[str, Any] = {
        "i16": -12.3,
        "u32": 0xDEADBEEF,
        "f32": 230.1,
        "f64": -0.1,
        "i48": -(2**40),
        "text": "pump-7",
        "mode": "auto",
        "flags": {"a": True},
        "bit5": True,
        "coil": True,
    }
    written = {name: await driver.write(byname[name], value) for name, value in writes.items()}
    readings = await driver.read(module.groups[0])
    await driver.close()
    assert written["i16"] == pytest.approx(-12.3)
    assert written["flags"] == {"a": True, "b": True}  # b was already set
    for name, value in writes.items():
        expect = written[name] if name == "flags" else value
        assert same(readings[name].value, expect) or readings[name].value == pytest.approx(expect)
    # what the device holds, decoded by hil (not the driver)
    assert device.get_registers("holding", 0, 1) == [(-123) & 0xFFFF]
    assert from_registers("uint32", device.get_registers("holding", 2, 2), "CDAB") == 0xDEADBEEF
    assert from_registers("float64", device.get_registers("holding", 6, 4), "BADC") == -0.1
    assert device.get_registers("holding", 21, 2) == [0x0201, 0x8021]
    assert device.bits["coil"][3] is True
    # FC 6 for one register, FC 16 for wider values, FC 5 for the coil
    assert rig.sim.count(function=6) == 4  # i16, mode, flags, bit5
    assert rig.sim.count(function=16) == 5  # u32, f32, f64, i48, text
    assert rig.sim.count(function=5) == 1


async def test_always_write_multiple(rig: Rig) -> None:
    device = Device()
    device.map("holding", 0, 4)
    device.map("coil", 0, 4)
    rig.sim.devices[1] = device
    points = [
        {"name": "r", "address": 0, "writable": True},
        {"name": "c", "table": "coil", "address": 1, "writable": True},
    ]
    module = rig.module([{"name": "g", "points": points}], always_write_multiple=True)
    driver = ModbusDriver(module)
    await driver.open()
    await driver.write(module.groups[0].points[0], 7)
    await driver.write(module.groups[0].points[1], True)
    await driver.close()
    assert (rig.sim.count(function=16), rig.sim.count(function=15)) == (1, 1)
    assert rig.sim.count(function=6) + rig.sim.count(function=5) == 0


async def test_write_refusals(rig: Rig) -> None:
    device = Device()
    device.map("holding", 0, 4)
    device.ignore_writes.add(("holding", 1))
    rig.sim.devices[1] = device
    points = [
        {"name": "ro", "address": 0},
        {"name": "checked", "address": 1, "writable": True, "read_back": True},
        {"name": "ranged", "address": 2, "type": "int16", "writable": True, "maximum": 100},
        {"name": "missing", "address": 50, "writable": True},
    ]
    module = rig.module([{"name": "g", "points": points}])
    ro, checked, ranged, missing = module.groups[0].points
    driver = ModbusDriver(module)
    await driver.open()
    with pytest.raises(ValueError, match="point 'ro' is not writable"):
        await driver.write(ro, 1)
    with pytest.raises(ValueError, match="above the maximum"):
        await driver.write(ranged, 101)
    with pytest.raises(ValueError, match="not a whole number"):
        await driver.write(ranged, 1.5)
    with pytest.raises(DeviceFault, match=r"read-back of 'checked' after writing 5 gave 0"):
        await driver.write(checked, 5)
    with pytest.raises(DeviceFault, match=r"unit 1 refused writing 'missing'.*exception 2"):
        await driver.write(missing, 5)
    assert rig.sim.count(function=6) == 2  # the refused values never reached the device
    await driver.close()


@ALL_TRANSPORTS
async def test_refused_merged_read_is_split_in_the_same_cycle_and_remembered(rig: Rig) -> None:
    device = Device(max_registers=20)
    device.map("holding", 0, 60)  # 60 registers, but at most 20 per request …
    device.map("holding", 80, 10)  # … and a hole at 60-79
    rig.sim.devices[1] = device
    points = [{"name": f"p{a}", "address": a} for a in [*range(60), *range(80, 90)]]
    module = rig.module([{"name": "g", "points": points}], max_gap=30)
    driver = ModbusDriver(module)
    await driver.open()
    first = await driver.read(module.groups[0])
    assert all(r.quality is Quality.GOOD for r in first.values())
    refused_first = rig.sim.count(function=3)
    refusals = driver.line.counters["refused"]
    assert refusals > 0
    rig.sim.requests.clear()
    for _ in range(3):
        later = await driver.read(module.groups[0])
        assert all(r.quality is Quality.GOOD for r in later.values())
    await driver.close()
    per_cycle = rig.sim.count(function=3) // 3
    assert per_cycle <= 6  # ideal is 4 (3 × 20 + 10); no refused request is sent again
    assert refused_first > per_cycle
    assert driver.status()["refused"] == refusals  # learned: nothing refused any more


async def test_a_point_the_device_does_not_have_is_bad_alone(rig: Rig) -> None:
    device = Device()
    device.map("holding", 0, 10)
    device.map("holding", 11, 10)  # 10 is missing
    rig.sim.devices[1] = device
    points = [{"name": f"p{a}", "address": a} for a in range(21)]
    module = rig.module([{"name": "g", "points": points}])
    driver = ModbusDriver(module)
    await driver.open()
    for _ in range(2):
        readings = await driver.read(module.groups[0])
        bad = {name for name, r in readings.items() if r.quality is Quality.BAD}
        assert bad == {"p10"}
        error = readings["p10"].error
        assert error is not None
        assert "exception 2 (illegal data address)" in error
    await driver.close()


@ALL_TRANSPORTS
async def test_conformance(rig: Rig) -> None:
    device = Device()
    device.map("holding", 0, 10)
    device.map("coil", 0, 2)
    rig.sim.devices[1] = device
    groups = [
        {"name": "a", "points": [{"name": "x", "address": 0}, {"name": "y", "address": 1}]},
        {"name": "b", "table": "coil", "points": [{"name": "c", "address": 1, "writable": True}]},
    ]
    module = rig.module(groups)
    first = await check_driver(ModbusDriver(module), module)
    assert set(first) == {"x", "y", "c"}
