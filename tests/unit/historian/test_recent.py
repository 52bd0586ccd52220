"""Raw samples go to ``recent`` (clustered by time) and are settled into ``samples`` (by point)
every 30 s. Reads see both, in order, each sample once — settled or not, paged or not, sent
again or not — and samples in ``recent`` survive a crash."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest

import plantd.historian._store as store_module
from plantd.bus import Quality, Sample
from plantd.config import HistorianConfig
from plantd.historian import HistoryStore
from plantd.historian._query import query, samples_between

T0 = float(int(time.time()) - 600)  # recent: retention keeps it


def batch(step: int) -> list[tuple[str, Sample]]:
    return [
        (name, Sample(float(step * 10 + i), T0 + step, Quality.GOOD, seq=step + 1, epoch=5))
        for i, name in enumerate(("m.a", "m.b", "m.c"))
    ]


def counts(path: Path) -> tuple[int, int]:
    conn = sqlite3.connect(path)
    try:
        settled = conn.execute("SELECT count(*) FROM samples").fetchone()[0]
        recent = conn.execute("SELECT count(*) FROM recent").fetchone()[0]
    finally:
        conn.close()
    return settled, recent


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    path = tmp_path / "h.db"
    return HistoryStore(path, HistorianConfig(database=path))


def settle(store: HistoryStore) -> None:
    store._writer.call(store._settle_now)


def test_reads_see_settled_and_recent_samples_in_order_once(store: HistoryStore) -> None:
    try:
        for step in range(10):
            store.write_batch(batch(step))
        settle(store)
        assert counts(store.path) == (30, 0)
        for step in range(10, 20):
            store.write_batch(batch(step))
        store.write_batch(batch(4))  # settled already, and sent again: a duplicate
        store.write_batch(batch(15))  # in recent already: ignored there
        assert counts(store.path) == (30, 33)

        got = store.read_now(lambda c: samples_between(c, "m.b", T0, T0 + 100))
        assert [s.seq for s in got] == list(range(1, 21))
        assert [s.value for s in got] == [float(step * 10 + 1) for step in range(20)]

        pages, after = [], None
        while True:  # pages of 7 across the two tables and the three points
            page = store.read_now(
                lambda c, a=after: query(c, "m.*", since=T0, until=T0 + 100, limit=7, after=a)
            )
            pages.extend((row[0], row[5]) for row in page["rows"])
            after = page["next"]
            if after is None:
                break
        assert pages == [(name, seq) for name in ("m.a", "m.b", "m.c") for seq in range(1, 21)]

        settle(store)
        assert counts(store.path) == (60, 0)
        assert store.stats.samples == 60  # the duplicate of a settled sample is not counted
        again = store.read_now(lambda c: samples_between(c, "m.b", T0, T0 + 100))
        assert again == got
    finally:
        store.close()


def test_the_writer_settles_by_itself(store: HistoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "_SETTLE_MAX_ROWS", 9)
    try:
        for step in range(5):
            store.write_batch(batch(step))
        settled, recent = counts(store.path)
        assert settled == 9  # three batches reached the bound, then were settled
        assert recent == 6
    finally:
        store.close()


def test_recent_samples_survive_a_crash(store: HistoryStore, tmp_path: Path) -> None:
    crashed = tmp_path / "crashed" / "h.db"
    try:
        for step in range(6):
            store.write_batch(batch(step))
        crashed.parent.mkdir()
        for suffix in ("", "-wal"):  # what a kill -9 leaves: the file and its WAL
            shutil.copy(f"{store.path}{suffix}", f"{crashed}{suffix}")
    finally:
        store.close()
    reopened = HistoryStore(crashed, HistorianConfig(database=crashed))
    try:
        got = reopened.read_now(lambda c: samples_between(c, "m.c", T0, T0 + 100))
        assert [s.seq for s in got] == [1, 2, 3, 4, 5, 6]
        reopened.maintain()  # settles first
        assert counts(crashed) == (18, 0)
    finally:
        reopened.close()
