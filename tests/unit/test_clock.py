"""The injectable clock: the real one keeps real time, and ManualClock moves only when told,
waking each wait at its deadline, in order, with the tasks woken run before time goes on."""

from __future__ import annotations

import asyncio
import time

import pytest

from plantd.clock import SYSTEM_CLOCK, SystemClock
from plantd.runtime import set_within
from plantd.testing import ManualClock


def test_the_system_clock_reads_real_time() -> None:
    before_wall, before_monotonic = time.time(), time.monotonic()
    wall, monotonic = SYSTEM_CLOCK.now(), SYSTEM_CLOCK.monotonic()
    assert before_wall <= wall <= time.time()
    assert before_monotonic <= monotonic <= time.monotonic()
    assert isinstance(SYSTEM_CLOCK, SystemClock)


async def test_the_system_clock_waits_for_an_event_already_set_or_set_later() -> None:
    event = asyncio.Event()
    event.set()
    assert await SYSTEM_CLOCK.wait(event, 0) is True
    later = asyncio.Event()
    asyncio.get_running_loop().call_soon(later.set)
    assert await SYSTEM_CLOCK.wait(later, None) is True


async def test_the_system_clock_gives_up_on_an_event_never_set() -> None:
    # A zero timeout: the expiry path without waiting for real time to pass.
    assert await SYSTEM_CLOCK.wait(asyncio.Event(), 0) is False
    assert await set_within(asyncio.Event(), -1.0) is False


def test_the_manual_clock_stands_still_and_both_readings_move_together() -> None:
    clock = ManualClock(wall=5_000.0, monotonic=10.0)
    assert (clock.now(), clock.monotonic(), clock.elapsed) == (5_000.0, 10.0, 0.0)
    assert clock.next_deadline() is None
    assert "elapsed=0" in repr(clock)


async def test_advance_moves_both_readings() -> None:
    clock = ManualClock(wall=5_000.0, monotonic=10.0)
    await clock.advance(2.5)
    assert (clock.now(), clock.monotonic(), clock.elapsed) == (5_002.5, 12.5, 2.5)


async def test_a_clock_does_not_go_back() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match=r"advance\(-1"):
        await clock.advance(-1)


async def test_a_sleep_ends_at_its_deadline_and_not_before() -> None:
    clock = ManualClock(monotonic=0.0)
    woke_at: list[float] = []

    async def sleeper() -> None:
        await clock.sleep(1.0)
        woke_at.append(clock.monotonic())

    task = asyncio.create_task(sleeper())
    await clock.settle()
    assert clock.sleepers == 1
    assert clock.next_deadline() == 1.0
    await clock.advance(0.999)
    assert woke_at == []
    await clock.advance(0.001)
    assert woke_at == [1.0]  # woken with the clock at its deadline
    assert clock.sleepers == 0
    await task


async def test_a_periodic_task_runs_once_per_period_advanced() -> None:
    clock = ManualClock(monotonic=0.0)
    ticks: list[float] = []

    async def every_quarter_second() -> None:
        while True:
            await clock.sleep(0.25)
            ticks.append(clock.monotonic())

    task = asyncio.create_task(every_quarter_second())
    await clock.advance(1.0)  # one call: each tick's next sleep falls due within it
    assert ticks == [0.25, 0.5, 0.75, 1.0]
    await clock.advance(0.3)
    assert ticks[-1] == 1.25
    assert clock.next_deadline() == 1.5
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.sleepers == 0  # a cancelled sleep leaves nothing behind


async def test_waits_are_woken_in_deadline_order_then_arrival_order() -> None:
    clock = ManualClock(monotonic=0.0)
    order: list[str] = []

    async def sleep(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        order.append(name)

    tasks = [
        asyncio.create_task(sleep(name, seconds))
        for name, seconds in [("c", 3.0), ("a1", 1.0), ("b", 2.0), ("a2", 1.0)]
    ]
    await clock.advance(5.0)
    assert order == ["a1", "a2", "b", "c"]
    await asyncio.gather(*tasks)


async def test_a_zero_sleep_does_not_wait_for_the_clock() -> None:
    clock = ManualClock()
    await asyncio.wait_for(clock.sleep(0), timeout=5)
    await asyncio.wait_for(clock.sleep(-3), timeout=5)
    assert clock.sleepers == 0


async def test_wait_returns_true_when_the_event_comes_first() -> None:
    clock = ManualClock()
    event = asyncio.Event()
    waiting = asyncio.create_task(clock.wait(event, 10.0))
    await clock.advance(4.0)
    assert not waiting.done()
    event.set()
    assert await waiting is True
    assert clock.sleepers == 0  # the timer of a wait its event ended is gone


async def test_wait_returns_false_at_the_deadline() -> None:
    clock = ManualClock()
    waiting = asyncio.create_task(clock.wait(asyncio.Event(), 10.0))
    await clock.advance(9.5)
    assert not waiting.done()
    await clock.advance(0.5)
    assert waiting.done()
    assert await waiting is False


async def test_wait_without_a_timeout_and_with_the_event_already_set() -> None:
    clock = ManualClock()
    event = asyncio.Event()
    event.set()
    assert await clock.wait(event, 10.0) is True
    assert await clock.wait(asyncio.Event(), 0) is False
    unbounded = asyncio.Event()
    waiting = asyncio.create_task(clock.wait(unbounded, None))
    await clock.advance(1_000_000)
    assert not waiting.done()
    unbounded.set()
    assert await waiting is True


async def test_set_within_follows_the_clock_it_is_given() -> None:
    clock = ManualClock()
    stop = asyncio.Event()
    waiting = asyncio.create_task(set_within(stop, 30.0, clock))
    await clock.advance(29.0)
    assert not waiting.done()
    await clock.advance(1.0)
    assert await waiting is False


async def test_work_between_waits_runs_before_time_goes_on() -> None:
    """A woken task's chain of plain awaits (futures, events, other tasks) completes before
    the clock reaches the next deadline, so what it does is seen at the time it did it."""
    clock = ManualClock(monotonic=0.0)
    seen: list[tuple[str, float]] = []
    handoff: asyncio.Queue[float] = asyncio.Queue()

    async def producer() -> None:
        for _ in range(3):
            await clock.sleep(1.0)
            await handoff.put(clock.monotonic())

    async def consumer() -> None:
        while True:
            stamp = await handoff.get()
            await asyncio.sleep(0)
            seen.append(("got", stamp))
            seen.append(("at", clock.monotonic()))

    tasks = [asyncio.create_task(producer()), asyncio.create_task(consumer())]
    await clock.advance(3.0)
    assert seen == [("got", 1.0), ("at", 1.0), ("got", 2.0), ("at", 2.0), ("got", 3.0), ("at", 3.0)]
    tasks[1].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
