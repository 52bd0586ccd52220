"""The module runtime's timers on a ManualClock, with the fake driver and a publisher that
records what it is given (no sockets): poll deadlines, overruns, reconnect backoff and the
heartbeat of bad points, each at the clock time it is due."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from plantd.bus import Quality, SampleValue
from plantd.config import load_config
from plantd.module import parse_module_file
from plantd.module._runtime import ModuleRuntime
from plantd.testing import FakeDriver, FakeModule, ManualClock, write_config

MODULE = """
driver: fake
defaults:
  max_silence: 10s
groups:
  - name: main
    interval: 1s
    points:
      - {name: flow, value: 12.5}
      - {name: count, value: 0, pattern: counter}
"""


class RecordingPublisher:
    """What the point table publishes, with the clock time of each batch."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.batches: list[tuple[float, list[tuple[str, SampleValue, float, Quality]]]] = []

    async def wait_for_subscribers(self, timeout: float = 1.0) -> bool:
        return True

    def publish_batch(
        self, topic: str, samples: Iterable[tuple[str, SampleValue, float, Quality]]
    ) -> int:
        batch = list(samples)
        self.batches.append((self.clock.elapsed, batch))
        return len(batch)

    def close(self) -> None:
        pass

    def published(self, point: str) -> list[tuple[float, SampleValue, float, Quality]]:
        """(clock elapsed, value, timestamp, quality) of every sample of ``point``."""
        return [
            (at, value, stamp, quality)
            for at, batch in self.batches
            for name, value, stamp, quality in batch
            if name == point
        ]


@dataclass
class Harness:
    runtime: ModuleRuntime
    driver: FakeDriver
    clock: ManualClock
    publisher: RecordingPublisher
    opens: list[float]  # clock elapsed of every open() attempt
    reads: list[float]  # clock elapsed of every read's start
    read_times: list[float]  # how long the next reads take, in clock time (then no time)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    config = load_config(write_config(tmp_path / "etc", {}))
    path = tmp_path / "m.yaml"
    path.write_text(MODULE)
    module = parse_module_file(path, FakeModule)
    driver = FakeDriver(module)
    clock = ManualClock()
    publisher = RecordingPublisher(clock)
    runtime = ModuleRuntime(
        config,
        module,
        driver,
        publisher=publisher,  # type: ignore[arg-type]
        reconnect_initial=1.0,
        reconnect_max=8.0,
        clock=clock,
    )
    opens: list[float] = []
    reads: list[float] = []
    read_times: list[float] = []
    open_, read = driver.open, driver.read

    async def recorded_open() -> None:
        opens.append(clock.elapsed)
        await open_()

    async def recorded_read(group: Any) -> Any:
        reads.append(clock.elapsed)
        if read_times:
            await clock.sleep(read_times.pop(0))
        return await read(group)

    driver.open = recorded_open  # type: ignore[method-assign]
    driver.read = recorded_read  # type: ignore[method-assign]
    task = asyncio.create_task(runtime.run())
    yield Harness(runtime, driver, clock, publisher, opens, reads, read_times)
    runtime.stop()
    await clock.advance(60.0)  # whatever a test left waiting on the clock
    await asyncio.wait_for(task, timeout=10)


async def test_polls_keep_to_their_deadlines(harness: Harness) -> None:
    await harness.clock.advance(5.5)
    assert harness.reads == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    counts = harness.publisher.published("count")
    assert [value for _, value, _, _ in counts] == [1, 2, 3, 4, 5, 6]
    # readings are stamped with the clock's wall time of their poll
    start = harness.clock.now() - 5.5
    assert [stamp for _, _, stamp, _ in counts] == pytest.approx([start + n for n in range(6)])
    status = harness.runtime.status()
    assert status["groups"]["main"]["polls"] == 6
    assert status["groups"]["main"]["overruns"] == 0
    assert status["up_since"] == start


async def test_a_slow_read_does_not_shift_the_schedule_and_an_overrun_is_counted(
    harness: Harness,
) -> None:
    await harness.clock.settle()
    assert harness.reads == [0.0]  # the first poll, at once
    harness.read_times.extend([0.4, 2.5])
    await harness.clock.advance(5.5)
    # 0.4 s at 1 keeps the grid; 2.5 s at 2 (until 4.5) skips the deadlines 3 and 4
    assert harness.reads == pytest.approx([0.0, 1.0, 2.0, 5.0])
    stats = harness.runtime.status()["groups"]["main"]
    assert (stats["polls"], stats["overruns"]) == (4, 2)
    assert stats["last_duration"] == pytest.approx(0.0)


async def test_reconnect_attempts_back_off_doubling_to_the_maximum(harness: Harness) -> None:
    await harness.clock.settle()
    assert harness.opens == [0.0]  # connected at once
    harness.driver.unavailable = "cable cut"
    await harness.clock.advance(1.0)  # the poll at 1 s loses the connection
    await harness.clock.advance(60.0)
    gaps = [b - a for a, b in itertools.pairwise([1.0, *harness.opens[1:]])]
    # at least 1 + 2 + 4 + 6 × 8 = 55 s for the first nine waits: nine or more in 60 s
    assert len(gaps) >= 9
    # each wait drawn from [d/2, d], d doubling from 1 s and capped at 8 s
    limits = [1.0, 2.0, 4.0] + [8.0] * (len(gaps) - 3)
    for gap, limit in zip(gaps, limits, strict=True):
        assert limit / 2 - 1e-9 <= gap <= limit + 1e-9, (gaps, limit)
    assert harness.reads == [0.0, 1.0]  # nothing is read without a connection
    harness.driver.unavailable = None
    await harness.clock.advance(8.0)  # the next attempt, at most 8 s away, succeeds
    assert harness.runtime.connected
    assert harness.runtime.connection.attempts == 0
    # the schedule starts again at once, on a grid of its own
    again = harness.reads[2:]
    assert again == pytest.approx([harness.opens[-1] + n for n in range(len(again))])
    assert again


async def test_bad_points_are_republished_every_max_silence_while_disconnected(
    harness: Harness,
) -> None:
    await harness.clock.advance(0.5)
    harness.driver.unavailable = "cable cut"
    await harness.clock.advance(0.5)  # the poll at 1 s loses the connection
    lost_at = harness.clock.elapsed
    await harness.clock.advance(40.0)
    flow = harness.publisher.published("flow")
    assert [(at, quality) for at, _, _, quality in flow[:2]] == [
        (0.0, Quality.GOOD),
        (lost_at, Quality.BAD),
    ]
    # Marked bad when lost (at 1 s), then again at the first check (every 2.5 s from the
    # start) after each 10 s of silence: at 12.5, 22.5 and 32.5 s, stamped then.
    again = flow[2:]
    assert [at for at, _, _, _ in again] == pytest.approx([12.5, 22.5, 32.5])
    assert all(value is None and quality is Quality.BAD for _, value, _, quality in again)
    wall_start = harness.clock.now() - harness.clock.elapsed
    assert [stamp - wall_start for _, _, stamp, _ in again] == pytest.approx([12.5, 22.5, 32.5])
