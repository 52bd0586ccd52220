"""Idempotent calls survive a kill -9 and immediate restart of the state service (issue 12, 4).

With the default heartbeats the broker keeps the killed process's 16 workers registered for up
to 7.5 s and routes requests to them; a request re-queued from one dead worker to another ends
in ``broker.worker-lost``. Reads and writes carrying a request id are retried by the client
within its overall timeout, so no call fails, and the state service's request-id deduplication
means no write is applied twice.
"""

from __future__ import annotations

import asyncio
import sys

import pytest

from plantd.client import AsyncClient
from plantd.errors import PlantdError
from plantd.state import StateClient
from tests.conftest import Stack
from tests.integration.state.conftest import start_state

SCOPE = "org.plantd.module.retry"

# The defaults of a real appliance: a dead worker stays registered for 2.5 s x 3.
DEFAULT_PACE = {"heartbeat_interval": 2.5, "heartbeat_liveness": 3}


async def _plant(stack: Stack, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "plantd.cli",
        "--config",
        str(stack.config_dir),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.slow
@pytest.mark.stack(
    broker={**DEFAULT_PACE, "request_expiry": 10.0},
    worker=DEFAULT_PACE,
    client={"timeout": 5.0, "retries": 3},
)
async def test_calls_survive_a_kill9_and_restart_of_the_state_service(stack: Stack) -> None:
    stack.start_broker()
    service = start_state(stack)
    failures: list[str] = []
    sets = 0
    calls_after_restart = 0
    restarted = asyncio.Event()

    async with AsyncClient(stack.endpoint, timeout=5.0, retries=3) as client:
        state = StateClient(client)
        await state.create_scope(SCOPE)
        await state.set(SCOPE, "counter", 0)
        sets = 1

        async def loop() -> None:
            nonlocal sets, calls_after_restart
            while calls_after_restart < 20:
                try:
                    await state.set(SCOPE, "counter", sets)
                    sets += 1
                    await state.get(SCOPE, "counter")
                except PlantdError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                if restarted.is_set():
                    calls_after_restart += 1

        calls = asyncio.create_task(loop())
        await asyncio.sleep(0.5)
        service.kill()
        start_state(stack, "state-again", wait=False)
        restarted.set()
        # A person's CLI calls at the same moment: they wait, and succeed.
        cli_get, cli_set = await asyncio.gather(
            _plant(stack, "state", "get", SCOPE, "counter"),
            _plant(stack, "state", "set", SCOPE, "other", "1"),
        )
        await asyncio.wait_for(calls, timeout=60)

        assert failures == []
        assert cli_get[0] == 0, cli_get[2]
        assert cli_set[0] == 0, cli_set[2]
        # Every acknowledged set applied once, none twice: version counts the sets exactly.
        entry = await state.get(SCOPE, "counter")
        assert entry["version"] == sets
        other = await state.get(SCOPE, "other")
        assert other["version"] == 1
