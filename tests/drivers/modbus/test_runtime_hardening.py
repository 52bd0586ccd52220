"""Issue 12, item 10a: bad points keep being republished every max_silence while a failure
lasts, so a subscriber can tell a dead device (bad samples keep coming) from a dead module
(nothing comes). Before the fix a lost connection or a failing group published one bad sample
and then nothing for as long as the outage lasted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from plantd_drivers.modbus import ModbusDriver, ModbusModule

from hil.modbus import Device, Simulator, TcpServer
from plantd.bus import Quality
from plantd.module import parse_module_file
from tests.conftest import Stack
from tests.drivers.module_harness import RunningModule, running_module, write_module

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]

MODULE = """
driver: modbus
defaults:
  max_silence: 100ms
connection:
  host: 127.0.0.1
  port: {port}
  timeout: 100ms
  retries: 0
  backoff_initial: 50ms
  backoff_max: 200ms
groups:
  - name: fast
    interval: 50ms
    table: input
    points:
      - {{name: level, address: 0, type: uint16}}
"""

BAD_SAMPLES = 5  # one is what the old code sent for a whole outage


async def _running(stack: Stack, sim: Simulator, server: TcpServer) -> AsyncIterator[RunningModule]:
    path = write_module(stack.config_dir / "modules.d", MODULE.format(port=server.port), "tank")
    module = parse_module_file(path, ModbusModule)
    async with running_module(stack, module, ModbusDriver(module)) as running:
        yield running


def _tank() -> Simulator:
    device = Device()
    device.map("input", 0, 1)
    device.set_registers("input", 0, [42])
    return Simulator({1: device})


async def _bad_samples_keep_coming(running: RunningModule) -> None:
    first = await running.sample("data.tank.level", Quality.BAD)
    stamps = [first.timestamp]
    for _ in range(BAD_SAMPLES - 1):
        sample = await running.sample("data.tank.level", Quality.BAD)
        stamps.append(sample.timestamp)
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == BAD_SAMPLES


async def test_bad_points_are_republished_while_the_connection_is_down(stack: Stack) -> None:
    sim = _tank()
    server = TcpServer(sim)
    await server.start()
    async for running in _running(stack, sim, server):
        good = await running.sample("data.tank.level", Quality.GOOD)
        assert good.value == 42
        await server.stop()  # the device is gone: every reconnect fails the same way
        await _bad_samples_keep_coming(running)
        assert not running.runtime.connected


async def test_bad_points_are_republished_while_their_group_keeps_failing(stack: Stack) -> None:
    sim = _tank()
    server = TcpServer(sim)
    await server.start()
    try:
        async for running in _running(stack, sim, server):
            await running.sample("data.tank.level", Quality.GOOD)
            sim.fail(1, 4)  # every read refused: a DeviceFault for the group, every poll
            await _bad_samples_keep_coming(running)
            assert running.runtime.connected
            assert running.runtime.stats["fast"].error is not None
    finally:
        await server.stop()
