"""The replica's shell against a real store, without sockets or waiting: the store's change events
go straight into a fake subscriber, the shell's calls straight to the store, and time passes only
when the subscriber waits (a fake clock). Forged events are injected into the same feed."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from plantd.bus import BusMessage, Record
from plantd.service import Json
from plantd.state import (
    Changed,
    ChangeEvent,
    CreateScope,
    DeleteScope,
    Replica,
    Resynced,
    Set,
    Snapshot,
    StateClient,
    Store,
    Update,
    Write,
)

A, B = "plant.a", "plant.b"
CHECK = 5.0  # the replica's check_interval, in fake seconds
FORGED = 10**9


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Feed:
    """The subscriber's end of the bus: what the store publishes under ``prefix``, and what a
    test injects. Waiting on an empty feed lets the time asked for pass at once."""

    def __init__(self, clock: FakeClock, prefix: str) -> None:
        self.clock = clock
        self.prefix = prefix
        self.messages: deque[BusMessage] = deque()

    def publish(self, events: list[ChangeEvent]) -> None:  # the store's on_commit
        for event in events:
            self.inject(event)

    def inject(self, event: ChangeEvent) -> None:
        if event.topic.startswith(self.prefix):
            self.messages.append(BusMessage(event.topic, Record(event.to_record())))

    async def receive_within(self, timeout: float) -> BusMessage | None:
        if self.messages:
            return self.messages.popleft()
        self.clock.now += timeout
        return None

    def close(self) -> None:
        pass


class Service:
    """What the replica asks of ``org.plantd.State``, answered by the store; counts snapshots."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.snapshots = 0

    async def snapshot(self, scope: str | None = None) -> Snapshot:
        self.snapshots += 1
        return self.store.snapshot(scope)

    async def health(self) -> dict[str, Json]:
        return {"revision": self.store.revision()}

    async def list_scopes(self) -> dict[str, Json]:
        return self.store.scopes()


class Rig:
    def __init__(self, path: Path, scope: str | None) -> None:
        self.clock = FakeClock()
        self.feed = Feed(self.clock, "state." if scope is None else f"state.{scope}.")
        self.store = Store(path, on_commit=self.feed.publish)
        self.service = Service(self.store)
        self.replica = Replica(
            cast(StateClient, self.service),
            "",
            scope,
            subscriber=self.feed,
            settle=0.0,
            check_interval=CHECK,
            clock=self.clock,
        )

    def write(self, *ops: Any) -> None:
        self.store.write(Write("batch" if len(ops) > 1 else "test", ops))

    def set(self, scope: str, key: str, value: Json) -> None:
        self.write(Set(scope, key, value, json.dumps(value)))

    async def start(self) -> None:
        assert isinstance(await self.replica.next_update(), Resynced)
        await self.pull()

    async def pull(self) -> list[Update]:
        """Every update the feed holds now (and a check, if one is due)."""
        updates = []
        while (update := await self.replica.next_update(0)) is not None:
            updates.append(update)
        return updates

    async def check(self) -> list[Update]:
        self.clock.now += CHECK
        return await self.pull()

    def forged(self, scope: str, key: str, value: Json, revision: int) -> ChangeEvent:
        """A set that fits what the replica holds: ``prev`` is the scope's revision there."""
        held = self.replica.state.scopes[scope]
        event = ChangeEvent("set", scope, key, revision, held.revision, value, version=1)
        self.feed.inject(event)
        return event

    def assert_equal_to_store(self) -> None:
        snapshot = self.store.snapshot(self.replica.state.scope)
        assert self.replica.state.canonical() == snapshot.canonical()
        assert self.replica.revision <= snapshot.revision


@pytest.fixture(params=[None, A], ids=["whole-store", "one-scope"])
def rig(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rig]:
    the_rig = Rig(tmp_path / "state.db", request.param)
    the_rig.write(CreateScope(A))
    the_rig.write(CreateScope(B))
    the_rig.set(A, "k", 0)
    try:
        yield the_rig
    finally:
        the_rig.store.close()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


