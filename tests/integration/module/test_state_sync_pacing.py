"""When and how much the state sync writes, against a fake state service that records every
batch: status only on change or heartbeat, values coalesced and batched, one save at a time
however slow the service, and a failing service backed off and logged once.

The runtime and its sync run on a ManualClock that the tests advance: intervals, heartbeats,
a slow service and backoff are measured in clock time, exactly, and take no real time."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from plantd.config import load_config
from plantd.errors import RequestTimeout
from plantd.module import parse_module_file
from plantd.module._runtime import ModuleRuntime
from plantd.module._state_sync import StateSync
from plantd.testing import FakeDriver, FakeModule, ManualClock
from tests.conftest import Stack
from tests.integration.module.test_runtime import write_module

SYNC_LOG = "plantd.module._state_sync"


def module_text(
    points: int = 3, *, values: bool = False, state_interval: str = "50ms", poll: str = "100ms"
) -> str:
    lines = [
        "driver: fake",
        f"state_interval: {state_interval}",
        f"state_values: {'true' if values else 'false'}",
        "groups:",
        "  - name: main",
        f"    interval: {poll}",
        "    points:",
    ]
    lines += [
        f"      - {{name: p{i}, value: 100.0, pattern: ramp, period: 1}}" for i in range(points)
    ]
    return "\n".join(lines) + "\n"


class FakeStore:
    """Takes every batch after ``delay`` seconds of ``clock`` (or fails it while ``failing``),
    and records it with the clock's time it arrived."""

    def __init__(self, clock: ManualClock, delay: float = 0.0) -> None:
        self.clock = clock
        self.delay = delay
        self.failing = False
        self.batches: list[tuple[float, list[dict[str, Any]]]] = []
        self.attempts: list[float] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.scopes: list[str] = []

    async def create_scope(self, scope: str) -> Any:
        self.scopes.append(scope)
        return {"scope": scope, "created": True, "revision": 1}

    async def batch(self, ops: list[dict[str, Any]]) -> Any:
        arrived = self.clock.monotonic()
        self.attempts.append(arrived)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.clock.sleep(self.delay)
            if self.failing:
                raise RequestTimeout("org.plantd.State", 1, 2.0)
            self.batches.append((arrived, ops))
        finally:
            self.in_flight -= 1
        return {"revision": len(self.batches)}

    def statuses(self) -> list[tuple[float, dict[str, Any]]]:
        return [
            (arrived, op["value"])
            for arrived, ops in self.batches
            for op in ops
            if op["key"] == "status"
        ]

    def value_keys(self) -> list[str]:
        return [op["key"] for _, ops in self.batches for op in ops if op["key"] != "status"]


@dataclass
class Running:
    runtime: ModuleRuntime
    driver: FakeDriver
    sync: StateSync
    store: FakeStore

    async def until(self, condition: Callable[[], bool], what: str, within: float = 10.0) -> None:
        """Advance the clock in 10 ms steps until ``condition``, at most ``within`` seconds."""
        clock = self.store.clock
        deadline = clock.elapsed + within
        await clock.settle()
        while not condition():
            if clock.elapsed >= deadline:
                raise AssertionError(f"never within {within:g} s of clock time: {what}")
            await clock.advance(0.01)


@asynccontextmanager
async def running(
    stack: Stack, text: str, store: FakeStore, heartbeat: float = 60.0
) -> AsyncIterator[Running]:
    stack.without_broker()  # the store is a fake: nothing listens, the bus neither
    config = load_config(stack.config_dir)
    module = parse_module_file(write_module(stack, text, name="tank"), FakeModule)
    driver = FakeDriver(module)
    runtime = ModuleRuntime(config, module, driver, clock=store.clock)
    sync = StateSync(config, runtime, state=store, heartbeat=heartbeat)
    async with asyncio.TaskGroup() as group:
        group.create_task(runtime.run(sync))
        try:
            # Connecting waits (in real time) for a bus subscriber that never comes; once it
            # gave up, the clock starts with the first poll.
            await asyncio.wait_for(runtime._connected.wait(), timeout=10)
            yield Running(runtime, driver, sync, store)
        finally:
            runtime.stop()
            await store.clock.advance(1.0)  # the last save, should the store be slow


def reader_view(status: dict[str, Any]) -> Any:
    """What a reader needs of a saved status (the fake driver's status has only counters)."""
    connection = status["connection"]
    return (
        (connection["state"], connection["last_error"], connection["connects"]),
        status["bad_points"],
        {name: (g["error"], g["overruns"]) for name, g in status["groups"].items()},
    )


def assert_each_write_changed_something(store: FakeStore) -> None:
    """With the heartbeat far away, no status is written that a reader would find unchanged."""
    summaries = [reader_view(status) for _, status in store.statuses()]
    for before, after in itertools.pairwise(summaries):
        assert before != after


def connected_statuses(store: FakeStore) -> list[tuple[float, dict[str, Any]]]:
    return [(t, s) for t, s in store.statuses() if s["connection"]["state"] == "connected"]


