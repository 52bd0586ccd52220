"""Rule I5 (plantd/sinks/_intake.py): while commits fail, the intake keeps at most
``max_pending`` samples, drops the oldest and counts them; the next commit that succeeds
writes the count to the persistent ``dropped`` counter."""

from __future__ import annotations

from pathlib import Path

from plantd.bus import Sample
from plantd.sinks import DiskQueue
from plantd.sinks._intake import IntakeState


def offer_poll(state: IntakeState, seq: int, points: int = 10) -> None:
    for point in range(points):
        state.offer(f"data.m.p{point}", Sample(float(seq), 100.0 + seq, seq=seq, epoch=1), 0.0)


def test_failed_commits_keep_a_bounded_intake_and_count_the_drops(tmp_path: Path) -> None:
    state = IntakeState({}, [], batch_size=10, max_pending=100)
    dropped = 0
    for seq in range(1, 51):  # 50 polls of 10 points, every commit failing
        offer_poll(state, seq)
        dropped += state.restore(state.take())
        assert state.pending_samples <= 100
    assert dropped == 400
    assert state.pending.dropped == 400
    # The newest samples are those kept, and every point's cursor is the last seen.
    assert state.cursors["data.m.p0"][0].seq == 50
    queue = DiskQueue(tmp_path / "q.db", max_bytes=10**6, max_age=3600)
    try:
        queue.commit_now(state.take())
        assert (queue.length, queue.counters["taken"], queue.counters["dropped"]) == (100, 100, 400)
        assert queue.cursors()["data.m.p9"][0].seq == 50
    finally:
        queue.close()
    reopened = DiskQueue(tmp_path / "q.db", max_bytes=10**6, max_age=3600)
    try:
        assert reopened.counters["dropped"] == 400
    finally:
        reopened.close()


def test_within_the_bound_nothing_is_dropped() -> None:
    state = IntakeState({}, [], batch_size=10, max_pending=100)
    for seq in range(1, 11):
        offer_poll(state, seq)
        assert state.restore(state.take()) == 0
    assert (state.pending_samples, state.pending.dropped) == (100, 0)
