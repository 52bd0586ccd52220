"""A replica following the change stream through forced gaps ends byte-for-byte equal to the
store: messages dropped on the way, a subscriber paused past its high-water mark, events lost
when the service is killed, a lost last event with a silent store afterwards, and a forged
event that claims a revision far ahead of the store."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from plantd.bus import BusMessage, BusPublisher, BusSubscriber
from plantd.state import Changed, ChangeEvent, Replica, StateClient
from plantd.state._limits import encode_value
from tests.conftest import Stack
from tests.integration.state.conftest import database, start_state, wait_for_state


class DroppingSubscriber:
    """A real subscriber that loses the messages ``drop`` picks (a lossy network, a bug)."""

    def __init__(self, inner: BusSubscriber, drop: Callable[[BusMessage], bool]) -> None:
        self.inner = inner
        self.drop = drop
        self.dropped = 0

    async def receive_within(self, timeout: float) -> BusMessage | None:
        while True:
            message = await self.inner.receive_within(timeout)
            if message is None or not self.drop(message):
                return message
            self.dropped += 1

    def close(self) -> None:
        self.inner.close()


def store_canonical(
    path: Path, scope: str | None = None
) -> tuple[bytes, dict[tuple[str, str], str]]:
    """The canonical form read straight from the database file, and each value's stored text."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        names = db.execute(
            "SELECT s.name, r.revision FROM scopes s JOIN scope_revisions r ON r.name = s.name"
        ).fetchall()
        rows = db.execute("SELECT scope, key, value, revision, version FROM entries").fetchall()
    data: dict[str, dict[str, object]] = {
        name: {"exists": True, "revision": revision, "keys": {}}
        for name, revision in names
        if scope is None or name == scope
    }
    texts = {}
    for name, key, value, revision, version in rows:
        if name in data:
            keys = data[name]["keys"]
            assert isinstance(keys, dict)
            keys[key] = {"value": json.loads(value), "revision": revision, "version": version}
            texts[(name, key)] = value
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return canonical.encode(), texts


async def assert_equal_to_store(replica: Replica, state: StateClient, path: Path) -> None:
    """Caught up with the store, the replica is byte-for-byte what the store holds."""
    health = await state.health()
    await replica.catch_up(int(health["revision"]), timeout=20)
    scope = replica.state.scope
    snapshot = await state.snapshot(scope)
    assert replica.revision == snapshot.revision or scope is not None
    assert replica.state.canonical() == snapshot.canonical()
    if scope is None:
        canonical, texts = store_canonical(path)
        assert replica.state.canonical() == canonical  # the file itself, not only the service
        for (name, key), text in texts.items():
            entry = replica.state.get(name, key)
            assert entry is not None
            assert encode_value(entry.value) == text


