"""Samples queued as one batch per module per commit: what the intake writes, how the queue
counts, limits and hands them out, and the MQTT sink's ``batching: module`` payloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlite_utils.migrations import Migrations

from plantd._sqlite import connect, migrate
from plantd.bus import Quality, Sample, encode_sample, is_batch
from plantd.config import PlantdConfig
from plantd.errors import ConfigError
from plantd.sinks import DiskQueue, Intake, MqttSinkConfig, load_sink
from plantd.sinks._intake import IntakeState
from plantd.sinks._queue import _initial, entry_count, entry_samples
from plantd.sinks._upstream import Outgoing
from plantd.sinks.mqtt._upstream import MqttUpstream, render_payload


def sample(seq: int, value: float | str | None = None, epoch: int = 7) -> Sample:
    return Sample(float(seq) if value is None else value, 1000.0 + seq, Quality.GOOD, seq, epoch)


def polls(state: IntakeState, modules: int, points: int, rounds: int) -> None:
    for seq in range(1, rounds + 1):
        for m in range(modules):
            for p in range(points):
                state.offer(f"data.m{m}.p{p}", sample(seq), 0.0)


def test_the_intake_queues_a_batch_per_module_and_epoch_within_batch_size() -> None:
    state = IntakeState({}, [], batch_size=4)
    polls(state, modules=2, points=3, rounds=2)  # 6 samples per module
    state.offer("data.m0.p0", sample(1, epoch=8), 0.0)  # the publisher restarted
    state.offer("data.single", sample(1), 0.0)  # no point: queued as it is
    state.offer("data.m1." + "x" * 300, sample(1), 0.0)  # a name too long for a batch
    assert state.pending_samples == 15
    intake = state.take()
    assert state.pending_samples == 0
    shapes = [(topic, is_batch(payload), entry_count(payload)) for topic, payload in intake.entries]
    assert shapes == [
        ("data.single", False, 1),
        ("data.m1." + "x" * 300, False, 1),
        ("data.m0", True, 4),
        ("data.m0", True, 2),
        ("data.m1", True, 4),
        ("data.m1", True, 2),
        ("data.m0", True, 1),
    ]
    unpacked = [item for topic, payload in intake.entries for item in entry_samples(topic, payload)]
    assert len(unpacked) == 15
    m0 = [(s.seq, s.epoch) for topic, s in unpacked if topic == "data.m0.p0"]
    assert m0 == [(1, 7), (2, 7), (1, 8)]
    assert ("data.m0.p2", sample(2)) in unpacked
    assert len(intake.cursors) == 2 * 3 + 2


def test_a_failed_commit_is_put_back_ahead_of_what_came_since() -> None:
    state = IntakeState({}, [], batch_size=100)
    polls(state, modules=1, points=2, rounds=1)
    failed = state.take()
    polls(state, modules=1, points=2, rounds=0)
    state.offer("data.m0.p0", sample(2), 0.0)
    state.restore(failed)
    assert state.pending_samples == 3
    intake = state.take()
    seqs = [s.seq for t, p in intake.entries for _, s in entry_samples(t, p)]
    assert seqs == [1, 1, 2]


async def test_the_queue_counts_samples_and_hands_out_whole_entries(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path / "q.db", max_bytes=10**6, max_age=3600)
    try:
        state = IntakeState({}, [], batch_size=300)
        polls(state, modules=2, points=500, rounds=1)  # rows of 300, 200, 300, 200
        await queue.commit(state.take())
        assert (queue.length, queue.counters["taken"]) == (1000, 1000)
        assert [e.count for e in await queue.peek(0, 500)] == [300, 200]
        assert [e.count for e in await queue.peek(0, 499)] == [300]
        assert [e.count for e in await queue.peek(0, 1)] == [300]  # the first, whatever its size
        first = await queue.peek(0, 600)
        assert await queue.ack(first) == 500
        assert await queue.ack(first) == 0  # already gone
        assert (queue.length, queue.counters["delivered"]) == (500, 500)
    finally:
        queue.close()
    again = DiskQueue(tmp_path / "q.db", max_bytes=10**6, max_age=3600)
    try:
        assert again.length == 500
        assert [e.count for e in await again.peek(0, 10_000)] == [300, 200]
    finally:
        again.close()


def test_a_full_queue_drops_whole_batches_and_counts_their_samples(tmp_path: Path) -> None:
    state = IntakeState({}, [], batch_size=100)
    polls(state, modules=1, points=100, rounds=1)
    size = sum(len(t) + len(p) + 24 for t, p in state.take().entries)
    queue = DiskQueue(tmp_path / "q.db", max_bytes=int(size * 2.5), max_age=3600)
    try:
        for seq in range(2, 6):  # (seq 1 is taken already: a duplicate now)
            for p in range(100):
                state.offer(f"data.m0.p{p}", sample(seq), 0.0)
            queue.commit_now(state.take())
        assert queue.counters["dropped"] == 200  # two whole batches of 100
        assert queue.length == 200
        assert queue.bytes <= size * 2.5
    finally:
        queue.close()


def test_a_queue_file_from_before_batches_is_read_as_it_was(tmp_path: Path) -> None:
    """A queue file an older sink left, with a row per sample (migration 0001 only)."""
    path = tmp_path / "q.db"
    old = Migrations("plantd.sinks.queue")
    old(name="0001_initial")(_initial)
    conn = connect(path)
    migrate(conn, old)
    conn.executemany(
        "INSERT INTO entries (topic, payload, queued) VALUES (?, ?, 0)",
        [("data.m.p", encode_sample(sample(n))) for n in (1, 2, 3)],
    )
    conn.close()
    queue = DiskQueue(path, max_bytes=10**6, max_age=3600)
    try:
        assert queue.length == 3
        entries = queue._db.call(lambda c: c.execute("SELECT count FROM entries").fetchall())
        assert entries == [(1,), (1,), (1,)]
    finally:
        queue.close()


def test_module_payloads(tmp_path: Path) -> None:
    sink = load_sink(write_sink(tmp_path, "type: mqtt\nmqtt: {batching: module}\n"), "up")
    assert isinstance(sink, MqttSinkConfig)
    assert sink.mqtt.topic_template == "plantd/{module}"
    upstream = MqttUpstream(sink, None, dict, None)  # type: ignore[arg-type]
    batch = [
        Outgoing("data.pump1.flow", sample(1), False),
        Outgoing("data.tank.level", sample(1, "high"), True),
        Outgoing("data.pump1.flow", sample(2, float("nan")), False),
    ]
    messages = upstream._module_messages(batch)
    assert [(topic, qos, retain) for topic, _, qos, retain in messages] == [
        ("plantd/pump1", 1, False),
        ("plantd/tank", 1, False),
    ]
    pump = json.loads(messages[0][1])
    assert pump == [
        json.loads(render_payload(None, "up", "data.pump1.flow", sample(1))),
        json.loads(render_payload(None, "up", "data.pump1.flow", sample(2, float("nan")))),
    ]
    assert pump[1] == {"point": "pump1.flow", "value": "nan", "timestamp": 1002.0,
                       "quality": "good", "seq": 2, "epoch": 7}  # fmt: skip
    assert json.loads(messages[1][1])[0]["value"] == "high"


@pytest.mark.parametrize(
    ("mqtt", "problem"),
    [
        ("{batching: module, topic: 'x/{module}/{point}'}", "mqtt.topic: with batching: module"),
        ("{batching: module, payload: '{value}'}", "mqtt.payload: a payload template is for"),
        ("{batching: module, format: sparkplug}", "mqtt.batching: applies to format: json"),
        ("{batching: sample}", "mqtt.batching: expected one of 'none', 'module'"),
    ],
)
def test_batching_settings_are_checked(tmp_path: Path, mqtt: str, problem: str) -> None:
    config = write_sink(tmp_path, f"type: mqtt\nmqtt: {mqtt}\n")
    with pytest.raises(ConfigError) as caught:
        load_sink(config, "up")
    assert problem in "\n".join(caught.value.problems)


def test_the_default_topic_follows_the_batching(tmp_path: Path) -> None:
    sink = load_sink(write_sink(tmp_path, "type: mqtt\n"), "up")
    assert isinstance(sink, MqttSinkConfig)
    assert (sink.mqtt.batching, sink.mqtt.topic_template) == ("none", "plantd/{module}/{point}")


def write_sink(tmp_path: Path, text: str) -> PlantdConfig:
    (tmp_path / "sinks.d").mkdir(exist_ok=True)
    (tmp_path / "sinks.d" / "up.yaml").write_text(text)
    return PlantdConfig(source_dir=tmp_path)


def test_an_intake_made_by_hand_is_queued_as_it_is(tmp_path: Path) -> None:
    intake = Intake()
    intake.entries = [("data.m.p", encode_sample(sample(1)))]
    queue = DiskQueue(tmp_path / "q.db", max_bytes=10**6, max_age=3600)
    try:
        queue.commit_now(intake)
        assert (queue.length, queue.counters["taken"]) == (1, 1)
    finally:
        queue.close()
