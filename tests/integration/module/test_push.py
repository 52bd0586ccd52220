"""The runtime with a driver that pushes (:class:`plantd.module.PushDriver`), against a real
broker: pushed groups are consumed as streams, not polled; failures of a stream are handled as
the door says; driver operations join the module's service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from plantd.bus import BusSubscriber, Quality, Sample
from plantd.client import AsyncClient
from plantd.config import load_config
from plantd.errors import DeviceFault, DeviceUnavailable, ServiceError
from plantd.module import DriverOperation, PushDriver, Reading, parse_module_file, pushes
from plantd.module._commands import module_service
from plantd.module._runtime import ModuleRuntime
from plantd.service import ServiceWorker, call_async
from plantd.testing import FakeDriver, FakeGroup, FakeModule, wait_for_workers
from tests.conftest import Stack
from tests.drivers.module_harness import joined
from tests.integration.module.test_runtime import write_module

MODULE = """
driver: fake
groups:
  - name: pushed
    interval: 1s
    points:
      - {name: level, value: 1.0}
      - {name: alarm, value: false}
  - name: polled
    interval: 50ms
    points:
      - {name: count, value: 0, pattern: counter}
"""


class PushingDriver(FakeDriver):
    """The fake driver, with group ``pushed`` delivered from a queue the test fills.

    Put a mapping to deliver it, an exception to raise it from the stream, or None to end it.
    """

    def __init__(self, config: FakeModule) -> None:
        super().__init__(config)
        self.queue: asyncio.Queue[Mapping[str, Reading] | BaseException | None] = asyncio.Queue()
        self.streams_opened = 0
        self.streams_closed = 0
        self.stream_closed = asyncio.Event()

    def pushes(self, group: FakeGroup) -> bool:
        return group.name == "pushed"

    async def stream(self, group: FakeGroup) -> AsyncIterator[Mapping[str, Reading]]:
        self._check_open()
        self.streams_opened += 1
        try:
            yield {p.name: Reading(p.value) for p in group.points}  # current values first
            while True:
                item = await self.queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.streams_closed += 1
            self.stream_closed.set()

    def operations(self) -> dict[str, DriverOperation]:
        async def double(params: dict[str, Any]) -> Any:
            value = params.get("x")
            if not isinstance(value, int):
                raise ValueError("x must be an integer")
            if value < 0:
                raise DeviceFault("the device refuses negative numbers")
            return {"result": 2 * value}

        return {"double": DriverOperation("Double x (a test operation).", double)}


@dataclass
class Running:
    runtime: ModuleRuntime
    driver: PushingDriver
    client: AsyncClient
    subscriber: BusSubscriber

    async def sample(self, topic: str, quality: Quality | None = None) -> Sample:
        async with asyncio.timeout(5):
            while True:
                message = await self.subscriber.receive()
                payload = message.payload
                if (
                    message.topic == topic
                    and isinstance(payload, Sample)
                    and (quality is None or payload.quality is quality)
                ):
                    return payload

    async def call(self, operation: str, params: dict[str, Any] | None = None) -> Any:
        return await call_async(self.client, self.runtime.service, operation, params)


@pytest.fixture
async def running(stack: Stack) -> AsyncIterator[Running]:
    stack.start_broker()
    config = load_config(stack.config_dir)
    module = parse_module_file(write_module(stack, MODULE), FakeModule)
    driver = PushingDriver(module)
    runtime = ModuleRuntime(config, module, driver, reconnect_initial=0.05, reconnect_max=0.2)
    sink = ServiceWorker(module_service(runtime), config)
    subscriber = BusSubscriber(config.bus.backend, ["data.m."])
    await joined(subscriber, config.bus.frontend, "data.m.-probe")
    async with asyncio.TaskGroup() as group:
        group.create_task(runtime.run(sink))
        await asyncio.to_thread(wait_for_workers, stack.endpoint, runtime.service)
        async with AsyncClient(stack.endpoint, timeout=3, retries=0) as client:
            yield Running(runtime, driver, client, subscriber)
        runtime.stop()
    subscriber.close()
    assert driver.streams_closed == driver.streams_opened, "a stream was left open"


def test_pushes_asks_the_driver() -> None:
    module = FakeModule(driver="fake", groups=(FakeGroup(name="pushed"), FakeGroup(name="x")))
    driver = PushingDriver(module)
    assert isinstance(driver, PushDriver)
    assert pushes(driver, module.groups[0])
    assert not pushes(driver, module.groups[1])
    assert not pushes(FakeDriver(module), module.groups[0])


async def test_a_pushed_group_is_streamed_not_polled(running: Running) -> None:
    first = await running.sample("data.m.level")
    assert first.value == 1.0
    running.driver.queue.put_nowait({"level": Reading(2.5, timestamp=1_700_000_000.25)})
    pushed = await running.sample("data.m.level")
    assert pushed.value == 2.5
    assert pushed.timestamp == 1_700_000_000.25  # the source timestamp is kept
    status = await running.call("status")
    assert status["groups"]["pushed"]["mode"] == "push"
    assert status["groups"]["pushed"]["deliveries"] >= 2
    assert status["groups"]["polled"]["mode"] == "poll"
    assert running.driver.reads["pushed"] == 0  # never polled
    assert running.driver.reads["polled"] > 0
    # a point left out of a delivery keeps its last value
    values = await running.call("read", {"points": ["alarm"]})
    assert values["alarm"]["value"] is False
    assert values["alarm"]["quality"] == "good"
    # a fresh read of a pushed group goes through driver.read
    await running.call("read", {"points": ["level"], "fresh": True})
    assert running.driver.reads["pushed"] == 1


async def test_unavailable_from_a_stream_reconnects_and_streams_again(running: Running) -> None:
    await running.sample("data.m.level", Quality.GOOD)
    running.driver.queue.put_nowait(DeviceUnavailable("subscription keep-alive missed"))
    bad = await running.sample("data.m.level", Quality.BAD)
    assert bad.value is None
    await running.sample("data.m.level", Quality.GOOD)  # the new stream starts with values
    assert running.driver.opened >= 2
    assert running.driver.streams_opened == 2
    status = await running.call("status")
    assert status["connection"]["connects"] >= 2


async def test_a_stream_that_ends_counts_as_a_lost_source(running: Running) -> None:
    await running.sample("data.m.level", Quality.GOOD)
    running.driver.queue.put_nowait(None)
    bad = await running.sample("data.m.level", Quality.BAD)
    assert bad.quality is Quality.BAD
    await running.sample("data.m.level", Quality.GOOD)
    assert running.driver.streams_opened == 2


async def test_a_lost_connection_elsewhere_closes_the_stream(running: Running) -> None:
    await running.sample("data.m.level", Quality.GOOD)
    running.driver.unavailable = "cable cut"  # the polled group notices first
    await running.sample("data.m.level", Quality.BAD)
    async with asyncio.timeout(5):
        await running.driver.stream_closed.wait()
    assert running.driver.streams_closed == 1
    running.driver.unavailable = None
    await running.sample("data.m.level", Quality.GOOD)
    assert running.driver.streams_opened == 2


async def test_a_fault_in_a_stream_spoils_its_group_and_it_is_opened_again(
    running: Running,
) -> None:
    await running.sample("data.m.level", Quality.GOOD)
    running.driver.queue.put_nowait(DeviceFault("BadNodeIdUnknown"))
    bad = await running.sample("data.m.level", Quality.BAD)
    assert bad.value is None
    values = await running.call("read", {"points": ["level", "count"]})
    assert values["level"]["error"] == "device fault: BadNodeIdUnknown"
    assert values["count"]["quality"] == "good"
    status = await running.call("status")
    assert status["connection"]["state"] == "connected"
    await running.sample("data.m.level", Quality.GOOD)  # after the group's interval
    assert running.driver.streams_opened == 2
    assert running.driver.opened == 1


async def test_a_driver_bug_in_a_stream_does_not_end_it(running: Running) -> None:
    await running.sample("data.m.level", Quality.GOOD)
    running.driver.queue.put_nowait(KeyError("oops"))
    await running.sample("data.m.level", Quality.BAD)
    await running.sample("data.m.level", Quality.GOOD)
    status = await running.call("status")
    assert status["groups"]["pushed"]["failures"] == 1


async def test_driver_operations_join_the_service(running: Running) -> None:
    assert await running.call("double", {"x": 21}) == {"result": 42}
    listed = await running.call("operations")
    assert "double" in {op["name"] for op in listed}
    for params, code in [({"x": "a"}, "module.bad-value"), ({"x": -1}, "module.device-fault")]:
        with pytest.raises(ServiceError) as caught:
            await running.call("double", params)
        assert caught.value.code == code


async def test_steady_pushed_points_are_republished_after_max_silence(stack: Stack) -> None:
    stack.start_broker()
    config = load_config(stack.config_dir)
    text = MODULE.replace("groups:", "defaults: {max_silence: 300ms}\ngroups:", 1)
    module = parse_module_file(write_module(stack, text), FakeModule)
    driver = PushingDriver(module)
    runtime = ModuleRuntime(config, module, driver, reconnect_initial=0.05, reconnect_max=0.2)
    subscriber = BusSubscriber(config.bus.backend, ["data.m.level"])
    await joined(subscriber, config.bus.frontend, "data.m.level-probe")
    seen: list[Sample] = []
    async with asyncio.TaskGroup() as group:
        group.create_task(runtime.run())
        async with asyncio.timeout(10):
            while len(seen) < 3:
                message = await subscriber.receive()
                if message.topic == "data.m.level" and isinstance(message.payload, Sample):
                    seen.append(message.payload)
        runtime.stop()
    subscriber.close()
    # The stream delivered the level once; the heartbeats say it is still 1.0, and when.
    assert [s.value for s in seen] == [1.0, 1.0, 1.0]
    assert seen[1].timestamp - seen[0].timestamp >= 0.3
    assert seen[2].timestamp > seen[1].timestamp
    assert driver.streams_opened == 1
