"""Buffered rollups: the store folds batches into a buffer and merges it into ``rollups`` every
few seconds. Whatever happens — merges at any moment, a crash before a merge, a commit that
fails — the table ends up equal to the rollups computed directly from what was stored."""

from __future__ import annotations

import math
import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from plantd.bus import Quality, Sample
from plantd.config import HistorianConfig
from plantd.historian import HistoryStore, rollup
from plantd.historian._rows import RollupBuffer

T0 = 1_700_000_000.0 - 1_700_000_000.0 % 86_400.0


def batches(seed: int, count: int) -> list[list[tuple[str, Sample]]]:
    """``count`` batches of every point, 7 s apart, with every kind of value a point may carry:
    floats, ints, bools, NaN, ±inf, text, bad quality."""
    rng = random.Random(seed)
    out = []
    for step in range(count):
        ts = T0 + step * 7.0
        batch = []
        for point in ("m.a", "m.b", "m.c", "m.d"):
            value: float | int | bool | str = rng.choice(
                [rng.uniform(-50, 50), rng.randrange(-9, 9), True, math.nan, -math.inf, "x"]
            )
            quality = Quality.GOOD if rng.random() < 0.8 else Quality.BAD
            batch.append((point, Sample(value, ts, quality, seq=step + 1, epoch=3)))
        out.append(batch)
    return out


def expected_rows(stored: list[list[tuple[str, Sample]]]) -> set[tuple[object, ...]]:
    names = {name: index for index, name in enumerate(("m.a", "m.b", "m.c", "m.d"))}
    pairs = [(names[name], sample) for batch in stored for name, sample in batch]
    return {
        (("m.a", "m.b", "m.c", "m.d")[point], width, bucket, a.min, a.max, round(a.sum, 6), a.count)
        for (point, width, bucket), a in rollup(pairs).items()
    }


def table_rows(path: Path) -> set[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT p.name, r.width, r.bucket, r.min, r.max, r.sum, r.count "
            "FROM rollups r JOIN points p ON p.id = r.point"
        ).fetchall()
    finally:
        conn.close()
    return {(*row[:5], round(row[5], 6), row[6]) for row in rows}


def make_store(path: Path) -> HistoryStore:
    return HistoryStore(path, HistorianConfig(database=path))


def test_the_buffer_folds_as_rollup_does() -> None:
    pairs = [(i % 3, s) for i, (_, s) in enumerate(p for b in batches(1, 300) for p in b)]
    buffer = RollupBuffer()
    for start in range(0, len(pairs), 37):  # in uneven slices, as batches come
        buffer.add(pairs[start : start + 37])
    counted = [s.timestamp for _, s in pairs if rollup([(0, s)])]  # the samples that count
    assert buffer.since == min(counted)
    got = {row[:3]: row[3:] for row in buffer.take()}
    want = {key: (a.min, a.max, a.sum, a.count) for key, a in rollup(pairs).items()}
    assert got.keys() == want.keys()
    for key, (low, high, total, count) in want.items():
        assert got[key][0::3] == (low, count)
        assert got[key][1] == high
        assert got[key][2] == pytest.approx(total)
    assert len(buffer) == 0
    assert buffer.since is None


def test_merged_rollups_equal_the_direct_ones(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    stored = batches(2, 200)
    store = make_store(path)
    try:
        for number, batch in enumerate(stored):
            store.write_batch(batch)
            if number % 50 == 0:  # a read merges what is buffered, at any moment
                store.read_now(lambda c: c.execute("SELECT count(*) FROM rollups").fetchone())
    finally:
        store.close()
    assert table_rows(path) == expected_rows(stored)


def test_a_crash_before_the_merge_is_rebuilt_from_the_raw_samples(tmp_path: Path) -> None:
    path, crashed = tmp_path / "h.db", tmp_path / "crashed" / "h.db"
    stored = batches(3, 120)
    store = make_store(path)
    try:
        for batch in stored[:60]:
            store.write_batch(batch)
        store.read_now(lambda c: None)  # merged up to here
        for batch in stored[60:]:
            store.write_batch(batch)
        # What a kill -9 leaves now: the committed file and WAL, the buffer gone.
        crashed.parent.mkdir()
        for suffix in ("", "-wal"):
            shutil.copy(f"{path}{suffix}", f"{crashed}{suffix}")
    finally:
        store.close()
    conn = sqlite3.connect(crashed)
    noted = conn.execute("SELECT since FROM rollup_backlog").fetchone()
    conn.close()
    assert noted is not None
    assert table_rows(crashed) != expected_rows(stored)  # the last batches' rollups are missing
    make_store(crashed).close()  # the next start rebuilds them
    assert table_rows(crashed) == expected_rows(stored)
    conn = sqlite3.connect(crashed)
    assert conn.execute("SELECT count(*) FROM rollup_backlog").fetchone() == (0,)
    conn.close()


def test_a_failed_commit_leaves_no_trace_in_the_rollups(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    stored = batches(4, 90)
    store = make_store(path)
    try:
        store.write_batch(stored[0])  # the schema exists from here on
        trigger = sqlite3.connect(path)
        trigger.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON recent WHEN NEW.seq = 40 "
            "BEGIN SELECT RAISE(ABORT, 'refused for the test'); END"
        )
        trigger.commit()
        trigger.close()
        for batch in stored[1:]:
            store.write_batch(batch)
        assert store.stats.failed_batches == 1
    finally:
        store.close()
    kept = [batch for batch in stored if batch[0][1].seq != 40]
    assert table_rows(path) == expected_rows(kept)
