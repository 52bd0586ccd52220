"""The OPC UA driver against the simulator: the door's contract, reads by NodeId and browse
path, quality and timestamps, typed writes, methods, subscriptions."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

import pytest
from plantd_drivers.opcua import OpcuaDriver, OpcuaModule

from hil.opcua import OpcuaSimulator
from plantd.bus import Quality
from plantd.errors import DeviceFault, DeviceUnavailable
from plantd.module import Reading, load_driver, pushes
from plantd.testing import check_driver
from tests.drivers.opcua.conftest import ModuleMaker


async def first_batches(driver: OpcuaDriver, module: OpcuaModule, count: int) -> list[Any]:
    batches = []
    async with aclosing(driver.stream(module.groups[0])) as stream:
        async for batch in stream:
            batches.append(batch)
            if len(batches) == count:
                break
    return batches


async def test_the_driver_is_registered() -> None:
    assert load_driver("opcua") is OpcuaDriver


async def test_conformance(make_module: ModuleMaker, sim: OpcuaSimulator) -> None:
    module = make_module()
    readings = await check_driver(OpcuaDriver(module), module)
    assert readings["recipe"].value == "standard"
    assert readings["running"].value is True
    assert readings["count"].quality is Quality.GOOD
    assert sim.session_count() == 0  # every session the check opened was closed


async def test_reads_keep_source_timestamps_and_map_status_codes(
    make_module: ModuleMaker, sim: OpcuaSimulator
) -> None:
    module = make_module()
    driver = OpcuaDriver(module)
    await driver.open()
    try:
        await sim.set("Line1.Speed", 42.5)
        settings = module.groups[1]
        readings = await driver.read(settings)
        assert readings["speed"].value == 42.5
        assert readings["speed"].timestamp is not None
        await sim.set_status("Line1.Speed", "UncertainLastUsableValue")
        assert (await driver.read(settings))["speed"].quality is Quality.UNCERTAIN
        await sim.set_status("Line1.Recipe", "BadSensorFailure")
        bad = (await driver.read(settings))["recipe"]
        assert bad == Reading(None, Quality.BAD, bad.timestamp, "BadSensorFailure (0x808C0000)")
    finally:
        await driver.close()


async def test_an_unknown_browse_path_spoils_only_its_point(make_module: ModuleMaker) -> None:
    text = """
driver: opcua
connection: {{endpoint: "{endpoint}", namespaces: {{sim: "urn:plantd:sim"}}}}
groups:
  - name: g
    mode: poll
    points:
      - {{name: speed, path: "sim:Line1/sim:Speed"}}
      - {{name: ghost, path: "sim:Line1/sim:Ghost"}}
      - {{name: alien, node: "ns=other;s=X"}}
"""
    module = make_module(text)
    driver = OpcuaDriver(module)
    await driver.open()
    try:
        readings = await driver.read(module.groups[0])
        assert readings["speed"].quality is Quality.GOOD
        assert "sim:Line1/sim:Ghost not found on the server (BadNoMatch)" in str(
            readings["ghost"].error
        )
        assert "namespace 'other' is not on the server" in str(readings["alien"].error)
        assert driver.status()["session"]["unresolved"].keys() == {"ghost", "alien"}
    finally:
        await driver.close()


async def test_writes_use_the_nodes_data_type(
    make_module: ModuleMaker, sim: OpcuaSimulator
) -> None:
    module = make_module()
    driver = OpcuaDriver(module)
    await driver.open()
    try:
        speed, recipe = module.point("speed"), module.point("recipe")
        assert speed is not None
        assert recipe is not None
        assert await driver.write(speed, 1200) == 1200  # an int written to a Double node
        assert sim.get("Line1.Speed") == 1200.0
        assert isinstance(sim.get("Line1.Speed"), float)
        await driver.write(recipe, "special")
        assert sim.get("Line1.Recipe") == "special"
        with pytest.raises(ValueError, match=r"takes a number"):
            await driver.write(speed, "fast")
        with pytest.raises(ValueError, match=r"takes text"):
            await driver.write(recipe, 3)
        running = module.point("running")
        assert running is not None
        with pytest.raises(ValueError, match=r"not writable"):
            await driver.write(running, False)
    finally:
        await driver.close()


async def test_a_write_the_server_refuses_is_a_device_fault(
    make_module: ModuleMaker, sim: OpcuaSimulator
) -> None:
    text = """
