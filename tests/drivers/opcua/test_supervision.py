"""Session supervision in a running module: a server restart is survived without manual action
(data resumes, subscriptions are created again, nodes re-resolved), and the server is left with
exactly one session for the module — no leaks."""

from __future__ import annotations

import asyncio

from plantd_drivers.opcua import OpcuaDriver

from hil.opcua import OpcuaSimulator
from plantd.bus import Quality, Sample
from tests.conftest import Stack
from tests.drivers.module_harness import running_module
from tests.drivers.opcua.conftest import ModuleMaker


def counting(previous: Sample) -> object:
    return lambda sample: sample.value > previous.value  # type: ignore[operator]


async def test_a_server_restart_is_survived_with_one_session(
    stack: Stack, make_module: ModuleMaker, sim: OpcuaSimulator
) -> None:
    module = make_module()
    driver = OpcuaDriver(module)
    async with running_module(stack, module, driver) as running:
        before = await running.sample("data.line.count", Quality.GOOD)
        await running.sample("data.line.count", Quality.GOOD, counting(before))
        assert sim.session_count() == 1

        # Down long enough for several reconnect attempts; the namespace index moves too.
        restart = asyncio.create_task(sim.restart(down_for=1.0, shift_namespaces=2))
        bad = await running.sample("data.line.count", Quality.BAD)
        assert "lost" in str((await running.call("read", {"points": ["count"]}))["count"])
        await restart
        good = await running.sample("data.line.count", Quality.GOOD)
        await running.sample("data.line.count", Quality.GOOD, counting(good))  # it moves again
        assert good.timestamp > bad.timestamp
        assert sim.namespace_index == 4  # was 2: NodeIds by alias and paths were re-resolved

        temperature = await running.call("read", {"points": ["temperature", "speed"]})
        assert temperature["temperature"]["quality"] == "good"
        assert temperature["speed"]["quality"] == "good"
        status = await running.call("status")
        assert status["connection"]["connects"] >= 2
        assert status["driver_status"]["session"]["subscriptions"]["live"]["items"] == 2
        assert sim.session_count() == 1  # the new session only: nothing leaked
        assert sim.restarts == 1
        # writes and methods work on the new session
        assert (await running.call("write", {"point": "speed", "value": 300}))["value"] == 300
        assert sim.get("Line1.Speed") == 300.0
        assert await running.call("add", {"args": [2, 3]}) == {"outputs": [5.0]}
    assert sim.session_count() == 0  # the module closed its session when it stopped


async def test_a_server_that_stays_down_is_retried_until_it_is_back(
    stack: Stack, make_module: ModuleMaker, sim: OpcuaSimulator
) -> None:
    module = make_module()
    driver = OpcuaDriver(module)
    await sim.stop()
    async with running_module(stack, module, driver) as running:
        await running.until(lambda: running.runtime.connection.attempts >= 2, "two failed attempts")
        status = await running.call("status")
        assert status["connection"]["state"] in ("backoff", "connecting")
        assert "connecting to opc.tcp://" in status["connection"]["last_error"]
        assert status["connection"]["failed_attempts"] >= 2
        await sim.start()
        await running.sample("data.line.count", Quality.GOOD)
        assert sim.session_count() == 1
