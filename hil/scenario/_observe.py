"""Watching plantd from the outside: every sample on the bus, and values in the state service.

:class:`BusRecorder` subscribes to ``data.`` before the modules start (so their first samples
are not lost to a late subscription), keeps every sample per point with the time it arrived,
feeds the trace, and wakes the expectations waiting on it. :class:`BusProbe` and
:class:`StateProbe` are the :class:`~hil.scenario._expect.Probe` s expectations read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from hil.scenario._expect import Observation
from hil.scenario._trace import Trace
from plantd.bus import BusSubscriber, Sample

__all__ = ["BusProbe", "BusRecorder", "StateProbe"]


class BusRecorder:
    def __init__(self, endpoint: str, trace: Trace, clock: Callable[[], float]) -> None:
        self.subscriber = BusSubscriber(endpoint, ["data."])
        self.trace = trace
        self.clock = clock
        self.history: dict[str, list[Observation]] = {}
        """Samples per ``MODULE.POINT``, oldest first, with the scenario time they arrived."""
        self._arrived = asyncio.Event()

    async def run(self) -> None:
        while True:
            message = await self.subscriber.receive()
            sample = message.payload
            if not isinstance(sample, Sample):
                continue
            name = message.topic.removeprefix("data.")
            t = self.clock()
            quality = sample.quality.label
            self.history.setdefault(name, []).append(Observation(t, sample.value, quality))
            self.trace.add(t, "bus", name, sample.value, quality)
            self._arrived.set()
            self._arrived = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        event = self._arrived
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                await event.wait()
        except TimeoutError:
            pass

    def close(self) -> None:
        self.subscriber.close()


class BusProbe:
    """The samples of one point: first the latest already received, then each new one."""

    def __init__(self, recorder: BusRecorder, name: str) -> None:
        self.what = f"data.{name}"
        self.recorder = recorder
        self.name = name
        history = recorder.history.get(name, [])
        self._next = max(0, len(history) - 1)

    def take(self) -> list[Observation]:
        history = self.recorder.history.get(self.name, [])
        new = history[self._next :]
        self._next = len(history)
        return new

    async def wait(self, timeout: float) -> None:
        await self.recorder.wait(timeout)


class StateProbe:
    """A value read from the state service every ``interval`` seconds."""

    def __init__(
        self,
        what: str,
        fetch: Callable[[], Awaitable[Observation | None]],
        *,
        interval: float = 0.25,
    ) -> None:
        self.what = what
        self._fetch = fetch
        self.interval = interval
        self._latest: Observation | None = None

    async def prime(self) -> None:
        self._latest = await self._fetch()

    def take(self) -> list[Observation]:
        latest, self._latest = self._latest, None
        return [] if latest is None else [latest]

    async def wait(self, timeout: float) -> None:
        await asyncio.sleep(min(self.interval, max(0.0, timeout)))
        self._latest = await self._fetch()
