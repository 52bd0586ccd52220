"""Watching plantd from the outside: every sample on the bus, and values in the state service.

:class:`BusRecorder` subscribes to ``data.`` and ``event.alarm.`` before the modules start (so
their first samples are not lost to a late subscription), keeps every sample per point and
every alarm event per alarm with the time it arrived, feeds the trace (an alarm as
``alarm.NAME``, its state as the value), and wakes the expectations waiting on it.
:class:`BusProbe`, :class:`AlarmProbe`, :class:`AuditProbe` and :class:`StateProbe` are the
:class:`~hil.scenario._expect.Probe` s expectations read.

An alarm's probe starts from ``org.plantd.Alarms list`` (the state when the step begins: an
alarm that never changed has sent no event, and a stack the rig did not start may hold alarms
raised before) and then takes every ``event.alarm.NAME`` record — each transition, so a state
that lasts less than a poll is still seen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from hil.scenario._expect import Observation
from hil.scenario._trace import Trace
from plantd.bus import BusSubscriber, Record, Sample

__all__ = [
    "ALARM_EVENTS",
    "AlarmProbe",
    "AuditProbe",
    "BusProbe",
    "BusRecorder",
    "StateProbe",
]

ALARM_EVENTS = "event.alarm."


class BusRecorder:
    def __init__(self, endpoint: str, trace: Trace, clock: Callable[[], float]) -> None:
        self.subscriber = BusSubscriber(endpoint, ["data.", ALARM_EVENTS])
        self.trace = trace
        self.clock = clock
        self.history: dict[str, list[Observation]] = {}
        """Samples per ``MODULE.POINT``, oldest first, with the scenario time they arrived."""
        self.alarms: dict[str, list[Observation]] = {}
        """Alarm event records per alarm name, oldest first (the record as the value)."""
        self._arrived = asyncio.Event()

    async def run(self) -> None:
        while True:
            message = await self.subscriber.receive()
            sample = message.payload
            if isinstance(sample, Record) and message.topic.startswith(ALARM_EVENTS):
                self._alarm(message.topic.removeprefix(ALARM_EVENTS), sample.fields)
                continue
            if not isinstance(sample, Sample):
                continue
            name = message.topic.removeprefix("data.")
            t = self.clock()
            quality = sample.quality.label
            self.history.setdefault(name, []).append(Observation(t, sample.value, quality))
            self.trace.add(t, "bus", name, sample.value, quality)
            self._arrived.set()
            self._arrived = asyncio.Event()

    def _alarm(self, name: str, fields: dict[str, Any]) -> None:
        t = self.clock()
        self.alarms.setdefault(name, []).append(Observation(t, fields))
        self.trace.add(t, "bus", f"alarm.{name}", fields.get("state"), "")
        self._wake()

    def _wake(self) -> None:
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


class AlarmProbe:
    """One alarm's state: as listed when the step begins, then each event."""

    def __init__(
        self,
        recorder: BusRecorder,
        name: str,
        fetch: Callable[[], Awaitable[Observation | None]],
    ) -> None:
        self.what = f"alarm {name}"
        self.recorder = recorder
        self.name = name
        self._fetch = fetch
        self._next = len(recorder.alarms.get(name, []))
        self._listed: Observation | None = None

    async def prime(self) -> None:
        """The state now (events that come during the call are taken after it: each is a
        state that held at some moment, so taking one twice changes nothing)."""
        self._listed = await self._fetch()

    def take(self) -> list[Observation]:
        events = self.recorder.alarms.get(self.name, [])
        new = events[self._next :]
        self._next = len(events)
        listed, self._listed = self._listed, None
        return ([listed] if listed is not None else []) + new

    async def wait(self, timeout: float) -> None:
        await self.recorder.wait(timeout)


class AuditProbe:
    """The broker's audit records since the scenario began (``org.plantd.Audit query``, every
    ``interval`` seconds): each one once, oldest first. The audit store, not the bus: its
    records are what the broker keeps, and a call is audited when it ends, often before the
    step that looks for it."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[list[dict[str, Any]]]],
        clock: Callable[[], float],
        *,
        interval: float = 0.25,
    ) -> None:
        self.what = "the audit trail"
        self._fetch = fetch
        self._clock = clock
        self.interval = interval
        self._seen: set[Any] = set()
        self._new: list[Observation] = []

    async def prime(self) -> None:
        await self._poll()

    async def _poll(self) -> None:
        for record in sorted(await self._fetch(), key=lambda r: r.get("id") or 0):
            key = record.get("id")
            if key not in self._seen:
                self._seen.add(key)
                self._new.append(Observation(self._clock(), record))

    def take(self) -> list[Observation]:
        new, self._new = self._new, []
        return new

    async def wait(self, timeout: float) -> None:
        await asyncio.sleep(min(self.interval, max(0.0, timeout)))
        await self._poll()


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
