"""plantd-control as a real process: bus in, alarm events and calculated points out, loop and
interlock writes through a module's ``write`` operation, alarm state that survives kill -9.

The module is played by the test: it publishes the points on the bus as a module would, and
serves ``org.plantd.module.tank`` with a ``write`` operation that records what it is asked.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from plantd.bus import BusPublisher, BusSubscriber, Quality, Record, Sample
from plantd.client import AsyncClient
from plantd.config import load_config
from plantd.errors import ServiceError
from plantd.service import Json, Params, ServiceDefinition, ServiceWorker, call_async, param
from plantd.testing import ManagedProcess, wait_for_workers
from tests.conftest import Stack

ALARMS = """\
alarms:
  - name: tank-high
    point: tank.level
    type: high
    limit: 4.5
    deadband: 0.1
    priority: high
    message: Tank level high
  - name: tank-high-high
    point: tank.level
    type: high-high
    limit: 4.6
    priority: urgent
"""
CALC = """\
calc:
  - name: volume
    expr: "tank.level * 12"
    unit: m³
"""
CONTROL = """\
loops:
  - name: level
    measurement: tank.level
    output: tank.valve
    setpoint: 3.0
    period: 200ms
    kp: 10
    ti: 20s
    action: direct
    output_min: 0
    output_max: 100
    mode: auto
    stale_after: 1s
    on_failure: hold
interlocks:
  - name: overflow
    when: "tank.level > 4.8"
    output: tank.pump
    safe_value: false
    reset: manual
"""


@dataclass
class Plant:
    """The test's side of the stack: the tank module it plays, and the control process."""

    stack: Stack
    control: ManagedProcess
    publisher: BusPublisher
    events: BusSubscriber
    client: AsyncClient
    writes: list[tuple[str, Any]] = field(default_factory=list)
    readings: dict[str, Json] = field(default_factory=dict)  # what the module's read answers

    def level(self, value: float, quality: Quality = Quality.GOOD) -> None:
        stamp = _now()
        self.publisher.publish_batch("data.tank", [("level", value, stamp, quality)])
        self.readings["level"] = {"value": value, "quality": quality.label, "timestamp": stamp}

    async def restart_control(self) -> None:
        self.control.kill()
        self.control.start()
        await asyncio.to_thread(wait_for_workers, self.stack.endpoint, "org.plantd.Alarms")

    async def call(self, service: str, operation: str, params: dict[str, Json]) -> Json:
        return await call_async(self.client, service, operation, params, timeout=5.0)

    async def next_on(self, prefix: str, timeout: float = 10.0, **fields: Any) -> Any:
        """The next message on ``prefix`` (whose record has ``fields``), feeding the level
        meanwhile is the caller's business."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.events.receive()
                if not message.topic.startswith(prefix):
                    continue
                payload = message.payload
                if isinstance(payload, Record):
                    if all(payload.fields.get(k) == v for k, v in fields.items()):
                        return payload.fields
                elif not fields:
                    return payload


def _now() -> float:
    import time

    return time.time()


def write_plan(config_dir: Path, **files: str) -> None:
    for directory, text in files.items():
        folder = config_dir / f"{directory}.d"
        folder.mkdir(exist_ok=True)
        (folder / "plant.yaml").write_text(textwrap.dedent(text))


def tank_module(writes: list[tuple[str, Any]], readings: dict[str, Json]) -> ServiceDefinition:
    definition = ServiceDefinition("org.plantd.module.tank", "the test's tank")

    @definition.operation("read", access="read")
    async def _read(params: Params) -> Json:
        return {name: readings[name] for name in param(params, "points", list) if name in readings}

    @definition.operation("write", access="operate")
    async def _write(params: Params) -> Json:
        writes.append((param(params, "point", str), params["value"]))
        return params["value"]

    return definition


@pytest.fixture
async def plant(stack: Stack) -> AsyncIterator[Plant]:
    stack.start_broker()
    write_plan(stack.config_dir, alarms=ALARMS, calc=CALC, control=CONTROL)
    config = load_config(stack.config_dir)
    writes: list[tuple[str, Any]] = []
    readings: dict[str, Json] = {}
    worker = ServiceWorker(tank_module(writes, readings), config)
    worker_task = asyncio.create_task(worker.run())
    bus = stack.settings["bus"]
    events = BusSubscriber(bus["backend"], ["event.alarm.", "event.control.", "data.calc."])
    publisher = BusPublisher(bus["frontend"])
    control = ManagedProcess.plantd(
        ["plantd.control", "--config", str(stack.config_dir)], name="control", log_dir=stack.log_dir
    ).start()
    stack.processes.append(control)
    client = AsyncClient.from_config(stack.endpoint, config.client)
    try:
        for service in ("org.plantd.Alarms", "org.plantd.Control", "org.plantd.module.tank"):
            await asyncio.to_thread(wait_for_workers, stack.endpoint, service)
        await publisher.wait_for_subscribers()
        yield Plant(stack, control, publisher, events, client, writes, readings)
    finally:
        worker.stop()
        await asyncio.wait_for(worker_task, 10)
        await client.aclose()
        publisher.close()
        events.close()


async def until(predicate: Any, feed: Any, timeout: float = 10.0) -> None:
    """Call ``feed()`` every 0.1 s until ``predicate()`` holds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            feed()
            await asyncio.sleep(0.1)


