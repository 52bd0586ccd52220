"""The alarm store: a real SQLite file; a restart is a new AlarmStore on the same file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from plantd.bus import Sample
from plantd.control._alarm_config import AlarmConfig
from plantd.control._alarm_engine import AlarmEngine, AlarmEvent
from plantd.control._alarm_store import AlarmStore, AlarmStoreError

P = "field.tank_level"
ALARMS = (
    AlarmConfig(name="hi", point=P, type="high", limit=4.5),
    AlarmConfig(name="lo", point=P, type="low", limit=1.0),
)
DAY = 86400.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "alarms.db"


@pytest.fixture
def clock() -> Clock:
    return Clock(1000.0)


@pytest.fixture
def store(path: Path, clock: Clock) -> Iterator[AlarmStore]:
    s = AlarmStore(path, max_age=DAY, max_rows=1000, clock=clock)
    yield s
    s.close()


def cycle(engine: AlarmEngine, start: float) -> list[AlarmEvent]:
    """Raise, acknowledge, clear "hi" and raise "lo": four events."""
    events = engine.observe(P, Sample(5.0, start), start)
    events += engine.acknowledge("hi", "alice", start + 1, "seen")
    events += engine.observe(P, Sample(0.5, start + 2), start + 2)
    return events


async def test_state_and_history_survive_a_restart(path: Path, store: AlarmStore) -> None:
    first = AlarmEngine(ALARMS, store.load())
    events = cycle(first, 100.0)
    assert [(e.alarm, e.transition) for e in events] == [
        ("hi", "raised"), ("hi", "acknowledged"), ("hi", "cleared"), ("lo", "raised"),
    ]  # fmt: skip
    await store.record(events[:2])
    await store.record(events[2:])
    store.close()

    again = AlarmStore(path, max_age=DAY, max_rows=1000)
    try:
        loaded = again.load()
        assert loaded == {s.alarm: s for s in first.snapshots()}
        second = AlarmEngine(ALARMS, loaded)
        (ack,) = second.acknowledge("lo", "bob", 200.0)
        assert ack.seq == 2  # "lo" goes on counting after the restart
        history = await again.history(since=0, until=1e12, alarm=None, limit=100)
        assert history == [e.to_record() for e in reversed(events)]  # newest first
        only_hi = await again.history(since=101.0, until=1e12, alarm="hi", limit=100)
        assert [r["transition"] for r in only_hi] == ["cleared", "acknowledged"]
        limited = await again.history(since=0, until=102.0, alarm=None, limit=1)
        assert [r["transition"] for r in limited] == ["acknowledged"]
    finally:
        again.close()


async def test_an_older_event_never_overwrites_a_newer_state(store: AlarmStore) -> None:
    events = cycle(AlarmEngine(ALARMS), 100.0)
    hi = [e for e in events if e.alarm == "hi"]
    await store.record(hi)
    await store.record(hi[:1])  # a retry of an old batch
    assert store.load()["hi"].transition == "cleared"


async def test_retention_by_age_and_by_rows(path: Path, clock: Clock) -> None:
    store = AlarmStore(path, max_age=DAY, max_rows=5, clock=clock)
    try:
        engine = AlarmEngine(ALARMS)
        await store.record(cycle(engine, 100.0))  # 4 rows
        clock.now = 100.0 + DAY + 10  # those are more than a day old now
        second = cycle(engine, clock.now)
        await store.record(second)
        history = await store.history(since=0, until=1e12, alarm=None, limit=100)
        assert history == [e.to_record() for e in reversed(second)]  # the old four went
        more = cycle(engine, clock.now + 10) + cycle(engine, clock.now + 20)
        await store.record(more)
        history = await store.history(since=0, until=1e12, alarm=None, limit=100)
        assert history == [e.to_record() for e in reversed(more[-5:])]  # the newest five
        clock.now += 2 * DAY
        assert store.maintain() == 5
        assert await store.history(since=0, until=1e12, alarm=None, limit=100) == []
        assert set(store.load()) == {"hi", "lo"}  # the current state is never pruned
    finally:
        store.close()


async def test_a_full_disk_raises_a_clear_error_and_keeps_the_file_whole(
    path: Path, store: AlarmStore
) -> None:
    engine = AlarmEngine(ALARMS)
    first = cycle(engine, 100.0)
    await store.record(first)
    before = store.load()
    pages = store._db.call(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    store._db.call(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))  # the disk is full
    big = AlarmConfig(name="hi", point=P, type="high", limit=4.5, message="x" * 200_000)
    events = cycle(AlarmEngine((big, ALARMS[1]), before), 200.0)
    with pytest.raises(AlarmStoreError) as caught:
        await store.record(events)
    assert str(path) in str(caught.value)
    assert "full" in str(caught.value)
    assert store.load() == before
    assert len(await store.history(since=0, until=1e12, alarm=None, limit=100)) == len(first)
    store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def test_a_row_that_is_not_a_record_is_skipped_on_load(path: Path, store: AlarmStore) -> None:
    store._db.call(
        lambda c: c.execute(
            "INSERT INTO current (alarm, seq, record) VALUES ('hi', 1, ?), ('lo', 1, '[]')",
            (json.dumps({"alarm": "hi"}),),
        )
    )
    assert store.load() == {}


def test_a_path_that_cannot_be_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "alarms.db"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(AlarmStoreError) as caught:
        AlarmStore(path, max_age=DAY, max_rows=10)
    assert str(path) in str(caught.value)
