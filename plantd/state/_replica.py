"""A replica: a local copy of one scope, or of the whole store, that stays equal to the store.

The rules (:class:`ReplicaState`, sans-IO: snapshots and events in, outcomes out):

1. Nothing applies before the first snapshot is loaded.
2. An event at or below the replica's revision is already reflected: *stale*, skipped. This is
   what makes a snapshot and the stream join without double-applying anything. Above the
   snapshot's revision, though, the copy holds only what the replica applied itself, so a stale
   event there must repeat one it applied (it remembers the last :data:`REMEMBERED`; below
   those it takes stale events as reflected). Any other, a different event at a revision it
   applied or an event at a revision it went past without applying, contradicts the copy: a
   *conflict*.
3. A replica of the whole store needs revision = its revision + 1: every revision is one
   published event. A replica of one scope needs ``prev`` = the scope's revision: the event
   that follows the last one it holds for that scope. Anything else is a *gap*.
4. An event that does not fit what the replica holds (a set in a scope it holds as absent, a
   delete of a key it does not have) is a gap too: the copy is wrong, so it is replaced.
5. On a gap or a conflict the copy is replaced by a fresh snapshot; rule 2 then skips what it
   already has.
6. The copy is never ahead of the store. The store publishes a revision only once it has
   committed it, so a copy past the revision the store reports (its global revision; for a
   replica of one scope also that scope's revision) holds an event the store never published,
   forged or corrupt: :meth:`ReplicaState.ahead_of` says so and names the event, and the copy
   is replaced by a fresh snapshot.

Why no single message can blind a replica. The events a replica applies on trust are those that
fit rule 3, and for a replica of one scope that means any revision past its own with the right
``prev``: it sees such jumps all the time (other scopes are written in between), and verifying
each with a call, let alone a snapshot, would make a busy store expensive to follow. So a jump
is applied, and what follows checks it. The next real event of the same chain either carries a
revision at or below the forged one (rule 2: a conflict) or one past it whose ``prev`` is not
the forged revision (rule 3: a gap), and either resyncs at once; that snapshot holds the real
change, and the ones after it apply as usual. If no real event follows, the periodic check below
finds the copy ahead of the store (rule 6) within ``check_interval`` (without a check, the copy
stays wrong until the next real event of its chain). A replica of the whole store takes no jump
at all (rule 3), and a forged event at its next revision conflicts with the real one when that
arrives (rule 2), or is ahead of a quiet store at the next check.

The I/O shell (:class:`Replica`): subscribe *first* (``state.`` or ``state.<scope>.``), wait a
moment for the subscription to reach the publisher, then take the snapshot. Events published
meanwhile wait in the subscriber's socket, which is the buffer: once the snapshot is loaded they
are applied or skipped by the rules above. Past the socket's high-water mark events are lost;
the next one shows the gap and the replica resyncs. Every ``check_interval`` the replica also
asks the store where it is (``health``; ``list-scopes`` for one scope, which gives the scope's
revision and the global one) and resyncs if the copy is ahead of the store (rule 6), if the
copy holds its scope as existing while the store lists no such scope (a forged create-scope, or
a deletion still on its way), or if the copy is still behind the revision the store reported at
the previous check (a store that falls silent right after a lost event shows no gap). Each
resync also holds its snapshot against rule 6 and against the event that caused it (a gap event
past the snapshot's revision was never published either); when that finds an event the store
never published, or on a conflict, one warning names it (for the first ten; later ones are
only counted, in ``rejected``).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from plantd.bus import BusMessage, BusSubscriber, Record
from plantd.errors import RequestTimeout
from plantd.state._client import StateClient
from plantd.state._limits import Limits
from plantd.state._model import ChangeEvent, Entry, ScopeSnapshot, Snapshot, canonical_json

__all__ = ["Changed", "Outcome", "Replica", "ReplicaState", "Resynced", "Update"]

log = logging.getLogger(__name__)

# How many applied events a replica remembers for rule 2. A forged event is contradicted by the
# next real event of its chain, and nothing is applied in between (the real events that follow
# it are stale or gaps), so a handful would do; more only tolerates repeats from further back.
REMEMBERED = 64


class Outcome(enum.Enum):
    APPLIED = "applied"
    STALE = "stale"  # already reflected
    IGNORED = "ignored"  # another scope (topics of nested scopes share a prefix)
    GAP = "gap"
    CONFLICT = "conflict"  # stale, but not what this replica applied at that revision


class ReplicaState:
    """The copy and the rules; ``scope`` None follows every scope."""

    def __init__(self, scope: str | None = None) -> None:
        self.scope = scope
        self.revision = 0  # the global revision the copy reflects
        self.synced = False
        self.scopes: dict[str, ScopeSnapshot] = {}
        self._recent: dict[int, ChangeEvent] = {}  # the last events applied, by revision
        self._floor = 0  # stale events at or below this are reflected without question

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
        self._recent.clear()
        self._floor = snapshot.revision

    def apply(self, event: ChangeEvent) -> Outcome:
        if not self.synced:
            return Outcome.GAP
        if self.scope is not None and event.scope != self.scope:
            return Outcome.IGNORED
        if event.revision <= self.revision:
            return self._stale(event)
        held = self.scopes.get(event.scope)
        if self.scope is None:
            if event.revision != self.revision + 1:
                return Outcome.GAP
        elif held is None or event.prev != held.revision:
            return Outcome.GAP
        if not self._change(held, event):
            return Outcome.GAP
        self.revision = event.revision
        self._recent[event.revision] = event
        if len(self._recent) > REMEMBERED:
            oldest = next(iter(self._recent))  # revisions are applied in increasing order
            del self._recent[oldest]
            self._floor = max(self._floor, oldest)
        return Outcome.APPLIED

    def _stale(self, event: ChangeEvent) -> Outcome:
        applied = self._recent.get(event.revision)
        if applied is not None:
            return Outcome.STALE if applied == event else Outcome.CONFLICT
        return Outcome.STALE if event.revision <= self._floor else Outcome.CONFLICT

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

    def applied_at(self, revision: int) -> ChangeEvent | None:
        """The event this replica applied at ``revision``, if it still remembers it."""
        return self._recent.get(revision)

    def ahead_of(self, revision: int, scope_revision: int | None = None) -> str | None:
        """Why this copy is ahead of a store at global ``revision`` (for a replica of one scope,
        with that scope at ``scope_revision``; None if the store has no such scope), naming the
        first event past it that the store never published; None if the copy is not ahead."""
        if not self.synced:
            return None
        mine, store, what = self.revision, revision, "revision"
        held = None if self.scope is None else self.scopes.get(self.scope)
        if mine <= store and held is not None and scope_revision is not None:
            mine, store, what = held.revision, scope_revision, f"revision of {self.scope!r}"
        if mine <= store:
            return None
        first = next((e for e in self._recent.values() if e.revision > store), None)
        through = "" if first is None else f" through event {first.revision} on {first.topic!r}"
        return f"the copy's {what} is {mine}{through}, the store's is {store}"

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
    to ``high_water_mark``), and past that it resyncs when pulled again. ``clock`` (monotonic
    seconds) paces the periodic check; tests pass a fake one.

    Counters: ``resyncs``, ``gaps`` and ``conflicts`` (rules 2-5), ``rejected`` (resyncs that
    found an event the store does not have, rule 6, or a conflict: one warning each, for the
    first ten) and ``undecodable``.
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = state
        self.state = ReplicaState(None if scope is None else Limits().scope(scope))
        prefix = "state." if scope is None else f"state.{scope}."
        self._subscriber: Subscriber = subscriber or BusSubscriber(
            bus_endpoint, [prefix], high_water_mark=high_water_mark
        )
        self._settle = settle
        self._check_interval = check_interval
        self._clock = clock
        self._next_check = clock() + (check_interval or 0.0)
        self._store_was: int | None = None  # the store's revision at the previous check
        self.resyncs = 0
        self.gaps = 0
        self.conflicts = 0
        self.rejected = 0
        self.undecodable = 0

    @property
    def revision(self) -> int:
        return self.state.revision

    async def next_update(self, timeout: float | None = None) -> Update | None:
        """The next change applied or resync done; None if ``timeout`` passes without one."""
        if not self.state.synced:
            await asyncio.sleep(self._settle)  # let the subscription reach the publisher
            return await self._resync("start")
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            now = self._clock()
            if self._check_interval is not None and now >= self._next_check:
                self._next_check = now + self._check_interval
                resynced = await self._check()
                if resynced is not None:
                    return resynced
            wait = 3600.0 if deadline is None else deadline - now
            if self._check_interval is not None:
                wait = min(wait, self._next_check - now)
            message = await self._subscriber.receive_within(max(0.0, wait))
            if message is None:
                if deadline is not None and self._clock() >= deadline:
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
        deadline = self._clock() + timeout
        while not self.state.synced or self.state.revision < revision:
            left = deadline - self._clock()
            if left <= 0:
                raise TimeoutError(
                    f"the replica reached revision {self.state.revision}, not {revision}, "
                    f"in {timeout:g} s"
                )
            await self.next_update(left)

    def close(self) -> None:
        self._subscriber.close()

    async def _check(self) -> Resynced | None:
        """Ask the store where it is; resync if the copy is ahead of it (rule 6), holds a scope
        it does not list, or is still behind what it had at the previous check."""
        if not self.state.synced:
            return None
        scope = self.state.scope
        if scope is None:
            store_now = int((await self.client.health())["revision"])
            ahead = self.state.ahead_of(store_now)
            mine = self.state.revision
        else:
            listed = await self.client.list_scopes()
            found: int | None = None
            for item in listed["scopes"]:
                if item["scope"] == scope:
                    found = int(item["revision"])
            ahead = self.state.ahead_of(int(listed["revision"]), found)
            held = self.state.scopes.get(scope)
            if ahead is None and found is None and held is not None and held.exists:
                return await self._resync(f"missing: the store has no scope {scope!r}")
            store_now = found or 0
            mine = held.revision if held is not None else 0
        if ahead is not None:
            return await self._resync(f"ahead: {ahead}", suspect=ahead)
        was, self._store_was = self._store_was, store_now
        if was is not None and mine < was:
            return await self._resync(f"behind: the store had revision {was}, this copy has {mine}")
        return None

    async def _handle(self, message: BusMessage) -> Update | None:
        # A jump that fits rule 3 is applied without asking the store: the events that follow
        # it, or the next check, show whether it was real (see the module docstring). A call per
        # jump would cost a busy one-scope replica a round trip per event, and a threshold ("a
        # very large jump") would only tell a forger how far to stay below it.
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
                f"does not follow revision {before}",
                event=event,
            )
        if outcome is Outcome.CONFLICT:
            self.conflicts += 1
            applied = self.state.applied_at(event.revision)
            other = (
                f"differs from event {applied.revision} on {applied.topic!r} applied before"
                if applied is not None
                else f"was never applied, yet the copy is at revision {before}"
            )
            conflict = f"event {event.revision} on {event.topic!r} {other}"
            return await self._resync(f"conflict: {conflict}", event=event, suspect=conflict)
        return None

    async def _resync(
        self, reason: str, *, event: ChangeEvent | None = None, suspect: str | None = None
    ) -> Resynced:
        """Replace the copy from a fresh snapshot. ``suspect`` names what made the copy wrong,
        if known; the snapshot itself may name it better (rule 6, or ``event`` past it)."""
        delay = 0.1
        while True:
            try:
                snapshot = await self.client.snapshot(self.state.scope)
                break
            except RequestTimeout as exc:
                log.warning("replica: no snapshot yet (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        scope = None if self.state.scope is None else snapshot.scopes.get(self.state.scope)
        found = self.state.ahead_of(snapshot.revision, None if scope is None else scope.revision)
        if found is None and event is not None and event.revision > snapshot.revision:
            found = (
                f"event {event.revision} on {event.topic!r} is past the store's revision "
                f"{snapshot.revision}"
            )
        suspect = found or suspect
        if suspect is not None:
            self.rejected += 1
            if self.rejected <= 10:  # a flood of forgeries must not flood the log too
                log.warning(
                    "replica: an event the store does not have (%s); the copy is replaced "
                    "from a snapshot at revision %d%s",
                    suspect,
                    snapshot.revision,
                    "; further ones are only counted" if self.rejected == 10 else "",
                )
        self.state.load(snapshot)
        self.resyncs += 1
        self._store_was = None
        return Resynced(snapshot.revision, reason)