async def test_an_alarm_is_raised_acknowledged_and_its_state_survives_kill_9(plant: Plant) -> None:
    plant.level(2.0)
    plant.level(4.7)
    raised = await plant.next_on("event.alarm.tank-high", transition="raised")
    assert (raised["state"], raised["value"], raised["limit"]) == ("unacknowledged", 4.7, 4.5)
    acked = await plant.call("org.plantd.Alarms", "ack", {"alarm": "tank-high", "comment": "seen"})
    assert acked[0]["state"] == "acknowledged"
    assert acked[0]["comment"] == "seen"
    # Acknowledged means on disk: a kill -9 right after the answer keeps it.
    await plant.restart_control()
    listed = await plant.call("org.plantd.Alarms", "list", {})
    (alarm,) = [entry for entry in listed if entry["alarm"] == "tank-high"]
    assert (alarm["state"], alarm["active"], alarm["seq"]) == ("acknowledged", True, 2)
    with pytest.raises(ServiceError) as refused:
        await plant.call("org.plantd.Alarms", "ack", {"alarm": "tank-high"})
    assert refused.value.code == "alarm.not-acknowledgeable"
    cleared = asyncio.create_task(plant.next_on("event.alarm.tank-high", transition="cleared"))
    await until(cleared.done, lambda: plant.level(4.0))
    assert (cleared.result()["state"], cleared.result()["seq"]) == ("normal", 3)
    history = await plant.call("org.plantd.Alarms", "history", {"alarm": "tank-high"})
    assert [event["transition"] for event in history] == ["cleared", "acknowledged", "raised"]


async def test_acknowledging_several_refuses_a_typo_whole_and_skips_one_already_done(
    plant: Plant,
) -> None:
    plant.level(4.7)
    await plant.next_on("event.alarm.tank-high-high", transition="raised")
    with pytest.raises(ServiceError) as refused:
        await plant.call("org.plantd.Alarms", "ack", {"alarms": ["tank-high", "tank-hgih"]})
    assert (refused.value.code, "'tank-hgih'" in refused.value.message) == (
        "alarm.unknown",
        True,
    )
    unacknowledged = await plant.call("org.plantd.Alarms", "list", {"state": "unacknowledged"})
    assert [entry["alarm"] for entry in unacknowledged] == ["tank-high-high", "tank-high"]
    await plant.call("org.plantd.Alarms", "ack", {"alarm": "tank-high"})
    both = await plant.call("org.plantd.Alarms", "ack", {"alarms": ["tank-high", "tank-high-high"]})
    assert [event["alarm"] for event in both] == ["tank-high-high"]
    assert await plant.call("org.plantd.Alarms", "list", {"state": "unacknowledged"}) == []


async def test_an_unknown_alarm_is_named(plant: Plant) -> None:
    with pytest.raises(ServiceError) as refused:
        await plant.call("org.plantd.Alarms", "shelve", {"alarm": "tank-hihg", "duration": 60})
    assert refused.value.code == "alarm.unknown"
    assert "tank-hihg" in refused.value.message


