"""A replica: a local copy of one scope, or of the whole store, that stays equal to the store.

The rules (:class:`ReplicaState`, sans-IO: snapshots and events in, outcomes out):

1. Nothing applies before the first snapshot is loaded.
2. An event at or below the replica's revision is already reflected: *stale*, skipped. This is
   what makes a snapshot and the stream join without double-applying anything.
3. A replica of the whole store needs revision = its revision + 1: every revision is one
   published event. A replica of one scope needs ``prev`` = the scope's revision: the event
   that follows the last one it holds for that scope. Anything else is a *gap*.
4. An event that does not fit what the replica holds (a set in a scope it holds as absent, a
   delete of a key it does not have) is a gap too: the copy is wrong, so it is replaced.
5. On a gap the copy is replaced by a fresh snapshot; rule 2 then skips what it already has.

The I/O shell (:class:`Replica`): subscribe *first* (``state.`` or ``state.<scope>.``), wait a
moment for the subscription to reach the publisher, then take the snapshot. Events published
meanwhile wait in the subscriber's socket, which is the buffer: once the snapshot is loaded they
are applied or skipped by the rules above. Past the socket's high-water mark events are lost;
the next one shows the gap and the replica resyncs. A store that falls silent right after a lost
event shows no gap, so every ``check_interval`` the replica also compares its revision with the
one the store reported at the previous check, and resyncs if it is still behind it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from plantd.bus import BusMessage, BusSubscriber, Record
from plantd.errors import RequestTimeout
from plantd.state._client import StateClient
from plantd.state._limits import Limits
from plantd.state._model import ChangeEvent, Entry, ScopeSnapshot, Snapshot, canonical_json

__all__ = ["Changed", "Outcome", "Replica", "ReplicaState", "Resynced", "Update"]

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    APPLIED = "applied"
    STALE = "stale"  # already reflected
    IGNORED = "ignored"  # another scope (topics of nested scopes share a prefix)
    GAP = "gap"


class ReplicaState:
    """The copy and the rules; ``scope`` None follows every scope."""

    def __init__(self, scope: str | None = None) -> None:
        self.scope = scope
        self.revision = 0  # the global revision the copy reflects
        self.synced = False
        self.scopes: dict[str, ScopeSnapshot] = {}

    def load(self, snapshot: Snapshot) -> None:
        if self.scope is None:
            self.scopes = {name: s for name, s in snapshot.scopes.items() if s.exists}
        else:
            held = snapshot.scopes.get(self.scope)
            if held is None:
                raise ValueError(f"the snapshot does not hold scope {self.scope!r}")
            self.scopes = {self.scope: held}
        self.revision = snapshot.revision
        self.synced = True

    def apply(self, event: ChangeEvent) -> Outcome:
        if not self.synced:
            return Outcome.GAP
        if self.scope is not None and event.scope != self.scope:
            return Outcome.IGNORED
        if event.revision <= self.revision:
            return Outcome.STALE
        held = self.scopes.get(event.scope)
        if self.scope is None:
            if event.revision != self.revision + 1:
                return Outcome.GAP
        elif held is None or event.prev != held.revision:
            return Outcome.GAP
        if not self._change(held, event):
            return Outcome.GAP
        self.revision = event.revision
        return Outcome.APPLIED

    def _change(self, held: ScopeSnapshot | None, event: ChangeEvent) -> bool:
        exists = held is not None and held.exists
        if event.op == "create-scope":
            if exists:
                return False
            self.scopes[event.scope] = ScopeSnapshot(True, event.revision)
            return True
        if not exists or held is None:
            return False
        if event.op == "delete-scope":
            if self.scope is None:
                del self.scopes[event.scope]
            else:
                self.scopes[event.scope] = ScopeSnapshot(False, event.revision)
            return True
        if event.op == "set":
            held.entries[event.key] = Entry(event.value, event.revision, event.version)
        elif held.entries.pop(event.key, None) is None:
            return False  # a delete of a key this copy does not have
        held.revision = event.revision
        return True

    def get(self, scope: str, key: str) -> Entry | None:
        held = self.scopes.get(scope)
        return None if held is None else held.entries.get(key)

    def canonical(self) -> bytes:
        """Equal to ``Snapshot.canonical()`` of the store's snapshot at the same revision."""
        return canonical_json(self.scopes)


@dataclass(frozen=True, slots=True)
class Resynced:
    """The copy was (re)loaded from a snapshot at ``revision``; ``reason`` says why."""

    revision: int
    reason: str


@dataclass(frozen=True, slots=True)
class Changed:
    event: ChangeEvent