driver: opcua
connection: {{endpoint: "{endpoint}"}}
groups:
  - name: g
    mode: poll
    points:
      - {{name: count, node: "{node}", writable: true}}
"""
    module = make_module(text, node=sim.node_id("Line1.Count"))  # read-only on the server
    driver = OpcuaDriver(module)
    await driver.open()
    try:
        point = module.point("count")
        assert point is not None
        with pytest.raises(DeviceFault, match=r"BadUserAccessDenied|BadNotWritable"):
            await driver.write(point, 5)
        with pytest.raises(ValueError, match=r"out of range for UInt32"):
            await driver.write(point, -1)
    finally:
        await driver.close()


async def test_methods_are_operations(make_module: ModuleMaker, sim: OpcuaSimulator) -> None:
    module = make_module()
    driver = OpcuaDriver(module)
    operations = driver.operations()
    assert set(operations) == {"add", "reset_count"}
    assert operations["add"].doc == "Add two numbers"
    with pytest.raises(DeviceUnavailable):
        await operations["add"].call({"args": [1, 2]})
    await driver.open()
    try:
        assert await operations["add"].call({"args": [1, 2.5]}) == {"outputs": [3.5]}
        with pytest.raises(ValueError, match=r"takes 2 argument"):
            await operations["add"].call({"args": [1]})
        with pytest.raises(ValueError, match=r"takes a number"):
            await operations["add"].call({"args": [1, "x"]})
        await sim.set("Line1.Count", 7)
        assert await operations["reset_count"].call({}) == {"outputs": []}
        assert sim.get("Line1.Count") == 0
    finally:
        await driver.close()


async def test_subscriptions_push_initial_values_then_changes(
    make_module: ModuleMaker, sim: OpcuaSimulator
) -> None:
    module = make_module()
    driver = OpcuaDriver(module)
    assert pushes(driver, module.groups[0])
    assert not pushes(driver, module.groups[1])
    await driver.open()
    try:
        batches = await first_batches(driver, module, 3)
        assert set(batches[0]) == {"temperature", "count"}  # every item's initial value
        counts = [b["count"].value for b in batches if "count" in b]
        assert counts == sorted(counts)
        assert all(r.timestamp is not None for b in batches for r in b.values())
        assert driver.status()["session"]["subscriptions"] == {}  # deleted on the way out
    finally:
        await driver.close()


async def test_a_server_deadband_filters_small_changes(
    make_module: ModuleMaker, sim: OpcuaSimulator
) -> None:
    text = """
driver: opcua
connection: {{endpoint: "{endpoint}", namespaces: {{sim: "urn:plantd:sim"}}}}
groups:
  - name: g
    interval: 50ms
    sampling_interval: 0s
    server_deadband: 10
    points:
      - {{name: speed, node: "ns=sim;s=Line1.Speed"}}
"""
    module = make_module(text)
    driver = OpcuaDriver(module)
    await driver.open()
    try:
        seen: list[Any] = []
        async with aclosing(driver.stream(module.groups[0])) as stream:
            async for batch in stream:
                seen.append(batch["speed"].value)
                if len(seen) > 1:
                    break
                for value in (1.0, 5.0, 9.0, 20.0):  # only 20 moves 10 or more from 0
                    await sim.set("Line1.Speed", value)
        assert seen == [0.0, 20.0]
    finally:
        await driver.close()


async def test_a_stopped_server_ends_the_stream_with_unavailable(
    make_module: ModuleMaker, sim: OpcuaSimulator
) -> None:
    module = make_module()
    driver = OpcuaDriver(module)
    await driver.open()
    try:
        async with aclosing(driver.stream(module.groups[0])) as stream:
            await anext(stream)
            await sim.stop()
            with pytest.raises(DeviceUnavailable, match=r"lost|BadShutdown|closed"):
                await anext(stream)
        with pytest.raises(DeviceUnavailable):
            await driver.read(module.groups[1])
    finally:
        await driver.close()
    with pytest.raises(DeviceUnavailable, match=r"connecting to opc.tcp://"):
        await driver.open()