async def test_a_calculated_point_carries_its_input_quality(plant: Plant) -> None:
    good = asyncio.create_task(plant.next_on("data.calc.volume"))
    await until(good.done, lambda: plant.level(2.5))
    sample = good.result()
    assert isinstance(sample, Sample)
    assert (sample.value, sample.quality) == (30.0, Quality.GOOD)
    (calc,) = (await plant.call("org.plantd.Control", "list", {}))["calc"]
    assert (calc["point"], calc["value"], calc["quality"], calc["unit"]) == (
        "calc.volume",
        30.0,
        "good",
        "m³",
    )
    plant.level(2.5, Quality.BAD)
    while True:
        sample = await plant.next_on("data.calc.volume")
        if sample.quality is not Quality.GOOD:
            break
    assert sample.quality is Quality.BAD


async def test_a_loop_writes_through_the_module_then_holds_when_its_input_goes_stale(
    plant: Plant,
) -> None:
    await until(lambda: len(plant.writes) >= 3, lambda: plant.level(3.5))
    assert {point for point, _ in plant.writes} == {"valve"}
    assert all(0 <= value <= 100 for _, value in plant.writes)
    assert plant.writes[-1][1] > 0  # direct action, level above setpoint: the valve opens
    # No more samples: after stale_after the loop fails, and on_failure: hold stops writing.
    failed = await plant.next_on("event.control.level", transition="failed")
    assert failed["kind"] == "loop"
    written = len(plant.writes)
    status = await plant.call("org.plantd.Control", "list", {})
    (loop,) = status["loops"]
    assert loop["mode"] == "failed"
    await asyncio.sleep(1.0)  # five periods with no input: none of them may write
    assert len(plant.writes) == written


async def test_an_interlock_holds_its_safe_value_until_reset_after_it_clears(
    plant: Plant,
) -> None:
    tripped = asyncio.create_task(plant.next_on("event.control.overflow", transition="tripped"))
    await until(tripped.done, lambda: plant.level(4.9))
    await until(lambda: ("pump", False) in plant.writes, lambda: plant.level(4.9))
    with pytest.raises(ServiceError) as refused:
        await plant.call("org.plantd.Control", "reset", {"interlock": "overflow"})
    assert refused.value.code == "control.still-tripped"
    cleared = asyncio.create_task(plant.next_on("event.control.overflow", transition="cleared"))
    await until(cleared.done, lambda: plant.level(3.0))
    reset = await plant.call("org.plantd.Control", "reset", {"interlock": "overflow"})
    assert reset[0]["transition"] == "reset"
    assert reset[0]["by"] == "local"  # without CURVE nobody is named


def test_a_wrong_file_stops_the_start_naming_file_and_line(stack: Stack) -> None:
    stack.start_broker()
    write_plan(stack.config_dir, alarms=ALARMS.replace("limit: 4.5", "limit: high"))
    control = ManagedProcess.plantd(
        ["plantd.control", "--config", str(stack.config_dir)], name="control", log_dir=stack.log_dir
    ).start()
    stack.processes.append(control)
    assert control.process is not None
    assert control.process.wait(timeout=30) == 2
    assert "alarms.d/plant.yaml:5: alarms[0].limit" in control.log_text()


async def test_a_lost_bus_fails_the_loop_and_its_return_brings_it_back(plant: Plant) -> None:
    """The broker (bus and MDP) dies: no samples come, the loop goes to its failure action;
    the broker comes back: samples again, the loop recovers and writes again."""
    await until(lambda: len(plant.writes) >= 2, lambda: plant.level(3.5))
    broker = plant.stack.processes[0]
    broker.kill()
    await until(lambda: "loop level failed" in plant.control.log_text(), lambda: None)
    broker.start()
    plant.stack.broker_started(broker)
    recovered = lambda: "loop level recovered" in plant.control.log_text()  # noqa: E731
    await until(recovered, lambda: plant.level(3.5), timeout=20)
    written = len(plant.writes)
    await until(lambda: len(plant.writes) > written, lambda: plant.level(3.5))


async def test_start_values_are_asked_of_the_module_not_waited_for(plant: Plant) -> None:
    """A point that does not change publishes nothing: a restarted plantd-control asks the
    module for it, so its calculation is there at once."""
    plant.readings["level"] = {"value": 2.5, "quality": "good", "timestamp": _now()}
    await plant.restart_control()
    sample = await plant.next_on("data.calc.volume")  # no bus sample of tank.level at all
    assert (sample.value, sample.quality) == (30.0, Quality.GOOD)
    status = await plant.call("org.plantd.Control", "list", {})
    assert status["status"]["points_primed"] == 1