async def churn(state: StateClient, rng: random.Random, scopes: list[str], writes: int) -> None:
    """Sets, deletes, batches, and scopes deleted and created again, from 4 writers at once."""

    async def writer(lane: int) -> None:
        for n in range(writes // 4):
            scope = rng.choice(scopes)
            roll = rng.random()
            try:
                if roll < 0.6:
                    await state.set(scope, f"k{rng.randrange(20)}", {"lane": lane, "n": n})
                elif roll < 0.8:
                    await state.batch(
                        [
                            {"op": "set", "scope": scope, "key": f"b{i}", "value": [lane, n, i]}
                            for i in range(rng.randrange(1, 6))
                        ]
                    )
                elif roll < 0.97:
                    await state.delete(scope, f"k{rng.randrange(20)}")
                else:
                    await state.delete_scope(scope)
                    await state.create_scope(scope)
            except Exception as exc:  # unknown key/scope: the churn races itself, that's fine
                if "unknown" not in str(exc):
                    raise

    await asyncio.gather(*(writer(lane) for lane in range(4)))


def lossy(seed: int, rate: float) -> Callable[[BusMessage], bool]:
    rng = random.Random(seed)
    return lambda message: rng.random() < rate


@pytest.mark.stack(state={"workers": 4})
async def test_a_replica_through_dropped_messages(stack: Stack, state_client: StateClient) -> None:
    stack.start_broker()
    start_state(stack)
    scopes = ["plant.a", "plant.b", "plant.a.b"]  # nested names share topic prefixes
    for scope in scopes:
        await state_client.create_scope(scope)
    inner = BusSubscriber(stack.settings["bus"]["backend"], ["state."])
    dropping = DroppingSubscriber(inner, lossy(1, 0.03))
    replica = Replica(state_client, "", subscriber=dropping, check_interval=None)
    applied: list[int] = []

    async def follow() -> None:
        async for update in replica.updates():
            if isinstance(update, Changed):
                applied.append(update.event.revision)

    follower = asyncio.create_task(follow())
    try:
        await churn(state_client, random.Random(2), scopes, 400)
        await asyncio.sleep(0.5)
    finally:
        follower.cancel()
    dropping.drop = lambda message: False
    await assert_equal_to_store(replica, state_client, database(stack))
    assert dropping.dropped > 0
    assert replica.gaps > 0
    assert replica.resyncs >= 2
    assert applied == sorted(set(applied)), "a change was applied twice or out of order"
    replica.close()


@pytest.mark.stack(bus={"high_water_mark": 50}, state={"workers": 4})
async def test_a_replica_paused_past_the_high_water_mark(
    stack: Stack, state_client: StateClient
) -> None:
    stack.start_broker()
    start_state(stack)
    await state_client.create_scope("plant.big")
    replica = Replica(
        state_client, stack.settings["bus"]["backend"], high_water_mark=20, check_interval=None
    )
    await replica.catch_up(1)
    assert replica.resyncs == 1
    # Paused (nobody pulls) while ~8 MB of changes go by: far past every buffer on the way.
    blob = "x" * 2000
    for n in range(200):
        await state_client.batch(
            [
                {"op": "set", "scope": "plant.big", "key": f"k{i}", "value": [n, blob]}
                for i in range(20)
            ]
        )
    applied: list[int] = []
    health = await state_client.health()
    deadline = time.monotonic() + 30
    while replica.revision < health["revision"]:
        assert time.monotonic() < deadline, "the replica stopped moving"
        update = await replica.next_update(2)
        if update is None:
            # What the buffers held was contiguous and everything after it was lost: nothing
            # shows that gap to a replica without a periodic check until the store changes again.
            await state_client.set("plant.big", "last", replica.revision)
            health = await state_client.health()
        elif isinstance(update, Changed):
            applied.append(update.event.revision)
    await assert_equal_to_store(replica, state_client, database(stack))
    assert replica.gaps >= 1
    assert replica.resyncs >= 2
    assert applied == sorted(set(applied))
    replica.close()


@pytest.mark.stack(state={"workers": 4})
async def test_a_scope_replica_through_gaps_and_its_scope_deleted(
    stack: Stack, state_client: StateClient
) -> None:
    stack.start_broker()
    start_state(stack)
    scopes = ["plant.a", "plant.a.b", "plant.c"]
    for scope in scopes:
        await state_client.create_scope(scope)
    inner = BusSubscriber(stack.settings["bus"]["backend"], ["state.plant.a."])
    dropping = DroppingSubscriber(inner, lossy(3, 0.05))
    replica = Replica(state_client, "", "plant.a", subscriber=dropping, check_interval=None)
    follower = asyncio.create_task(_drain(replica))
    try:
        await churn(state_client, random.Random(4), scopes, 300)
        await state_client.delete_scope("plant.a")
        await asyncio.sleep(0.3)
        await state_client.create_scope("plant.a")
        await state_client.set("plant.a", "after", True)
        await asyncio.sleep(0.5)
    finally:
        follower.cancel()
    dropping.drop = lambda message: False
    await state_client.set("plant.a", "last", 1)  # shows any trailing gap
    await asyncio.wait_for(_until(replica, lambda: replica.state.get("plant.a", "last")), 10)
    snapshot = await state_client.snapshot("plant.a")
    assert replica.state.canonical() == snapshot.canonical()
    assert replica.state.canonical() == store_canonical(database(stack), "plant.a")[0]
    assert replica.gaps > 0
    replica.close()


@pytest.mark.stack(state={"workers": 2})
async def test_a_lost_last_event_is_found_by_the_periodic_check(
    stack: Stack, state_client: StateClient
) -> None:
    stack.start_broker()
    start_state(stack)
    await state_client.create_scope("quiet")
    inner = BusSubscriber(stack.settings["bus"]["backend"], ["state."])
    dropping = DroppingSubscriber(inner, lambda m: m.topic == "state.quiet.lost")
    replica = Replica(state_client, "", subscriber=dropping, check_interval=0.2)
    await replica.catch_up(1)
    await state_client.set("quiet", "seen", 1)
    await state_client.set("quiet", "lost", 2)  # dropped, and nothing follows it
    await replica.catch_up(3, timeout=5)
    assert dropping.dropped == 1
    assert replica.gaps == 0
    assert replica.resyncs == 2  # the start, and the check that found the copy behind
    await assert_equal_to_store(replica, state_client, database(stack))
    replica.close()


@pytest.mark.stack(state={"workers": 2})
async def test_a_replica_across_a_kill9_of_the_service(
    stack: Stack, state_client: StateClient
) -> None:
    stack.start_broker()
    service = start_state(stack)
    await state_client.create_scope("plant.k")
    replica = Replica(state_client, stack.settings["bus"]["backend"], check_interval=0.5)
    follower = asyncio.create_task(_drain(replica))
    try:
        for n in range(50):
            await state_client.set("plant.k", f"k{n % 5}", n)
        service.kill()  # whatever was committed but not yet published is never published
        service.start()
        await asyncio.to_thread(wait_for_state, stack.endpoint)
        for n in range(50, 100):
            await state_client.set("plant.k", f"k{n % 5}", n)
    finally:
        follower.cancel()
    await assert_equal_to_store(replica, state_client, database(stack))
    replica.close()


@pytest.mark.stack(state={"workers": 2})
async def test_one_forged_event_does_not_blind_a_watching_replica(
    stack: Stack, state_client: StateClient, caplog: pytest.LogCaptureFixture
) -> None:
    stack.start_broker()
    start_state(stack)
    scope, forged_revision = "plant.w", 10**9
    await state_client.create_scope(scope)
    await state_client.set(scope, "k", 0)
    bus = stack.settings["bus"]
    replica = Replica(state_client, bus["backend"], scope)  # as `plant state watch` makes it
    forger = BusPublisher(bus["frontend"])

    async def pull_until(
        condition: Callable[[], bool], what: str, each: Callable[[], None]
    ) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline, f"the replica never {what}"
            each()
            await replica.next_update(0.05)

    try:
        await replica.catch_up(2)
        held = replica.state.scopes[scope]
        forged = ChangeEvent("set", scope, "k", forged_revision, held.revision, "forged", 9)
        await forger.wait_for_subscribers()

        def publish_forged() -> None:  # until it lands: a new publisher joins late
            if time.monotonic() >= sent[0] + 0.5:
                forger.publish_record(forged.topic, forged.to_record())
                sent[0] = time.monotonic()

        sent = [0.0]

        await pull_until(lambda: replica.revision == forged_revision, "took it", publish_forged)
        assert getattr(replica.state.get(scope, "k"), "value", None) == "forged"  # on trust
        for n in (1, 2, 3):
            await state_client.set(scope, f"real{n}", n)

        def values() -> list[object]:
            return [getattr(replica.state.get(scope, f"real{n}"), "value", None) for n in (1, 2, 3)]

        await pull_until(lambda: values() == [1, 2, 3], "saw the three real changes", lambda: None)
    finally:
        forger.close()
    snapshot = await state_client.snapshot(scope)
    assert replica.state.canonical() == snapshot.canonical()
    assert replica.state.canonical() == store_canonical(database(stack), scope)[0]
    assert replica.revision == snapshot.revision < forged_revision
    # One warning per rejection, each naming the forged event (once, unless a second copy of
    # it, published before the first landed, arrives after the resync).
    warnings = [r.getMessage() for r in caplog.records if r.name == "plantd.state._replica"]
    assert 1 <= len(warnings) == replica.rejected
    assert all(f"event {forged_revision} on 'state.plant.w.k'" in w for w in warnings)
    replica.close()


async def _drain(replica: Replica) -> None:
    async for _ in replica.updates():
        pass


async def _until(replica: Replica, condition: Callable[[], object]) -> None:
    while not condition():
        await replica.next_update(1)
