"""The sinks' metrics (plantd/sinks/_metrics.py): what the disk queue keeps in memory for them
(its oldest entry's commit time, through commits, acknowledgements, drops and a reopen), and
what the collector makes of a sink's figures."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from plantd.bus import Sample, encode_sample
from plantd.sinks import DiskQueue, Intake
from plantd.sinks._metrics import COLLECTOR, DROP_REASONS, SinkCollector
from plantd.telemetry import REGISTRY


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def intake(*seqs: int) -> Intake:
    result = Intake()
    result.entries = [("data.m.p", encode_sample(Sample(1.0, 1.0, seq=n, epoch=1))) for n in seqs]
    return result


async def test_the_queue_keeps_its_oldest_entrys_commit_time(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    queue = DiskQueue(tmp_path / "q.db", max_bytes=10**6, max_age=100, clock=clock)
    try:
        assert queue.oldest == 0.0
        queue.commit_now(intake(1))
        clock.now = 1005.0
        queue.commit_now(intake(2, 3))
        assert (queue.length, queue.oldest) == (3, 1000.0)
        # Acknowledging the oldest entry makes the next one the oldest.
        await queue.ack(await queue.peek(0, 1))
        assert (queue.length, queue.oldest) == (2, 1005.0)
        # Kept across a reopen (read from the file).
        queue.close()
        queue = DiskQueue(tmp_path / "q.db", max_bytes=10**6, max_age=100, clock=clock)
        assert (queue.length, queue.oldest) == (2, 1005.0)
        # Past max_age the trim drops them all: nothing is old any more.
        clock.now = 1200.0
        assert await queue.trim() == 2
        assert (queue.length, queue.oldest) == (0, 0.0)
        queue.commit_now(intake(4))
        assert queue.oldest == 1200.0
        # Acknowledging newer entries first (live data before the backlog) keeps the oldest.
        clock.now = 1210.0
        queue.commit_now(intake(5))
        await queue.ack(await queue.peek(queue.last_id - 1, 1))
        assert (queue.length, queue.oldest) == (1, 1200.0)
        await queue.ack(await queue.peek(0, 1))
        assert (queue.length, queue.oldest) == (0, 0.0)
    finally:
        queue.close()


def test_dropping_the_oldest_for_max_bytes_moves_the_oldest_on(tmp_path: Path) -> None:
    row = len("data.m.p") + len(encode_sample(Sample(1.0, 1.0, seq=1, epoch=1))) + 24
    clock = Clock(50.0)
    queue = DiskQueue(tmp_path / "q.db", max_bytes=row + row // 2, max_age=3600, clock=clock)
    try:
        queue.commit_now(intake(1))
        clock.now = 60.0
        assert queue.commit_now(intake(2)) == 1  # the first entry went for max_bytes
        assert (queue.length, queue.oldest) == (1, 60.0)
    finally:
        queue.close()


def fake_sink(name: str, queue: DiskQueue, *, connected: bool, dropped: dict[str, int]) -> Any:
    return SimpleNamespace(name=name, queue=queue, upstream_connected=connected, dropped=dropped)


def samples(collector: SinkCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in collector.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_the_collector_reports_each_tracked_sinks_figures(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path / "q.db", max_bytes=10**6, max_age=3600, clock=Clock(1000.0))
    empty = DiskQueue(tmp_path / "e.db", max_bytes=10**6, max_age=3600, clock=Clock(1000.0))
    try:
        queue.commit_now(intake(1, 2, 3))
        queue.counters["delivered"] = 7
        collector = SinkCollector(clock=Clock(1010.0))
        up = fake_sink("up", queue, connected=True, dropped={"full": 2, "expired": 0})
        down = fake_sink("down", empty, connected=False, dropped={"full": 0, "expired": 1})
        collector.track(up)
        collector.track(down)
        got = samples(collector)
        assert got[("plantd_sink_backlog_samples", (("sink", "up"),))] == 3
        assert got[("plantd_sink_oldest_sample_age_seconds", (("sink", "up"),))] == 10.0
        assert got[("plantd_sink_delivered_total", (("sink", "up"),))] == 7
        assert got[("plantd_sink_dropped_total", (("reason", "full"), ("sink", "up")))] == 2
        assert got[("plantd_sink_connected", (("sink", "up"),))] == 1
        assert got[("plantd_sink_queue_bytes", (("sink", "up"),))] == queue.bytes > 0
        # An empty queue has no oldest sample: age 0, not the time since 1970.
        assert got[("plantd_sink_backlog_samples", (("sink", "down"),))] == 0
        assert got[("plantd_sink_oldest_sample_age_seconds", (("sink", "down"),))] == 0
        assert got[("plantd_sink_connected", (("sink", "down"),))] == 0
        assert got[("plantd_sink_dropped_total", (("reason", "expired"), ("sink", "down")))] == 1

        # Untracking a stale sink of the same name keeps the newer one.
        newer = fake_sink("up", empty, connected=False, dropped={})
        collector.track(newer)
        collector.untrack(up)
        assert samples(collector)[("plantd_sink_backlog_samples", (("sink", "up"),))] == 0
        collector.untrack(newer)
        collector.untrack(down)
        assert not samples(collector)
    finally:
        queue.close()
        empty.close()


def test_a_sink_that_cannot_be_read_is_left_out_of_the_scrape(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path / "q.db", max_bytes=10**6, max_age=3600)
    try:
        collector = SinkCollector()
        collector.track(fake_sink("ok", queue, connected=True, dropped={}))
        collector.track(SimpleNamespace(name="broken"))  # type: ignore[arg-type]
        names = {labels for _, labels in samples(collector)}
        assert (("sink", "ok"),) in names
        assert all(("sink", "broken") not in labels for labels in names)
    finally:
        queue.close()


def test_the_process_collector_is_registered_and_names_the_catalogues_metrics() -> None:
    described = {family.name for family in COLLECTOR.describe()}
    assert described == {
        "plantd_sink_backlog_samples",
        "plantd_sink_oldest_sample_age_seconds",
        "plantd_sink_delivered",
        "plantd_sink_dropped",
        "plantd_sink_connected",
        "plantd_sink_queue_bytes",
        "plantd_sink_backlog_events",
        "plantd_sink_events_delivered",
        "plantd_sink_events_dropped",
        "plantd_sink_events_missed",
    }
    assert set(DROP_REASONS) >= {"full", "expired"}
    # Collecting the process registry includes the sink families (no error with no sink).
    assert "plantd_sink_backlog_samples" in {family.name for family in REGISTRY.collect()}
