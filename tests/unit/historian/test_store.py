"""The history store on a real SQLite file with a fake clock: rows, rollups, retention over a
simulated day, paging."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from pathlib import Path

import pytest

from plantd.bus import Quality, Sample
from plantd.config import HistorianConfig
from plantd.historian import HistoryStore, from_row, rollup, to_row
from plantd.historian._query import query, samples_between

DAY = 86_400.0
T0 = 1_700_000_000.0 - 1_700_000_000.0 % DAY  # a midnight, so buckets line up with the day


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "value", [1.5, -0.0, math.inf, 7, -(2**63), 2**70, True, False, "text", None, [1, "a"], {}]
)
def test_values_survive_a_row(value: object) -> None:
    kind, stored = to_row(value)  # type: ignore[arg-type]
    back = from_row(kind, stored)
    assert back == value
    assert type(back) is type(value)


def test_nan_is_stored_as_null_and_read_back_as_nan() -> None:
    assert to_row(math.nan) == ("f", None)
    assert math.isnan(from_row("f", None))  # type: ignore[arg-type]


def test_rollup_counts_only_finite_good_numbers() -> None:
    rows = [
        (1, Sample(1.0, T0 + 1)),
        (1, Sample(3, T0 + 59)),
        (1, Sample(100.0, T0 + 61)),
        (1, Sample(True, T0 + 2)),
        (1, Sample(math.nan, T0 + 3)),
        (1, Sample(50.0, T0 + 4, Quality.BAD)),
        (1, Sample("x", T0 + 5)),
    ]
    buckets = rollup(rows)
    first = buckets[(1, 60, int(T0))]
    assert (first.min, first.max, first.sum, first.count, first.mean) == (1.0, 3.0, 4.0, 2, 2.0)
    assert buckets[(1, 60, int(T0) + 60)].count == 1
    assert buckets[(1, 3600, int(T0))].count == 3


def make_store(tmp_path: Path, clock: Clock, **settings: object) -> HistoryStore:
    config = HistorianConfig(**settings)  # type: ignore[arg-type]
    return HistoryStore(tmp_path / "history.db", config, clock=clock)


def test_a_simulated_day_keeps_raw_for_its_age_and_rollups_longer(tmp_path: Path) -> None:
    """One sample every 10 s for three points for 24 h, written in batches of 60 s as the
    historian would, with retention applied every simulated hour: raw data keeps 6 h, minute
    rollups 12 h, hour rollups a month; every rollup equals the one computed here directly."""
    clock = Clock(T0)
    store = make_store(
        tmp_path, clock, raw_max_age=6 * 3600.0, minute_max_age=12 * 3600.0,
        hour_max_age=30 * DAY,
    )  # fmt: skip
    rng = random.Random(8)
    expected: dict[tuple[str, int, int], list[float]] = defaultdict(list)
    try:
        batch: list[tuple[str, Sample]] = []
        for step in range(int(DAY // 10)):
            ts = T0 + step * 10
            for point in ("m.a", "m.b", "m.c"):
                value = rng.uniform(-100, 100) if point != "m.c" else rng.randrange(0, 1000)
                batch.append((point, Sample(value, ts, seq=step + 1, epoch=7)))
                for width in (60, 3600):
                    expected[(point, width, int(ts // width) * width)].append(float(value))
            if len(batch) >= 18:  # a minute of samples
                clock.now = ts
                store.write_batch(batch)
                batch = []
                if step % 360 == 0:
                    store.maintain()
        clock.now = T0 + DAY
        store.maintain()
        raw = store.read_now(
            lambda c: c.execute("SELECT min(ts), max(ts), count(*) FROM every_sample").fetchone()
        )
        assert raw[0] >= T0 + DAY - 6 * 3600
        assert raw[1] == T0 + DAY - 10
        assert raw[2] == 3 * 6 * 360  # three points, 6 h, a sample every 10 s
        for width, keep in ((60, 12 * 3600), (3600, 30 * DAY)):
            rows = store.read_now(
                lambda c, w=width: c.execute(
                    "SELECT p.name, r.bucket, r.min, r.max, r.sum, r.count FROM rollups r "
                    "JOIN points p ON p.id = r.point WHERE r.width = ?",
                    (w,),
                ).fetchall()
            )
            wanted = {
                k: v for k, v in expected.items() if k[1] == width and k[2] >= T0 + DAY - keep
            }
            assert len(rows) == len(wanted)
            for name, bucket, low, high, total, count in rows:
                values = wanted[(name, width, bucket)]
                assert (low, high, count) == (min(values), max(values), len(values))
                assert total == pytest.approx(sum(values))
        assert store.stats.deleted_by_age > 0
    finally:
        store.close()


def test_over_max_bytes_the_oldest_raw_samples_go_first(tmp_path: Path) -> None:
    clock = Clock(T0 + DAY)
    store = make_store(tmp_path, clock, max_bytes=1_048_576)
    try:
        for chunk in range(80):
            store.write_batch(
                [
                    (f"m.p{i}", Sample("x" * 200, T0 + chunk * 100 + i / 10, seq=chunk + 1))
                    for i in range(100)
                ]
            )
        before = store.read_now(lambda c: c.execute("SELECT count(*) FROM every_sample").fetchone())
        deleted = store.maintain()
        assert deleted["by_size"] > 0
        oldest, count = store.read_now(
            lambda c: c.execute("SELECT min(ts), count(*) FROM every_sample").fetchone()
        )
        assert count == before[0] - deleted["by_size"]
        assert oldest > T0  # the oldest went
        from plantd.historian._store import used_bytes

        assert store.read_now(used_bytes) <= 1_048_576
    finally:
        store.close()


def test_query_pages_through_points_in_order(tmp_path: Path) -> None:
    store = make_store(tmp_path, Clock(T0))
    try:
        store.write_batch(
            [
                (name, Sample(float(i), T0 + i, seq=i + 1))
                for name in ("b.x", "a.x")
                for i in range(5)
            ]
        )
        seen: list[list[object]] = []
        after = None
        pages = 0
        while True:
            page = store.read_now(
                lambda c, a=after: query(c, "*.x", since=T0, until=T0 + 100, limit=3, after=a)
            )
            pages += 1
            seen.extend(page["rows"])
            after = page["next"]
            if after is None:
                break
        assert pages == 4
        assert [(row[0], row[2]) for row in seen] == [
            (name, float(i)) for name in ("a.x", "b.x") for i in range(5)
        ]
        minute = store.read_now(
            lambda c: query(c, "a.x", since=T0, until=T0 + 100, resolution="minute")
        )
        assert minute["rows"] == [["a.x", int(T0), 0.0, 4.0, 2.0, 5]]
        found = store.read_now(lambda c: samples_between(c, "a.x", T0 + 1, T0 + 2))
        assert [(s.seq, s.value) for s in found] == [(2, 1.0), (3, 2.0)]
    finally:
        store.close()