async def test_by_default_one_status_and_no_values(stack: Stack) -> None:
    store = FakeStore(ManualClock())
    async with running(stack, module_text(5), store) as run:
        await run.until(lambda: bool(connected_statuses(store)), "the connected status is saved")
        looks = run.sync.looks
        # Every value and every counter moves at each poll (ramp): nothing worth a write.
        await run.until(lambda: run.sync.looks >= looks + 10, "ten more looks")
        assert len(connected_statuses(store)) == 1  # (no poll overran: it is the clock's time)
        assert_each_write_changed_something(store)
        assert store.value_keys() == []
        assert store.scopes == ["org.plantd.module.tank"]
        assert all(len(ops) == 1 for _, ops in store.batches)  # one key per write

        # What a reader needs changes: written at the next look, the heartbeat far away.
        run.driver.bad_points["p1"] = "overflow"
        await run.until(lambda: store.statuses()[-1][1]["bad_points"] == 1, "bad point saved")
        run.driver.bad_points.clear()
        await run.until(lambda: store.statuses()[-1][1]["bad_points"] == 0, "recovery saved")
        assert store.value_keys() == []
    assert_each_write_changed_something(store)


async def test_an_unchanged_status_is_written_again_at_the_heartbeat(stack: Stack) -> None:
    store = FakeStore(ManualClock())
    heartbeat = 0.4
    async with running(stack, module_text(), store, heartbeat=heartbeat) as run:
        await run.until(lambda: len(connected_statuses(store)) >= 3, "two heartbeats")
        run.runtime.stop()
    written = connected_statuses(store)
    # 8 looks per heartbeat at 50 ms; between two writes of the unchanged status a whole
    # heartbeat passed, and the write came at the first look after it.
    repeats = [
        (t1 - t0, first, second)
        for (t0, first), (t1, second) in itertools.pairwise(written)
        if reader_view(first) == reader_view(second)
    ]
    assert len(repeats) == len(written) - 1 >= 2
    assert all(heartbeat - 1e-9 <= gap <= heartbeat + 0.05 + 1e-9 for gap, _, _ in repeats)
    (_, first), (_, second), (_, third) = written[:3]
    # The status written is the whole status: counters and saved_at as fresh as the write.
    assert first["groups"]["main"]["polls"] < second["groups"]["main"]["polls"]
    assert first["saved_at"] < second["saved_at"] < third["saved_at"]


async def test_state_values_are_coalesced_and_batched(stack: Stack) -> None:
    store = FakeStore(ManualClock())
    text = module_text(1200, values=True, state_interval="200ms", poll="200ms")
    async with running(stack, text, store) as run:
        # The first save of all 1,200 points: 500 + 500 + 200 values, the status (when it
        # changed) in the last.
        await run.until(lambda: len(store.value_keys()) >= 1200, "the first save of values")
        await run.until(lambda: run.sync.saves >= 5, "more saves")
    first = next(i for i, (_, ops) in enumerate(store.batches) if ops[0]["key"] != "status")
    sizes = [len(ops) for _, ops in store.batches[first : first + 3]]
    assert sizes in ([500, 500, 200], [500, 500, 201])
    assert sorted(store.value_keys()[:1200]) == sorted(f"value.p{i}" for i in range(1200))
    # Each save carries a point at most once (the latest reading), as it was at the save.
    for _, ops in store.batches:
        keys = [op["key"] for op in ops]
        assert len(keys) == len(set(keys))
    value = store.batches[first][1][0]["value"]
    assert set(value) == {"value", "quality", "timestamp"}


async def test_a_slow_state_service_gets_one_save_at_a_time(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, SYNC_LOG)
    interval, delay = 0.05, 0.3  # each save takes six intervals
    store = FakeStore(ManualClock(), delay=delay)
    async with running(stack, module_text(20, values=True), store) as run:
        await run.until(lambda: len(store.batches) >= 6, "six saves", within=20)
        polls = run.runtime.stats["main"].schedule.polls
        arrivals = [t for t, _ in store.batches]  # (the last save, at stop, comes at once)
    assert store.most_in_flight == 1
    assert run.sync.failures == 0
    # The next save starts one interval after the previous one ended: the backlog waits, and
    # is coalesced (20 points however many readings came meanwhile).
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert gaps == pytest.approx([delay + interval] * len(gaps))
    assert all(len(ops) <= 21 for _, ops in store.batches)
    assert polls > 2 * len(store.batches)  # polling went on at its pace (100 ms) meanwhile
    assert not [r for r in caplog.records if r.name == SYNC_LOG]


async def test_a_failing_state_service_is_backed_off_and_logged_once(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, SYNC_LOG)
    store = FakeStore(ManualClock())
    store.failing = True
    async with running(stack, module_text(3, values=True), store) as run:
        await run.until(lambda: run.sync.failures >= 5, "five failed attempts")
        # Backoff: the waits double from the interval (50 ms), each drawn from [d/2, d].
        attempts = store.attempts[:5]
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        assert 0.2 - 1e-9 <= gaps[2] <= 0.4 + 1e-9
        assert 0.4 - 1e-9 <= gaps[3] <= 0.8 + 1e-9
        polling = run.runtime.table.last
        await run.until(lambda: "p2" in polling and polling["p2"].quality.label == "good", "polls")
        store.failing = False
        await run.until(lambda: run.sync.saves >= 1, "a save after the outage", within=60)
        # Everything kept during the outage arrives in that save: every point, and the status.
        keys = {op["key"] for op in store.batches[0][1]}
        assert keys == {"value.p0", "value.p1", "value.p2", "status"}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "cannot save to the state service (RequestTimeout" in warnings[0]
    assert "saving to the state service again (after " in warnings[1]
