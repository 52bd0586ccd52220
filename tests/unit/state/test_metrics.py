"""The state service's metrics on a real store (a real SQLite file): requests counted by
operation, one observation per group commit, the database's size read from the files.

The registry is the process's: every figure is read before and after, and the test asserts
the difference."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from plantd.service import ServiceDefinition, dispatch, encode_call
from plantd.state import CreateScope, Limits, Set, StateError, Store, Write, build_definition
from plantd.state._metrics import database_bytes
from plantd.telemetry import REGISTRY
from plantd.worker import Request

SCOPE = "org.plantd.module.pump1"
CREATE = Write("create-scope", (CreateScope(SCOPE),))


def value(name: str, **labels: str) -> float:
    found = REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


def operations() -> dict[str, float]:
    return {
        sample.labels["operation"]: sample.value
        for metric in REGISTRY.collect()
        if metric.name == "plantd_state_operations"
        for sample in metric.samples
        if sample.name == "plantd_state_operations_total"
    }


def commits() -> tuple[float, float, float]:
    """(group commits, writes they acknowledged, groups of at most one write)."""
    return (
        value("plantd_state_commit_seconds_count"),
        value("plantd_state_group_commit_size_sum"),
        value("plantd_state_group_commit_size_bucket", le="1.0"),
    )


def a_set(key: str, data: Any = 1) -> Write:
    return Write("set", (Set(SCOPE, key, data, repr(data)),))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "state.db") as the_store:
        yield the_store


async def call(state: ServiceDefinition, operation: str, **params: Any) -> Any:
    """The FINAL reply, as it came (``ok`` true or false)."""
    parts: list[list[bytes]] = []
    final = await dispatch(state, Request(b"client", encode_call(operation, params), parts.append))
    return json.loads(final[0])


def test_the_catalogue_names_are_exposed() -> None:
    text = generate_latest(REGISTRY).decode()
    for line in (
        "# TYPE plantd_state_operations_total counter",
        "# TYPE plantd_state_commit_seconds histogram",
        "# TYPE plantd_state_group_commit_size histogram",
        "# TYPE plantd_state_database_bytes gauge",
    ):
        assert line in text
    assert 'plantd_state_group_commit_size_bucket{le="256.0"}' in text


async def test_requests_are_counted_by_operation_refused_ones_too(store: Store) -> None:
    state = build_definition(store, Limits(), part_bytes=300)
    before = operations()
    # Every declared operation has its series from the start, and only those.
    assert set(before) >= set(state.operations)
    await call(state, "create-scope", scope=SCOPE)
    for n in range(3):
        await call(state, "set", scope=SCOPE, key=f"k{n}", value=n)
    await call(state, "get", scope=SCOPE, key="k1")
    refused = [
        await call(state, "get", scope=SCOPE, key="nope"),
        await call(state, "set", scope=SCOPE, key="k1", value=1, bogus=True),
    ]
    assert [reply["error"]["code"] for reply in refused] == ["state.unknown-key", "bad-request"]
    await call(state, "batch", ops=[{"op": "delete", "scope": SCOPE, "key": "k0"}])
    snapshot = await call(state, "snapshot")  # streaming: counted once, not per part
    assert snapshot["result"]["keys"] == 2
    await call(state, "operations")  # the built-in listing is not one of the service's
    assert (await call(state, "truncate"))["error"]["code"] == "unknown-operation"  # nor this
    after = operations()
    delta = {name: after[name] - before.get(name, 0.0) for name in after}
    assert {name: n for name, n in delta.items() if n} == {
        "create-scope": 1,
        "set": 4,
        "get": 2,
        "batch": 1,
        "snapshot": 1,
    }
    assert set(after) == set(before)


def test_one_observation_per_group_commit(store: Store) -> None:
    store.write(CREATE)
    # Hold the writer in the first group's on_commit while ten more writes queue up: the next
    # group takes all ten, whatever the timing.
    holding, release = threading.Event(), threading.Event()

    def on_commit(events: object) -> None:
        if not holding.is_set():
            holding.set()
            release.wait(10)

    store.on_commit = on_commit
    groups_before, writes_before = store.stats.groups, store.stats.writes
    count, total, singles = commits()
    first = store.submit(a_set("first"))
    assert holding.wait(10)
    queued = [store.submit(a_set(f"k{n}", n)) for n in range(10)]
    release.set()
    for future in [first, *queued]:
        future.result(10)
    count2, total2, singles2 = commits()
    assert store.stats.groups - groups_before == 2
    assert store.stats.writes - writes_before == 11
    assert count2 - count == 2
    assert total2 - total == 11
    assert singles2 - singles == 1  # the first; the other held ten
    assert value("plantd_state_group_commit_size_bucket", le="16.0") >= 2


def test_a_refused_write_is_not_acknowledged_by_its_commit(store: Store) -> None:
    count, total, _ = commits()
    with pytest.raises(StateError, match="no scope"):
        store.write(a_set("k"))  # no scope yet: refused, its group commits nothing
    count2, total2, _ = commits()
    assert (count2 - count, total2 - total) == (1, 0)


def test_the_database_size_counts_every_open_store_while_it_is_open(tmp_path: Path) -> None:
    path = tmp_path / "sized.db"
    before = value("plantd_state_database_bytes")
    with Store(path) as store:
        opened = value("plantd_state_database_bytes")
        assert opened - before == database_bytes(path) > 0
        store.write(CREATE)
        for n in range(50):
            store.write(a_set(f"key{n}", "x" * 1000))
        grown = value("plantd_state_database_bytes")
        assert grown > opened
        assert grown - before == database_bytes(path)
    assert value("plantd_state_database_bytes") == before
