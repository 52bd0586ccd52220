"""The time a service reads and waits on, as one injectable object.

Everything that schedules by time (the module runtime's polls, backoffs and heartbeats, the
module host's restarts) asks a :class:`Clock` instead of ``time``/``asyncio`` directly, so
that a test can hand it :class:`plantd.testing.ManualClock` and advance time instead of
sleeping through it. Production code takes the default, :data:`SYSTEM_CLOCK`.

A clock has two readings, because they answer different questions: :meth:`Clock.now` is wall
time (seconds since the epoch) for what leaves the process (sample timestamps, ``up_since``),
and :meth:`Clock.monotonic` is for measuring intervals and deadlines, which must not jump when
the wall clock is set. Only waits go through the clock; timeouts that guard against a peer or
a driver that hangs (``asyncio.timeout`` around I/O) stay on the event loop's real time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    """What a timer needs from time: two readings and two ways to wait."""

    def now(self) -> float:
        """Wall time, seconds since the epoch (what ``time.time()`` says)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for intervals and deadlines."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock (at once if ``seconds`` <= 0)."""
        ...

    async def wait(self, event: asyncio.Event, seconds: float | None) -> bool:
        """Wait for ``event`` at most ``seconds`` (for ever if None); True if it is set."""
        ...


class SystemClock:
    """The real clock: ``time.time``, ``time.monotonic`` (the event loop's own time source)
    and the event loop's timers."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    async def wait(self, event: asyncio.Event, seconds: float | None) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            return event.is_set()
        return True

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Clock = SystemClock()
"""The default of every ``clock=`` parameter: real time."""
