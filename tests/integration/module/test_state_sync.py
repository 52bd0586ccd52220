"""A module keeps its last values and status in the state service, and does not mind it
being away."""

from __future__ import annotations

import asyncio
import json

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

MODULE = """
driver: fake
state_interval: 200ms
groups:
  - name: main
    interval: 50ms
    points:
      - {name: level, value: 1.5}
      - {name: odd, value: 0.0}
"""


def start_state(stack: Stack) -> ManagedProcess:
    process = ManagedProcess.plantd(
        ["plantd.state", "--config", str(stack.config_dir)], name="state", log_dir=stack.log_dir
    ).start()
    stack.processes.append(process)
    wait_for_workers(stack.endpoint, "org.plantd.State")
    return process


async def get(state: StateClient, key: str) -> object:
    return (await state.get("org.plantd.module.tank", key))["value"]


async def test_last_values_and_status_land_in_state(stack: Stack) -> None:
    stack.start_broker()
    state_process = start_state(stack)
    config = load_config(stack.config_dir)
    module = parse_module_file(write_module(stack, MODULE, name="tank"), FakeModule)
    driver = FakeDriver(module)
    driver.values["odd"] = float("nan")  # a valid sample, not valid JSON: stored as text
    runtime = ModuleRuntime(config, module, driver)
    sync = StateSync(config, runtime)
    async with asyncio.TaskGroup() as group, AsyncClient(stack.endpoint, timeout=3) as client:
        group.create_task(runtime.run(sync))
        state = StateClient(client)

        async def stored(key: str) -> object:
            for _ in range(100):
                try:
                    return await get(state, key)
                except ServiceError as exc:
                    # not there yet, or the state service was just killed under the request
                    if exc.code not in ("state.unknown-scope", "state.unknown-key") and not (
                        exc.code.startswith("broker.")
                    ):
                        raise
                except RequestTimeout:
                    pass
                await asyncio.sleep(0.05)
            raise AssertionError(f"{key} never stored")

        level = await stored("value.level")
        assert level == {**level, "value": 1.5, "quality": "good"}  # type: ignore[dict-item]
        assert (await stored("value.odd"))["value"] == "nan"  # type: ignore[index]
        status = await stored("status")
        assert status["module"] == "tank"  # type: ignore[index]

        # The state service goes away: the module polls on, and catches up when it returns.
        state_process.kill()
        driver.values["level"] = 7.25
        for _ in range(300):  # the state client times out after 2 s, then the save fails
            if sync.failures:
                break
            await asyncio.sleep(0.05)
        assert sync.failures > 0
        assert runtime.table.last["level"].value == 7.25
        state_process.start()
        await asyncio.to_thread(wait_for_workers, stack.endpoint, "org.plantd.State")
        for _ in range(100):
            if (await stored("value.level"))["value"] == 7.25:  # type: ignore[index]
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the value saved during the outage never arrived")
        runtime.stop()
    json.dumps(runtime.status())
