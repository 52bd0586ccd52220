"""End to end: the module runtime with the Modbus driver, against a real broker and a simulated
meter. Samples on the bus, a write over MDP, and a device reboot that nobody has to handle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from plantd_drivers.modbus import ModbusDriver, ModbusModule

from hil.modbus import Device, Simulator, TcpServer
from plantd.bus import BusSubscriber, Quality, Sample
from plantd.client import AsyncClient
from plantd.config import load_config
from plantd.module import parse_module_file
from plantd.module._commands import module_service
from plantd.module._runtime import ModuleRuntime
from plantd.service import ServiceWorker, call_async
from plantd.testing import wait_for_workers
from tests.conftest import Stack

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]

# Constant values are published once and then only every max_silence: keep that short, so a
# subscriber that joins after the first sample (ZeroMQ's slow joiner) still sees them soon.
MODULE = """
driver: modbus
defaults:
  max_silence: 100ms
connection:
  host: 127.0.0.1
  port: {port}
  timeout: 200ms
  retries: 0
  order: CDAB
  backoff_initial: 50ms
  backoff_max: 200ms
groups:
  - name: fast
    interval: 50ms
    table: input
    points:
      - {{name: voltage, address: 0, type: float32}}
      - {{name: current, address: 2, type: float32}}
  - name: settings
    interval: 100ms
    points:
      - {{name: setpoint, address: 0, type: int16, scale: 0.1, writable: true, read_back: true}}
"""


@dataclass
class Running:
    sim: Simulator
    server: TcpServer
    runtime: ModuleRuntime
    client: AsyncClient
    subscriber: BusSubscriber

    async def until(self, topic: str, quality: Quality, timeout: float = 5.0) -> Sample:
        async with asyncio.timeout(timeout):
            while True:
                message = await self.subscriber.receive()
                payload = message.payload
                sample = payload if isinstance(payload, Sample) else None
                if message.topic == topic and sample is not None and sample.quality is quality:
                    return sample

    async def call(self, operation: str, params: dict[str, Any] | None = None) -> Any:
        return await call_async(self.client, self.runtime.service, operation, params)


@pytest.fixture
async def running(stack: Stack) -> AsyncIterator[Running]:
    device = Device()
    device.map("input", 0, 4)
    device.set_value("input", 0, "float32", 230.5, order="CDAB")
    device.set_value("input", 2, "float32", 12.25, order="CDAB")
    device.map("holding", 0, 1)
    sim = Simulator({1: device})
    server = TcpServer(sim)
    await server.start()
    stack.start_broker()
    config = load_config(stack.config_dir)
    modules = stack.config_dir / "modules.d"
    modules.mkdir(exist_ok=True)
    (modules / "meter.yaml").write_text(MODULE.format(port=server.port))
    module = parse_module_file(modules / "meter.yaml", ModbusModule)
    runtime = ModuleRuntime(
        config, module, ModbusDriver(module), reconnect_initial=0.05, reconnect_max=0.2
    )
    sink = ServiceWorker(module_service(runtime), config)
    subscriber = BusSubscriber(config.bus.backend, ["data.meter."])
    async with asyncio.TaskGroup() as group:
        group.create_task(runtime.run(sink))
        await asyncio.to_thread(wait_for_workers, stack.endpoint, runtime.service)
        async with AsyncClient(stack.endpoint, timeout=3, retries=0) as client:
            yield Running(sim, server, runtime, client, subscriber)
        runtime.stop()
    subscriber.close()
    await server.stop()


async def test_values_are_published_and_written(running: Running) -> None:
    voltage = await running.until("data.meter.voltage", Quality.GOOD)
    assert voltage.value == 230.5
    result = await running.call("write", {"point": "setpoint", "value": 21.5})
    assert result == {"point": "setpoint", "value": 21.5}
    assert running.sim.devices[1].get_registers("holding", 0, 1) == [215]
    status = await running.call("status")
    assert status["driver_status"]["requests_per_cycle"] == {"fast": 1, "settings": 1}


async def test_a_device_reboot_needs_no_one(running: Running) -> None:
    await running.until("data.meter.voltage", Quality.GOOD)
    restart = asyncio.create_task(running.server.restart(downtime=0.5))
    bad = await running.until("data.meter.voltage", Quality.BAD)
    assert bad.value is None
    await restart
    good = await running.until("data.meter.voltage", Quality.GOOD, timeout=3.0)
    assert good.value == 230.5
