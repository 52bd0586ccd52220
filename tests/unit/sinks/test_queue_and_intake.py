"""The disk queue (limits, counters and cursors across a reopen) and the intake rules I1–I4."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantd.bus import Sample, encode_sample
from plantd.config import PlantdConfig
from plantd.errors import ConfigError
from plantd.sinks import DiskQueue, Intake, load_sink
from plantd.sinks._intake import IntakeState
from plantd.sinks._queue import entry_count
from plantd.sinks.mqtt._upstream import render_payload, render_topic

TOPIC = "data.m.p"


def sample(seq: int, epoch: int = 1, ts: float | None = None) -> Sample:
    return Sample(float(seq), ts if ts is not None else 100.0 + seq, seq=seq, epoch=epoch)


def intake_of(*seqs: int) -> Intake:
    intake = Intake()
    for seq in seqs:
        payload = encode_sample(sample(seq))
        intake.entries.append((TOPIC, payload))
        intake.cursors[TOPIC] = (sample(seq), payload)
    return intake


def test_full_queue_drops_oldest_and_counts(tmp_path: Path) -> None:
    entry_bytes = len(TOPIC) + len(encode_sample(sample(1))) + 24
    queue = DiskQueue(tmp_path / "q.db", max_bytes=entry_bytes * 10, max_age=3600)
    try:
        queue.commit_now(intake_of(*range(1, 9)))
        assert (queue.length, queue.counters["dropped"]) == (8, 0)
        dropped = queue.commit_now(intake_of(*range(9, 14)))
        assert dropped == 3
        assert (queue.length, queue.bytes) == (10, entry_bytes * 10)
        assert queue.counters["dropped"] == 3
        assert queue.counters["taken"] == 13
    finally:
        queue.close()
    again = DiskQueue(tmp_path / "q.db", max_bytes=entry_bytes * 10, max_age=3600)
    try:
        assert (again.length, again.counters["dropped"], again.counters["taken"]) == (10, 3, 13)
        assert again.cursors()[TOPIC][0].seq == 13
        assert again.next_counter("bdseq") == 1
    finally:
        again.close()


async def test_peek_ack_and_age(tmp_path: Path) -> None:
    now = [1000.0]
    queue = DiskQueue(tmp_path / "q.db", max_bytes=10**6, max_age=60, clock=lambda: now[0])
    try:
        await queue.commit(intake_of(1, 2, 3))
        now[0] += 61
        await queue.commit(intake_of(4))
        first = await queue.peek(0, 2)
        assert [e.id for e in first] == [1, 2]
        assert await queue.ack(first) == 2
        # ids are never reused, even once the queue ran empty
        assert await queue.trim() == 1
        assert [e.id for e in await queue.peek(0, 10)] == [4]
        assert await queue.ack(await queue.peek(0, 10)) == 1
        await queue.commit(intake_of(5))
        assert [e.id for e in await queue.peek(4, 10)] == [5]
        assert queue.counters["delivered"] == 3
        assert queue.counters["dropped"] == 1
    finally:
        queue.close()


def test_intake_rules() -> None:
    state = IntakeState({}, [])
    assert state.offer(TOPIC, sample(1), 0) is None  # I1
    assert state.offer(TOPIC, sample(2), 0) is None
    assert state.offer(TOPIC, sample(2), 0) is None  # I2 duplicate
    gap = state.offer(TOPIC, sample(6), 0)  # I2 gap
    assert gap is not None
    assert gap.known_missing() == {3, 4, 5}
    assert [gap.wants(sample(n)) for n in (2, 3, 5, 6)] == [False, True, True, False]
    restarted = state.offer(TOPIC, sample(3, epoch=2), 0)  # I3: another epoch, seq > 1
    assert restarted is not None
    assert restarted.known_missing() == {1, 2}
    assert restarted.wants(sample(7))
    assert restarted.wants(sample(1, epoch=2))
    assert not restarted.wants(sample(3, epoch=2))
    assert state.offer(TOPIC, sample(1, epoch=3), 0) is None  # I3 at seq 1: no gap
    state.close_gap(gap, [sample(3), sample(4)], lost=1)  # I4
    state.close_gap(gap, [], lost=0)  # closing twice does nothing
    intake = state.take()
    assert intake.duplicates == 1
    assert sum(entry_count(payload) for _, payload in intake.entries) == 5 + 2
    assert len(intake.entries) == 3  # a batch per (module, epoch): epochs 1, 2 and 3
    assert [g.key for g in intake.new_gaps] == [gap.key, restarted.key]
    assert [(r, lost) for _, r, lost in intake.closed_gaps] == [(2, 1)]
    assert state.cursors[TOPIC][0].epoch == 3  # found samples never move the cursor
    assert list(state.gaps) == [restarted.key]


def test_gaps_and_cursors_survive_a_reopen(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path / "q.db", max_bytes=10**6, max_age=3600)
    state = IntakeState(queue.cursors(), queue.gaps())
    state.offer(TOPIC, sample(1), 0)
    state.offer(TOPIC, sample(4), 0)
    queue.commit_now(state.take())
    queue.close()
    queue = DiskQueue(tmp_path / "q.db", max_bytes=10**6, max_age=3600)
    try:
        state = IntakeState(queue.cursors(), queue.gaps())
        (gap,) = state.gaps.values()
        assert gap.known_missing() == {2, 3}
        state.close_gap(gap, [sample(2), sample(3)], lost=0)
        queue.commit_now(state.take())
        assert queue.gaps() == []
        assert (queue.counters["taken"], queue.counters["repaired"]) == (2, 2)
    finally:
        queue.close()


def test_templates() -> None:
    assert render_topic("site/{name}/{module}/{point}", "up", "data.pump1.flow") == (
        "site/up/pump1/flow"
    )
    payload = render_payload(
        '{{"v": {value_json}, "t": {timestamp_ms}, "q": "{quality}"}}', "up", TOPIC, sample(3)
    )
    assert payload == b'{"v": 3.0, "t": 103000, "q": "good"}'
    assert render_payload(None, "up", TOPIC, sample(3)).startswith(b'{"point":"m.p","value":3.0')


def write_sink(tmp_path: Path, text: str) -> PlantdConfig:
    (tmp_path / "sinks.d").mkdir(exist_ok=True)
    (tmp_path / "sinks.d" / "up.yaml").write_text(text)
    return PlantdConfig(source_dir=tmp_path)


def test_sink_files_are_checked(tmp_path: Path) -> None:
    config = write_sink(tmp_path, "type: mqtt\nmqtt:\n  topic: 'x/{modul}'\n  qos: 1\n")
    with pytest.raises(ConfigError) as caught:
        load_sink(config, "up")
    problems = "\n".join(caught.value.problems)
    assert "up.yaml:3: mqtt.topic: unknown field {modul}" in problems
    assert "up.yaml:4: mqtt.qos: unknown key" in problems
    config = write_sink(tmp_path, "type: kafka\n")
    with pytest.raises(ConfigError, match="expected one of 'mqtt', 'postgres'"):
        load_sink(config, "up")
    config = write_sink(tmp_path, "type: postgres\npostgres: {table: Bad-Name}\n")
    with pytest.raises(ConfigError, match="lower-case SQL identifier"):
        load_sink(config, "up")
    config = write_sink(tmp_path, "type: postgres\nqueue: {drain_rate: 50}\n")
    sink = load_sink(config, "up")
    assert (sink.name, sink.queue.drain_rate, sink.queue_path(config).name) == (
        "up", 50.0, "up.queue.db",
    )  # fmt: skip
