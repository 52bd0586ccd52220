"""Alarm events to disk, then to the bus: the alarm store's one writer in ``plantd-control``.

Rules:

  R1  Events are committed in the order the engine made them, a burst in one transaction
      (``AlarmStore.record``), and published on the bus only after their commit: whatever a
      subscriber saw of an alarm is on disk, and its ``seq`` never goes back after a restart.
  R2  :meth:`Recorder.submit` never blocks the engine: it queues and returns a future that is
      done once the events are committed (an acknowledgement is answered only then).
  R3  A commit that fails (a full disk) does not silence the alarms: the events are published
      anyway (annunciation first), their futures fail with the store's error, and they stay
      queued to be committed on the next attempt, a second later at the earliest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from plantd.control._alarm import AlarmEvent
from plantd.control._alarm_store import AlarmStore
from plantd.errors import PlantdError

__all__ = ["Recorder"]

log = logging.getLogger(__name__)

_RETRY = 1.0


class Recorder:
    def __init__(self, store: AlarmStore, publish: Callable[[AlarmEvent], None]) -> None:
        self.store = store
        self.publish = publish
        self.errors = 0
        self.committed = 0
        self._queue: list[tuple[AlarmEvent, asyncio.Future[None] | None]] = []
        self._published: set[int] = set()  # ids of queued events published already (R3)
        self._ready = asyncio.Event()

    def submit(self, events: Sequence[AlarmEvent]) -> asyncio.Future[None]:
        """Queue ``events`` (R2); the future is done once they are on disk."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not events:
            done.set_result(None)
            return done
        for event in events[:-1]:
            self._queue.append((event, None))
        self._queue.append((events[-1], done))
        self._ready.set()
        return done

    async def run(self, stopping: asyncio.Event) -> None:
        while True:
            if not self._queue:
                if stopping.is_set():
                    return
                self._ready.clear()
                waiter = asyncio.ensure_future(self._ready.wait())
                stopper = asyncio.ensure_future(stopping.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                continue
            if not await self.flush() and not stopping.is_set():
                await asyncio.sleep(_RETRY)
            elif stopping.is_set() and self._queue:
                return  # the store refuses and we are stopping: what is queued is lost, logged

    async def flush(self) -> bool:
        """Commit what is queued (R1); False if the store refused it (R3)."""
        batch, self._queue = self._queue, []
        events = [event for event, _ in batch]
        try:
            await self.store.record(events)
        except PlantdError as exc:
            self.errors += 1
            log.error("control: %d alarm events not stored (will try again): %s", len(events), exc)
            for event, done in batch:
                if id(event) not in self._published:
                    self._published.add(id(event))
                    self.publish(event)
                if done is not None and not done.done():
                    done.set_exception(exc)
            self._queue = batch + self._queue
            return False
        self.committed += len(events)
        for event, done in batch:
            if id(event) in self._published:
                self._published.discard(id(event))
            else:
                self.publish(event)
            if done is not None and not done.done():
                done.set_result(None)
        return True
