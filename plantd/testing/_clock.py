"""A clock that moves only when the test says so (:class:`ManualClock`).

Hand it to anything that takes a ``clock=`` (:class:`plantd.clock.Clock`) and time stands
still: a task that sleeps on it waits until the test calls :meth:`ManualClock.advance`, which
moves time forward deadline by deadline and lets every task woken at a deadline run before
the next one is reached. So a poll loop with a 1 s interval advanced by 3 s polls three times,
always, however slow the machine is; and a test of a 30 s backoff takes no time at all.

"Lets every task run" means: until the event loop has nothing ready to run, i.e. every task
waits on this clock, on I/O, or on something else outside the loop. Code that only computes
between its waits on the clock therefore runs to its next wait within ``advance``; code that
waits on real I/O (a socket, a thread) carries on whenever that I/O completes, and the test
waits for its outcome as it would without a manual clock.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ManualClock"]

# How many times settle() yields to the event loop at most. Reached only by a task that never
# waits on anything but asyncio.sleep(0); far more than any chain of wake-ups in plantd needs.
_SETTLE_LIMIT = 1000


@dataclass(order=True)
class _Sleeper:
    deadline: float
    order: int  # first come, first woken among equal deadlines
    future: asyncio.Future[None] = field(compare=False)


class ManualClock:
    """A :class:`plantd.clock.Clock` for tests: time passes only in :meth:`advance`.

    ``now()`` starts at ``wall`` (seconds since the epoch) and ``monotonic()`` at
    ``monotonic``; both move together. Use it from one event loop.
    """

    def __init__(self, *, wall: float = 1_800_000_000.0, monotonic: float = 1_000.0) -> None:
        self._wall0 = wall
        self._monotonic0 = monotonic
        self._elapsed = 0.0
        self._order = 0
        self._sleepers: list[_Sleeper] = []

    # -- the Clock protocol ---------------------------------------------------------------------

    def now(self) -> float:
        return self._wall0 + self._elapsed

    def monotonic(self) -> float:
        return self._monotonic0 + self._elapsed

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)  # a sleep is always a chance for others to run
            return
        sleeper = self._add_sleeper(seconds)
        try:
            await sleeper.future
        finally:
            self._drop(sleeper)

    async def wait(self, event: asyncio.Event, seconds: float | None) -> bool:
        if event.is_set():
            return True
        if seconds is None:
            await event.wait()
            return True
        if seconds <= 0:
            await asyncio.sleep(0)
            return event.is_set()
        sleeper = self._add_sleeper(seconds)
        setter = asyncio.ensure_future(event.wait())
        either: list[asyncio.Future[Any]] = [setter, sleeper.future]
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            setter.cancel()
            self._drop(sleeper)
        return event.is_set()

    # -- for the test ---------------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        """Seconds advanced since the clock was made."""
        return self._elapsed

    @property
    def sleepers(self) -> int:
        """How many waits on this clock are pending."""
        return len(self._sleepers)

    def next_deadline(self) -> float | None:
        """When (on :meth:`monotonic`) the first pending wait ends; None if there is none."""
        if not self._sleepers:
            return None
        return self._monotonic0 + min(self._sleepers).deadline

    async def advance(self, seconds: float) -> None:
        """Move time ``seconds`` forward, waking each wait at its deadline in turn.

        Before each deadline is reached, the tasks woken at the previous one run until the
        loop has nothing ready (see the module doc); so waits they start meanwhile are woken
        in this same call if they fall due within ``seconds``.
        """
        if seconds < 0:
            raise ValueError(f"a clock does not go back: advance({seconds})")
        target = self._elapsed + seconds
        await self.settle()
        while self._sleepers and min(self._sleepers).deadline <= target:
            self._elapsed = max(self._elapsed, min(self._sleepers).deadline)
            for sleeper in sorted(self._sleepers):
                if sleeper.deadline > self._elapsed:
                    break
                self._sleepers.remove(sleeper)
                if not sleeper.future.done():
                    sleeper.future.set_result(None)
            await self.settle()
        self._elapsed = target

    async def settle(self) -> None:
        """Yield to the event loop until it has nothing ready to run but this task."""
        loop = asyncio.get_running_loop()
        # The ready queue of asyncio's own loops; an event loop without one (uvloop) gets a
        # fixed number of turns instead.
        ready = getattr(loop, "_ready", None)
        for _ in range(_SETTLE_LIMIT if ready is not None else 50):
            await asyncio.sleep(0)
            if ready is not None and not ready:
                return

    # -- inside ---------------------------------------------------------------------------------

    def _add_sleeper(self, seconds: float) -> _Sleeper:
        self._order += 1
        sleeper = _Sleeper(
            self._elapsed + seconds, self._order, asyncio.get_running_loop().create_future()
        )
        self._sleepers.append(sleeper)
        return sleeper

    def _drop(self, sleeper: _Sleeper) -> None:
        """Forget a wait that ended another way (cancelled, or its event came first)."""
        if sleeper in self._sleepers:
            self._sleepers.remove(sleeper)
        if not sleeper.future.done():
            sleeper.future.cancel()

    def __repr__(self) -> str:
        return f"ManualClock(elapsed={self._elapsed:g}, sleepers={len(self._sleepers)})"