async def test_one_forged_event_does_not_blind_the_replica(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    await rig.start()
    rig.forged(A, "k", "forged", FORGED)
    await rig.pull()
    updates = []
    for n in (1, 2, 3):
        rig.set(A, f"real{n}", n)
        rig.set(B, "other", n)  # a one-scope replica sees A's revisions jump by 2
        updates += await rig.pull()
    updates += await rig.check()
    rig.assert_equal_to_store()
    assert [rig.replica.state.get(A, f"real{n}") for n in (1, 2, 3)] == [
        rig.store.get(A, f"real{n}") for n in (1, 2, 3)
    ]
    assert rig.replica.state.get(A, "k") == rig.store.get(A, "k")  # not "forged"
    assert rig.replica.revision < FORGED
    assert rig.service.snapshots == 2  # the start, and one resync
    assert rig.replica.rejected == 1
    [warning] = warnings(caplog)
    assert f"event {FORGED} on 'state.plant.a.k'" in warning
    changed = [u.event.key for u in updates if isinstance(u, Changed) and u.event.scope == A]
    if rig.replica.state.scope is None:  # a jump is a gap: resynced before the real changes
        assert rig.replica.gaps == 1
        assert changed == ["real1", "real2", "real3"]
    else:  # applied on trust; the first real change contradicts it and resyncs
        assert rig.replica.conflicts == 1
        assert changed == ["real2", "real3"]  # real1 came with the resync's snapshot


async def test_a_copy_ahead_of_a_quiet_store_is_replaced_at_the_next_check(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    await rig.start()
    revision = FORGED if rig.replica.state.scope else rig.replica.revision + 1  # it applies
    event = rig.forged(A, "k", "forged", revision)
    assert await rig.pull() == [Changed(event)]
    rig.clock.now += CHECK - 0.1
    assert await rig.pull() == []  # the check is not due yet
    [resynced] = await rig.check()
    assert isinstance(resynced, Resynced)
    assert resynced.reason.startswith("ahead: the copy's revision")
    rig.assert_equal_to_store()
    assert rig.replica.state.get(A, "k") == rig.store.get(A, "k")
    [warning] = warnings(caplog)
    assert f"event {revision} on 'state.plant.a.k'" in warning
    rig.set(A, "after", 1)
    assert [type(u) for u in await rig.check()] == [Changed]
    rig.assert_equal_to_store()
    assert rig.service.snapshots == 2


async def test_a_forged_next_revision_conflicts_with_the_real_one(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    await rig.start()
    revision = rig.store.revision() + 1  # the very revision the store gives the next change
    rig.forged(A, "k", "forged", revision)
    await rig.pull()
    rig.set(A, "k", "real")
    updates = await rig.pull()
    assert [type(u) for u in updates] == [Resynced]
    assert rig.replica.conflicts == 1
    rig.assert_equal_to_store()
    assert rig.replica.state.get(A, "k") == rig.store.get(A, "k")
    assert len(warnings(caplog)) == 1


async def test_legitimate_jumps_in_a_busy_store_take_no_snapshot(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "state.db", A)
    try:
        rig.write(CreateScope(A))
        rig.write(CreateScope(B))
        await rig.start()
        for n in range(30):
            rig.set(B, "x", n)
            rig.set(A, f"k{n % 4}", n)
            rig.write(Set(B, "y", n, str(n)), Set(B, "z", n, str(n)))
            updates = await rig.pull()
            assert [type(u) for u in updates] == [Changed]
            if n % 10 == 9:
                assert await rig.check() == []
        rig.assert_equal_to_store()
        assert rig.service.snapshots == 1  # the start only
        assert (rig.replica.gaps, rig.replica.conflicts, rig.replica.rejected) == (0, 0, 0)
    finally:
        rig.store.close()


async def test_a_forged_creation_of_a_deleted_scope_is_found_by_the_check(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig(tmp_path / "state.db", A)
    try:
        rig.write(CreateScope(A))
        rig.write(CreateScope(B))
        rig.write(DeleteScope(A))
        await rig.start()
        held = rig.replica.state.scopes[A]
        assert not held.exists
        event = ChangeEvent("create-scope", A, "", rig.store.revision() + 1, held.revision)
        rig.feed.inject(event)
        assert await rig.pull() == [Changed(event)]
        rig.set(B, "x", 1)  # the store goes past the forged revision, elsewhere
        rig.set(B, "x", 2)
        [resynced] = await rig.check()
        assert isinstance(resynced, Resynced)
        assert resynced.reason == "missing: the store has no scope 'plant.a'"
        rig.assert_equal_to_store()
        assert not rig.replica.state.scopes[A].exists
        [warning] = warnings(caplog)
        assert f"event {event.revision} on 'state.plant.a.'" in warning
    finally:
        rig.store.close()
