"""The module runtime with the fake driver, against a real broker: polling, publishing,
supervision and the sink operations. The runtime runs on a ManualClock: a test advances it
past the polls, backoffs and overruns it needs instead of sleeping through them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from plantd.bus import BusSubscriber, Quality, Sample
from plantd.client import AsyncClient
from plantd.config import load_config
from plantd.errors import ServiceError
from plantd.module import parse_module_file
from plantd.module._commands import module_service
from plantd.module._runtime import ModuleRuntime
from plantd.service import ServiceWorker, call_async
from plantd.testing import FakeDriver, FakeModule, ManualClock, check_driver, wait_for_workers
from tests.conftest import Stack

MODULE = """
driver: fake
defaults:
  max_silence: 10s
groups:
  - name: fast
    interval: 50ms
    points:
      - {name: flow, value: 12.5}
      - {name: speed, value: 0.0, writable: true, minimum: 0, maximum: 1500}
  - name: slow
    interval: 200ms
    points:
      - {name: state, value: idle}
      - {name: count, value: 0, pattern: counter}
"""


@dataclass
class Running:
    runtime: ModuleRuntime
    driver: FakeDriver
    client: AsyncClient
    subscriber: BusSubscriber
    clock: ManualClock

    async def samples(self, topic: str, count: int, timeout: float = 5.0) -> list[Sample]:
        found: list[Sample] = []
        async with asyncio.timeout(timeout):
            while len(found) < count:
                message = await self.subscriber.receive()
                if message.topic == topic:
                    assert isinstance(message.payload, Sample)
                    found.append(message.payload)
        return found

    async def until(self, topic: str, quality: Quality, timeout: float = 5.0) -> Sample:
        """The next sample on ``topic`` with ``quality`` (earlier ones are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.subscriber.receive()
                payload = message.payload
                if (
                    message.topic == topic
                    and isinstance(payload, Sample)
                    and payload.quality is quality
                ):
                    return payload

    async def call(self, operation: str, params: dict[str, Any] | None = None) -> Any:
        return await call_async(self.client, self.runtime.service, operation, params)


def write_module(stack: Stack, text: str = MODULE, name: str = "m") -> Path:
    modules = stack.config_dir / "modules.d"
    modules.mkdir(exist_ok=True)
    path = modules / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture
async def running(stack: Stack) -> AsyncIterator[Running]:
    stack.start_broker()
    config = load_config(stack.config_dir)
    module = parse_module_file(write_module(stack), FakeModule)
    driver = FakeDriver(module)
    clock = ManualClock()
    runtime = ModuleRuntime(
        config, module, driver, reconnect_initial=0.05, reconnect_max=0.2, clock=clock
    )
    sink = ServiceWorker(module_service(runtime), config)
    subscriber = BusSubscriber(config.bus.backend, ["data.m."])
    async with asyncio.TaskGroup() as group:
        group.create_task(runtime.run(sink))
        await asyncio.to_thread(wait_for_workers, stack.endpoint, runtime.service)
        # Connected means the schedules start at the clock's time zero: every test's clock
        # arithmetic counts from there (the first poll of each group is at 0).
        await asyncio.wait_for(runtime._connected.wait(), timeout=5)
        async with AsyncClient(stack.endpoint, timeout=3, retries=0) as client:
            yield Running(runtime, driver, client, subscriber, clock)
        runtime.stop()
        # A stopped runtime still finishes the poll in hand, and a test's slow read may be
        # part-way through a wait on the clock.
        await clock.advance(1.0)
    subscriber.close()


async def test_points_are_polled_and_published(running: Running) -> None:
    await running.clock.advance(0.5)  # the slow group polls at 0, 0.2 and 0.4 s
    counts = await running.samples("data.m.count", 3)
    assert [s.seq for s in counts] == [counts[0].seq, counts[0].seq + 1, counts[0].seq + 2]
    assert all(s.quality is Quality.GOOD for s in counts)
    assert counts[1].value == counts[0].value + 1  # type: ignore[operator]
    # flow is constant: published once, then suppressed until max_silence
    await running.clock.advance(0.32)
    status = await running.call("status")
    assert status["suppressed"] > 0
    # 0.82 s of a drift-free 50 ms schedule: polls at 0, 0.05, ... 0.8 s, and not one more
    assert status["groups"]["fast"]["polls"] == 17
    assert status["groups"]["slow"]["polls"] == 5
    assert status["connection"]["state"] == "connected"


async def test_a_lost_connection_marks_points_bad_and_recovers(running: Running) -> None:
    await running.until("data.m.state", Quality.GOOD)
    running.driver.unavailable = "cable cut"
    await running.clock.advance(0.06)  # the fast group's next poll finds the cable cut
    bad = await running.until("data.m.state", Quality.BAD)
    assert bad.value is None
    status = await running.call("status")
    assert status["connection"]["state"] in ("backoff", "connecting")
    assert "cable cut" in status["connection"]["last_error"]
    await running.clock.advance(0.5)
    # the loss, then attempts after at most 0.05, 0.1 and 0.2 s of backoff
    assert running.runtime.connection.attempts >= 4
    assert running.driver.opened == 1
    running.driver.unavailable = None
    await running.clock.advance(0.25)  # the next attempt, at most 0.2 s away, succeeds
    good = await running.until("data.m.state", Quality.GOOD)
    assert good.value == "idle"
    assert running.driver.opened >= 2
    values = await running.call("read", {"points": ["state"]})
    assert values["state"]["quality"] == "good"


async def test_a_device_fault_spoils_only_its_group(running: Running) -> None:
    await running.clock.advance(0.1)
    running.driver.faults["slow"] = "illegal data address"
    await running.clock.advance(0.15)  # the slow group's poll at 0.2 s
    await running.until("data.m.count", Quality.BAD)
    values = await running.call("read")
    assert values["count"]["error"] == "device fault: illegal data address"
    assert values["flow"]["quality"] == "good"
    status = await running.call("status")
    assert status["connection"]["state"] == "connected"
    assert status["groups"]["slow"]["error"] == "device fault: illegal data address"
    del running.driver.faults["slow"]
    await running.clock.advance(0.2)
    await running.until("data.m.count", Quality.GOOD)


async def test_a_driver_bug_never_ends_polling(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = running.driver.read
    broken = True

    async def buggy(group: Any) -> Any:
        if broken and group.name == "slow":
            raise KeyError("oops")
        return await original(group)

    monkeypatch.setattr(running.driver, "read", buggy)
    await running.clock.advance(0.25)
    await running.until("data.m.count", Quality.BAD)
    failures_before = (await running.call("status"))["groups"]["slow"]["failures"]
    await running.clock.advance(0.5)  # the polls at 0.4 and 0.6 s
    failures = (await running.call("status"))["groups"]["slow"]["failures"]
    assert failures == failures_before + 2
    broken = False
    await running.clock.advance(0.2)
    await running.until("data.m.count", Quality.GOOD)


async def test_one_bad_point_in_a_group(running: Running) -> None:
    running.driver.bad_points["state"] = "register overflow"
    await running.clock.advance(0.25)
    await running.until("data.m.state", Quality.BAD)
    values = await running.call("read", {"points": ["state", "count"]})
    assert values["state"]["error"] == "register overflow"
    assert values["count"]["quality"] == "good"


async def test_writes_are_checked_then_published(running: Running) -> None:
    result = await running.call("write", {"point": "speed", "value": 900})
    assert result == {"point": "speed", "value": 900}
    assert running.driver.writes == [("speed", 900)]
    while (await running.until("data.m.speed", Quality.GOOD)).value != 900:
        pass
    for params, code in [
        ({"point": "flow", "value": 1}, "module.not-writable"),
        ({"point": "speed", "value": 2000}, "module.bad-value"),
        ({"point": "speed", "value": -1}, "module.bad-value"),
        ({"point": "speed", "value": True}, "module.bad-value"),
        ({"point": "nope", "value": 1}, "module.unknown-point"),
        ({"point": "speed"}, "bad-request"),
    ]:
        with pytest.raises(ServiceError) as caught:
            await running.call("write", params)
        assert caught.value.code == code, params
    assert running.driver.writes == [("speed", 900)]


async def test_points_and_fresh_reads(running: Running) -> None:
    points = await running.call("points")
    by_name = {p["name"]: p for p in points}
    assert by_name["speed"]["writable"] is True
    assert by_name["speed"]["group"] == "fast"
    assert by_name["count"]["pattern"] == "counter"
    reads_before = running.driver.reads["slow"]
    values = await running.call("read", {"points": ["count"], "fresh": True})
    assert running.driver.reads["slow"] > reads_before
    assert values["count"]["quality"] == "good"


async def test_overruns_are_counted(running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    original = running.driver.read

    async def slow(group: Any) -> Any:
        await running.clock.sleep(0.12)  # longer than the fast group's 50 ms interval
        return await original(group)

    monkeypatch.setattr(running.driver, "read", slow)
    await running.clock.advance(0.8)
    status = await running.call("status")
    assert status["groups"]["fast"]["overruns"] > 0
    assert status["groups"]["fast"]["last_duration"] == pytest.approx(0.12)
    json.dumps(status)


async def test_the_fake_driver_passes_the_conformance_check(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MODULE)
    module = parse_module_file(path, FakeModule)
    readings = await check_driver(FakeDriver(module), module)
    assert readings["flow"].value == 12.5
