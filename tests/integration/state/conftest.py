"""Helpers for the state service's integration tests: start ``plantd-state`` from a stack."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from plantd.client import AsyncClient, Client
from plantd.errors import RequestTimeout, ServiceError
from plantd.service import call
from plantd.state import SERVICE_NAME, StateClient
from plantd.testing import ManagedProcess
from tests.conftest import Stack


def database(stack: Stack) -> Path:
    return Path(stack.settings["paths"]["data"]) / "state.db"


def wait_for_state(endpoint: str, timeout: float = 15.0) -> dict[str, object]:
    """Block until ``org.plantd.State`` answers ``health``; return the answer."""
    deadline = time.monotonic() + timeout
    with Client(endpoint, timeout=0.5, retries=0) as client:
        while True:
            try:
                health: dict[str, object] = call(client, SERVICE_NAME, "health")
                return health
            except (RequestTimeout, ServiceError):
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.02)


def start_state(
    stack: Stack,
    name: str = "state",
    *,
    wait: bool = True,
    env: Mapping[str, str] | None = None,
) -> ManagedProcess:
    process = ManagedProcess.plantd(
        ["plantd.state", "--config", str(stack.config_dir)],
        name=name,
        log_dir=stack.log_dir,
        env=env,
    ).start()
    stack.processes.append(process)
    if wait:
        wait_for_state(stack.endpoint)
    return process


class _StackClient(AsyncClient):
    """An AsyncClient of the stack's broker that reads its endpoint when it connects: the
    tests start the broker after this fixture is made, and its ports are known once it has
    (the client opens its connections at its first request)."""

    def __init__(self, stack: Stack, **options: Any) -> None:
        self._stack = stack
        super().__init__("", **options)

    @property  # type: ignore[override]
    def endpoint(self) -> str:
        return self._stack.endpoint

    @endpoint.setter
    def endpoint(self, value: str) -> None:
        pass  # the stack's, always


@pytest.fixture
async def state_client(stack: Stack) -> AsyncIterator[StateClient]:
    """A StateClient for the stack's broker (start the processes in the test)."""
    async with _StackClient(stack, timeout=2.0, retries=3) as client:
        yield StateClient(client)
