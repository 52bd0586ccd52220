"""A module keeps its status (and, with ``state_values: true``, its last values) in the state
service, and does not mind it being away."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from plantd.client import AsyncClient
from plantd.config import load_config
from plantd.errors import RequestTimeout, ServiceError
from plantd.module import parse_module_file
from plantd.module._runtime import ModuleRuntime
from plantd.module._state_sync import StateSync
from plantd.state import StateClient
from plantd.testing import FakeDriver, FakeModule, ManagedProcess, wait_for_workers
from tests.conftest import Stack
from tests.integration.module.test_runtime import write_module

T = TypeVar("T")

MODULE = """
driver: fake
state_interval: 200ms
groups:
  - name: main
    interval: 50ms
    points:
      - {name: level, value: 1.5}
      - {name: odd, value: 0.0}
      - {name: ramp, value: 10.0, pattern: ramp, period: 1}
"""

SCOPE = "org.plantd.module.tank"


def start_state(stack: Stack) -> ManagedProcess:
    process = ManagedProcess.plantd(
        ["plantd.state", "--config", str(stack.config_dir)], name="state", log_dir=stack.log_dir
    ).start()
    stack.processes.append(process)
    wait_for_workers(stack.endpoint, "org.plantd.State")
    return process


async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, timeout: float = 10.0
) -> T:
    """The first truthy answer of ``probe``, asked every 50 ms until ``timeout``. Answers
    that say "not there yet" (unknown scope or key, the state service just killed under the
    request) count as no answer."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            found = await probe()
            if found:
                return found
        except ServiceError as exc:
            if exc.code not in ("state.unknown-scope", "state.unknown-key") and not (
                exc.code.startswith("broker.")
            ):
                raise
        except RequestTimeout:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never within {timeout:g} s: {what}")
        await asyncio.sleep(0.05)


async def stored_keys(state: StateClient) -> list[str]:
    page = await state.list(SCOPE, limit=1000)
    return [item["key"] for item in page["keys"]]


async def test_by_default_only_the_status_is_saved(stack: Stack) -> None:
    stack.start_broker()
    state_process = start_state(stack)
    config = load_config(stack.config_dir)
    module = parse_module_file(write_module(stack, MODULE, name="tank"), FakeModule)
    driver = FakeDriver(module)
    runtime = ModuleRuntime(config, module, driver)
    sync = StateSync(config, runtime)
    async with asyncio.TaskGroup() as group, AsyncClient(stack.endpoint, timeout=3) as client:
        group.create_task(runtime.run(sync))
        state = StateClient(client)

        async def connected() -> Any:
            entry = await state.get(SCOPE, "status")
            return entry if entry["value"]["connection"]["state"] == "connected" else None

        # The module saves its status at once (connecting), then when it connects.
        first = await eventually(connected, "the connected status is saved")
        status = first["value"]
        assert status["module"] == "tank"
        assert status["saved_at"] > 0
        assert await stored_keys(state) == ["status"]  # no value.<point> keys

        # Values change every poll (ramp), counters too: the status is not written again.
        looks = sync.looks
        await until(lambda: sync.looks >= looks + 5, "five more looks")
        again = await state.get(SCOPE, "status")
        assert (again["version"], again["revision"]) == (first["version"], first["revision"])
        assert await stored_keys(state) == ["status"]

        # A point goes bad: that is worth a write, at the next interval.
        driver.bad_points["level"] = "overflow"

        async def bad_points() -> int:
            return int((await state.get(SCOPE, "status"))["value"]["bad_points"])

        assert await eventually(bad_points, "the bad point is in the saved status") == 1

        # The state service goes away: the module polls on, and catches up when it returns.
        state_process.kill()
        driver.bad_points.clear()
        polls = runtime.stats["main"].schedule.polls
        await until(lambda: sync.failures > 0, "a save fails", timeout=15)
        await until(lambda: runtime.stats["main"].schedule.polls > polls + 5, "polls")
        assert runtime.table.last["level"].quality.label == "good"
        state_process.start()
        await asyncio.to_thread(wait_for_workers, stack.endpoint, "org.plantd.State")

        async def recovered() -> bool:
            return await bad_points() == 0

        await eventually(recovered, "the status saved during the outage arrives", timeout=15)
        assert await stored_keys(state) == ["status"]
        runtime.stop()
    json.dumps(runtime.status())


async def test_with_state_values_last_values_are_saved_too(stack: Stack) -> None:
    stack.start_broker()
    state_process = start_state(stack)
    config = load_config(stack.config_dir)
    text = MODULE.replace("state_interval: 200ms", "state_interval: 200ms\nstate_values: true")
    module = parse_module_file(write_module(stack, text, name="tank"), FakeModule)
    assert module.state_values
    driver = FakeDriver(module)
    driver.values["odd"] = float("nan")  # a valid sample, not valid JSON: stored as text
    runtime = ModuleRuntime(config, module, driver)
    sync = StateSync(config, runtime)
    async with asyncio.TaskGroup() as group, AsyncClient(stack.endpoint, timeout=3) as client:
        group.create_task(runtime.run(sync))
        state = StateClient(client)

        async def stored(key: str) -> Any:
            return (await state.get(SCOPE, key))["value"]

        level = await eventually(lambda: stored("value.level"), "value.level is saved")
        assert level == {**level, "value": 1.5, "quality": "good"}
        odd = await eventually(lambda: stored("value.odd"), "value.odd is saved")
        assert odd["value"] == "nan"
        assert (await eventually(lambda: stored("status"), "the status is saved"))[
            "module"
        ] == "tank"
        assert sorted(await stored_keys(state)) == [
            "status",
            "value.level",
            "value.odd",
            "value.ramp",
        ]

        # The state service goes away: the module polls on, and catches up when it returns.
        state_process.kill()
        driver.values["level"] = 7.25
        await until(lambda: sync.failures > 0, "a save fails", timeout=15)
        assert runtime.table.last["level"].value == 7.25
        state_process.start()
        await asyncio.to_thread(wait_for_workers, stack.endpoint, "org.plantd.State")

        async def caught_up() -> bool:
            return bool((await stored("value.level"))["value"] == 7.25)

        await eventually(caught_up, "the value saved during the outage arrives", timeout=15)
        runtime.stop()
    json.dumps(runtime.status())


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if condition():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never within {timeout:g} s: {what}")
        await asyncio.sleep(0.02)