Update = Resynced | Changed


class Subscriber(Protocol):
    async def receive_within(self, timeout: float) -> BusMessage | None: ...

    def close(self) -> None: ...


class Replica:
    """Follow the store through ``state`` and the bus at ``bus_endpoint`` (``bus.backend``).

    Pull updates with :meth:`next_update` or ``async for update in replica.updates()``; the
    copy is :attr:`state`. A replica that is not pulled is paused: the bus keeps its events (up
    to ``high_water_mark``), and past that it resyncs when pulled again.
    """

    def __init__(
        self,
        state: StateClient,
        bus_endpoint: str,
        scope: str | None = None,
        *,
        high_water_mark: int = 100_000,
        settle: float = 0.1,
        check_interval: float | None = 5.0,
        subscriber: Subscriber | None = None,
    ) -> None:
        self.client = state
        self.state = ReplicaState(None if scope is None else Limits().scope(scope))
        prefix = "state." if scope is None else f"state.{scope}."
        self._subscriber: Subscriber = subscriber or BusSubscriber(
            bus_endpoint, [prefix], high_water_mark=high_water_mark
        )
        self._settle = settle
        self._check_interval = check_interval
        self._next_check = time.monotonic() + (check_interval or 0.0)
        self._store_was: int | None = None  # the store's revision at the previous check
        self.resyncs = 0
        self.gaps = 0
        self.undecodable = 0

    @property
    def revision(self) -> int:
        return self.state.revision

    async def next_update(self, timeout: float | None = None) -> Update | None:
        """The next change applied or resync done; None if ``timeout`` passes without one."""
        if not self.state.synced:
            await asyncio.sleep(self._settle)  # let the subscription reach the publisher
            return await self._resync("start")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            now = time.monotonic()
            if self._check_interval is not None and now >= self._next_check:
                self._next_check = now + self._check_interval
                behind = await self._check()
                if behind is not None:
                    return await self._resync(behind)
            wait = 3600.0 if deadline is None else deadline - now
            if self._check_interval is not None:
                wait = min(wait, self._next_check - now)
            message = await self._subscriber.receive_within(max(0.0, wait))
            if message is None:
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue
            update = await self._handle(message)
            if update is not None:
                return update

    async def updates(self) -> AsyncIterator[Update]:
        while True:
            update = await self.next_update()
            if update is not None:
                yield update

    async def catch_up(self, revision: int, timeout: float = 10.0) -> None:
        """Pull updates until the copy reflects ``revision``; ``TimeoutError`` otherwise."""
        deadline = time.monotonic() + timeout
        while not self.state.synced or self.state.revision < revision:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"the replica reached revision {self.state.revision}, not {revision}, "
                    f"in {timeout:g} s"
                )
            await self.next_update(left)

    def close(self) -> None:
        self._subscriber.close()

    async def _handle(self, message: BusMessage) -> Update | None:
        if not isinstance(message.payload, Record):
            self.undecodable += 1
            return None
        try:
            event = ChangeEvent.from_record(message.payload.fields)
        except ValueError as exc:
            self.undecodable += 1
            if self.undecodable <= 10:
                log.warning("replica: skipped a state event on %r: %s", message.topic, exc)
            return None
        before = self.state.revision
        outcome = self.state.apply(event)
        if outcome is Outcome.APPLIED:
            return Changed(event)
        if outcome is Outcome.GAP:
            self.gaps += 1
            return await self._resync(
                f"gap: event {event.revision} (prev {event.prev}) on {event.scope!r} "
                f"does not follow revision {before}"
            )
        return None

    async def _check(self) -> str | None:
        """Why the copy is behind what the store had at the previous check, or None."""
        if self.state.scope is None:
            store_now = int((await self.client.health())["revision"])
            mine = self.state.revision
        else:
            listed = await self.client.list_scopes()
            store_now = 0
            for item in listed["scopes"]:
                if item["scope"] == self.state.scope:
                    store_now = int(item["revision"])
            held = self.state.scopes.get(self.state.scope)
            mine = held.revision if held is not None else 0
        was, self._store_was = self._store_was, store_now
        if was is not None and mine < was:
            return f"behind: the store had revision {was}, this copy has {mine}"
        return None

    async def _resync(self, reason: str) -> Resynced:
        delay = 0.1
        while True:
            try:
                snapshot = await self.client.snapshot(self.state.scope)
                break
            except RequestTimeout as exc:
                log.warning("replica: no snapshot yet (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        self.state.load(snapshot)
        self.resyncs += 1
        self._store_was = None
        return Resynced(snapshot.revision, reason)
