"""The state service's metrics with the service behind a real broker: the service runs in this
process (its metrics are this process's :data:`~plantd.telemetry.REGISTRY`), on a real SQLite
file, and is called through the broker like any client calls it.

The registry is the process's: every figure is read before and after, and the test asserts
the difference."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from plantd.config import load_config
from plantd.errors import ServiceError
from plantd.state import StateClient, StateService, Store, open_store
from plantd.state._metrics import database_bytes
from plantd.telemetry import REGISTRY
from tests.conftest import Stack
from tests.integration.state.conftest import _StackClient

SCOPE = "org.plantd.module.pump1"


def value(name: str, **labels: str) -> float:
    found = REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


def operations(*names: str) -> dict[str, float]:
    return {name: value("plantd_state_operations_total", operation=name) for name in names}


@pytest.fixture
async def service(stack: Stack) -> AsyncIterator[StateService]:
    """The state service, in this process, serving through the stack's broker."""
    stack.start_broker()
    config = load_config(stack.config_dir)
    store = open_store(config)
    try:
        state = StateService(config, store)
        running = asyncio.create_task(state.run())
        try:
            async with asyncio.timeout(15):
                await state.connected.wait()
            yield state
        finally:
            state.stop()
            await running
    finally:
        store.close()


@pytest.fixture
async def state_client(stack: Stack) -> AsyncIterator[StateClient]:
    """No retries (a retried request is another request, counted): one long timeout."""
    async with _StackClient(stack, timeout=30.0, retries=0) as client:
        yield StateClient(client)


# The test counts what the service did, and a request whose worker the broker took for dead
# is given to another worker (worker_loss_retries) and done twice: 8 sets were, when the suite's
# fast heartbeats (0.8 s) expired all 8 workers of this process under CI's load. Heartbeats
# that only a stall of seconds expires.
UNHURRIED = {"heartbeat_interval": 1.0, "heartbeat_liveness": 20}


@pytest.mark.stack(state={"workers": 8}, broker=UNHURRIED, worker=UNHURRIED)
async def test_requests_commits_and_size_through_the_broker(
    service: StateService, state_client: StateClient
) -> None:
    store: Store = service.store
    names = ("create-scope", "set", "get", "batch", "snapshot", "health", "delete")
    requests = operations(*names)
    commits = value("plantd_state_commit_seconds_count")
    written = value("plantd_state_group_commit_size_sum")
    groups, writes = store.stats.groups, store.stats.writes
    size = value("plantd_state_database_bytes")
    assert size >= database_bytes(store.path) > 0

    await state_client.create_scope(SCOPE)
    # Many writes at once, over several workers: they share group commits.
    await asyncio.gather(*(state_client.set(SCOPE, f"k{n}", "x" * 2000) for n in range(40)))
    for n in range(5):
        assert (await state_client.get(SCOPE, f"k{n}"))["value"] == "x" * 2000
    with pytest.raises(ServiceError) as refused:
        await state_client.delete(SCOPE, "nope")
    assert refused.value.code == "state.unknown-key"
    await state_client.batch([{"op": "delete", "scope": SCOPE, "key": "k0"}])
    snapshot = await state_client.snapshot()
    assert snapshot.keys() == 39
    health = await state_client.health()

    delta = {name: n - requests[name] for name, n in operations(*names).items()}
    assert delta == {
        "create-scope": 1,
        "set": 40,
        "get": 5,
        "batch": 1,
        "snapshot": 1,
        "health": 1,
        "delete": 1,
    }
    # One observation per group commit; the sizes add up to the writes acknowledged
    # (create-scope, 40 sets, the batch; the refused delete is in no group's size).
    assert value("plantd_state_commit_seconds_count") - commits == store.stats.groups - groups
    assert value("plantd_state_group_commit_size_sum") - written == 42
    assert store.stats.writes - writes == 42
    assert health["commits"] == store.stats.groups
    assert value("plantd_state_database_bytes") > size
