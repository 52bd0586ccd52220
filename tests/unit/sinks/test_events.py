"""Event records in the sinks (issue 18): the ``events`` key, the queue's events table (its
migration, limits, counters, cursors across a reopen), the intake rules E1–E3, and their
encodings: plain MQTT topic and payload, Sparkplug node metrics (rule S8, checked against
bytes computed by hand), PostgreSQL rows."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from plantd.bus import Sample, decode_record, encode_record, encode_sample
from plantd.config import PlantdConfig
from plantd.errors import ConfigError
from plantd.sinks import DiskQueue, Intake, OutgoingEvent, event_json, load_sink
from plantd.sinks._intake import IntakeState
from plantd.sinks.mqtt._sparkplug import (
    DataType,
    EdgeNode,
    NodeValue,
    Payload,
    decode_payload,
    encode_payload,
)
from plantd.sinks.mqtt._upstream import alarm_values, render_event_topic
from plantd.sinks.postgres._config import PostgresSinkConfig
from plantd.sinks.postgres._upstream import PostgresUpstream

TOPIC = "event.alarm.tank-high"


def record(seq: int, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "alarm": "tank-high", "point": "field.level", "type": "high", "priority": "high",
        "message": "Tank level high", "state": "unacknowledged", "active": True,
        "acknowledged": False, "shelved": False, "shelved_until": None, "suppressed": False,
        "transition": "raised", "value": 4.7, "limit": 4.5, "time": 1000.0 + seq,
        "sample_time": 999.0, "by": None, "comment": "", "seq": seq,
    }  # fmt: skip
    fields.update(extra)
    return fields


def write_sink(tmp_path: Path, text: str) -> PlantdConfig:
    (tmp_path / "sinks.d").mkdir(exist_ok=True)
    (tmp_path / "sinks.d" / "up.yaml").write_text(text)
    return PlantdConfig(source_dir=tmp_path)


# -- config ----------------------------------------------------------------------------------


def test_events_default_to_alarms_and_can_be_turned_off(tmp_path: Path) -> None:
    assert load_sink(write_sink(tmp_path, "type: mqtt\n"), "up").events == ("event.alarm.",)
    assert load_sink(write_sink(tmp_path, "type: mqtt\nevents: []\n"), "up").events == ()
    sink = load_sink(write_sink(tmp_path, "type: postgres\nevents: [event.]\n"), "up")
    assert sink.events == ("event.",)
    assert isinstance(sink, PostgresSinkConfig)
    assert sink.postgres.events_table == "plantd_events"


def test_bad_events_entries_are_named_with_their_line(tmp_path: Path) -> None:
    config = write_sink(tmp_path, "type: mqtt\nmqtt: {event_topic: 'x/{alarm}'}\n")
    with pytest.raises(ConfigError, match=r"up.yaml:2: mqtt.event_topic: unknown field \{alarm\}"):
        load_sink(config, "up")
    config = write_sink(tmp_path, "type: mqtt\nevents:\n  - data.pump1\n  - event.alarm.*\n")
    with pytest.raises(ConfigError) as caught:
        load_sink(config, "up")
    problems = "\n".join(caught.value.problems)
    assert "up.yaml:3: events[0]: events are records on event.* topics, got 'data.pump1'" in (
        problems
    )
    assert "up.yaml:4: events[1]: an events entry is a literal bus prefix" in problems
    config = write_sink(tmp_path, "type: postgres\npostgres: {events_table: plantd_samples}\n")
    with pytest.raises(ConfigError, match="events_table: must differ from table"):
        load_sink(config, "up")


# -- the queue -------------------------------------------------------------------------------


def events_intake(*seqs: int) -> Intake:
    intake = Intake()
    for seq in seqs:
        payload = encode_record(record(seq))
        intake.events.append((TOPIC, payload))
        intake.event_cursors[TOPIC] = (seq, payload)
    return intake


async def test_events_are_queued_delivered_and_counted_across_a_reopen(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path / "q.db", max_bytes=10**6, max_age=3600)
    try:
        queue.commit_now(events_intake(1, 2, 3))
        assert (queue.events, queue.length, queue.counters["events_taken"]) == (3, 0, 3)
        first = await queue.peek_events(0, 2)
        assert [decode_record(e.payload).fields["seq"] for e in first] == [1, 2]
        assert await queue.ack([], events=first) == 0  # no samples acknowledged
        assert (queue.events, queue.counters["events_delivered"]) == (1, 2)
    finally:
        queue.close()
    queue = DiskQueue(tmp_path / "q.db", max_bytes=10**6, max_age=3600)
    try:
        assert (queue.events, queue.counters["events_delivered"]) == (1, 2)
        assert queue.last_event_id == 3
        (left,) = await queue.peek_events(0, 10)
        assert (left.id, left.topic) == (3, TOPIC)
        seq, payload = queue.event_cursors()[TOPIC]
        assert (seq, decode_record(payload).fields["seq"]) == (3, 3)
        assert queue.bytes == len(TOPIC) + len(left.payload) + 24
    finally:
        queue.close()


def test_a_queue_file_from_before_events_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    queue = DiskQueue(path, max_bytes=10**6, max_age=3600)
    sample = Sample(1.0, 1.0, seq=1, epoch=1)
    old = Intake(entries=[("data.m.p", encode_sample(sample))])
    queue.commit_now(old)
    queue.close()
    # Back to the schema of 0003: as a queue file written before events were.
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE events")
        conn.execute("DROP TABLE event_cursors")
        conn.execute("DELETE FROM counters WHERE name LIKE 'events_%'")
        conn.execute("DELETE FROM _sqlite_migrations WHERE name IN ('0004_events', "
                     "'0005_event_repair')")  # fmt: skip
        conn.execute("DROP TABLE event_gaps")
    queue = DiskQueue(path, max_bytes=10**6, max_age=3600)
    try:
        assert (queue.length, queue.events, queue.counters["taken"]) == (1, 0, 1)
        queue.commit_now(events_intake(1))
        assert (queue.events, queue.counters["events_taken"]) == (1, 1)
    finally:
        queue.close()


async def test_the_full_queue_drops_samples_before_events(tmp_path: Path) -> None:
    event_row = len(TOPIC) + len(encode_record(record(1))) + 24
    now = [100.0]
    queue = DiskQueue(
        tmp_path / "q.db", max_bytes=3 * event_row, max_age=60,
        clock=lambda: now[0],
    )  # fmt: skip
    try:
        samples = Intake(entries=[("data.m.p", encode_sample(Sample(1.0, 1.0, seq=1, epoch=1)))])
        queue.commit_now(samples)
        queue.commit_now(events_intake(1, 2))
        assert (queue.length, queue.events) == (1, 2)
        queue.commit_now(events_intake(3))  # over: the sample goes first
        assert (queue.length, queue.events, queue.counters["dropped"]) == (0, 3, 1)
        assert queue.counters["events_dropped"] == 0
        queue.commit_now(events_intake(4))  # no sample left: the oldest event goes
        assert (queue.events, queue.counters["events_dropped"]) == (3, 1)
        assert [decode_record(e.payload).fields["seq"] for e in await queue.peek_events(0, 9)] == [
            2, 3, 4,
        ]  # fmt: skip
        now[0] += 61
        assert await queue.trim() == 0  # no sample
        assert (queue.trimmed_events, queue.events, queue.counters["events_dropped"]) == (3, 0, 4)
        assert queue.bytes == 0
    finally:
        queue.close()


# -- the intake ------------------------------------------------------------------------------


def test_intake_event_rules() -> None:
    state = IntakeState({}, [], max_pending=100)
    assert state.offer_event(TOPIC, record(1), 0) is None  # E2, first
    assert state.offer_event(TOPIC, record(2), 0) is None
    gap = state.offer_event(TOPIC, record(5), 50.0)
    assert gap is not None
    assert (gap.last, gap.seq, gap.since, gap.until, gap.found) == (2, 5, 1002.0, 1005.0, 50.0)
    assert gap.known_missing() == {3, 4}
    assert state.offer_event(TOPIC, record(1), 0) is None  # numbering restarted: taken
    assert state.offer_event("event.control.loop1", {"name": "loop1"}, 0) is None  # E1
    assert state.offer_event("event.control.loop1", {"name": "loop1"}, 0) is None
    state.close_event_gap(gap, [record(3)], lost=1)  # E4
    state.close_event_gap(gap, [], lost=0)  # closing twice does nothing
    intake = state.take()
    assert [json.loads(p[2:])["seq"] for t, p in intake.events if t == TOPIC] == [1, 2, 5, 1]
    assert len(intake.events) == 6
    assert [json.loads(p[2:])["seq"] for _, p in intake.repaired_events] == [3]
    assert [g.key for g in intake.new_event_gaps] == [gap.key]
    assert [(r, lost) for _, r, lost in intake.closed_event_gaps] == [(1, 1)]
    assert intake.events_missed == 1
    assert intake.event_cursors[TOPIC][0] == 1  # a found record never moves the cursor
    assert intake.event_cursors["event.control.loop1"][0] is None
    assert state.events_received == 6
    assert not state.event_gaps


async def test_event_gaps_and_repaired_records_survive_a_reopen(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path / "q.db", max_bytes=10**6, max_age=3600)
    state = IntakeState({}, [], event_cursors=queue.event_cursors())
    state.offer_event(TOPIC, record(1), 0)
    state.offer_event(TOPIC, record(4), 10.0)
    queue.commit_now(state.take())
    queue.close()
    queue = DiskQueue(tmp_path / "q.db", max_bytes=10**6, max_age=3600)
    try:
        state = IntakeState({}, [], event_cursors=queue.event_cursors(),
                            event_gaps=queue.event_gaps())  # fmt: skip
        (gap,) = state.event_gaps.values()
        assert (gap.known_missing(), gap.found) == ({2, 3}, 10.0)
        state.close_event_gap(gap, [record(2)], lost=1)
        queue.commit_now(state.take())
        assert queue.event_gaps() == []
        counters = queue.counters
        assert (counters["events_taken"], counters["events_repaired"]) == (2, 1)
        assert counters["events_missed"] == 1
        entries = await queue.peek_events(0, 10)
        assert [(decode_record(e.payload).fields["seq"], e.historical) for e in entries] == [
            (1, False), (4, False), (2, True),
        ]  # fmt: skip
    finally:
        queue.close()


def test_pending_events_are_bounded_while_commits_fail() -> None:
    state = IntakeState({}, [], max_pending=100)
    for seq in range(1, 151):
        state.offer_event(TOPIC, record(seq), 0)
    failed = state.take()
    state.offer_event(TOPIC, record(151), 0)
    state.restore(failed)  # E3: at most max_pending kept, the oldest dropped
    pending = state.take()
    assert len(pending.events) == 100
    assert json.loads(pending.events[0][1][2:])["seq"] == 52
    assert json.loads(pending.events[-1][1][2:])["seq"] == 151
    assert pending.events_dropped == 51


# -- encodings -------------------------------------------------------------------------------


def test_plain_mqtt_topic_and_strict_json() -> None:
    assert render_event_topic("plantd/events/{kind}/{subject}", "up", TOPIC) == (
        "plantd/events/alarm/tank-high"
    )
    assert render_event_topic("site/{name}/{topic}", "up", TOPIC) == f"site/up/{TOPIC}"
    text = event_json(record(1, value=float("nan"), limit=[float("inf")]))
    decoded = json.loads(text)  # strict JSON: no NaN token
    assert (decoded["value"], decoded["limit"], decoded["seq"]) == ("nan", ["inf"], 1)


def test_alarm_node_metrics() -> None:
    values = alarm_values(TOPIC, record(7, value="open"), 0, historical=True)
    by_name = {v.name: (v.datatype, v.value) for v in values}
    assert by_name["Alarms/tank-high/State"] == (DataType.STRING, "unacknowledged")
    assert by_name["Alarms/tank-high/Active"] == (DataType.BOOLEAN, True)
    assert by_name["Alarms/tank-high/Value"] == (DataType.DOUBLE, None)  # not a number: null
    assert by_name["Alarms/tank-high/Limit"] == (DataType.DOUBLE, 4.5)
    assert by_name["Alarms/tank-high/Seq"] == (DataType.INT64, 7)
    assert {v.timestamp for v in values} == {1_007_000}
    assert all(v.historical for v in values)
    assert alarm_values("event.control.loop1", {"name": "loop1"}, 0) == []


def test_an_ndata_alarm_metric_by_hand() -> None:
    """One Boolean node metric by alias, as the Tahu Metric message lays it out."""
    node = EdgeNode("g", "e", 1)
    node.birth(0, {}, [NodeValue("Alarms/a/Active", DataType.BOOLEAN, False, 500)])
    ((topic, data),) = node.node_data(
        2000, [NodeValue("Alarms/a/Active", DataType.BOOLEAN, True, 1000)], {}
    )
    assert topic == "spBv1.0/g/NDATA/e"
    metric = bytes.fromhex(
        "1001"  # 2 alias 1
        "18e807"  # 3 timestamp 1000
        "200b"  # 4 datatype 11 (Boolean)
        "7001"  # 14 boolean_value true
    )
    assert data == (
        bytes.fromhex("08d00f")  # 1 timestamp 2000
        + b"\x12" + bytes([len(metric)]) + metric  # 2 metrics
        + bytes.fromhex("1801")  # 3 seq 1
    )  # fmt: skip


def test_a_new_alarm_makes_the_node_be_born_again() -> None:
    node = EdgeNode("g", "e", 3)
    devices = {"pump1": {"flow": Sample(1.5, 1.0, seq=1, epoch=1)}}
    first = node.birth(0, devices)
    assert [t for t, _ in first] == ["spBv1.0/g/NBIRTH/e", "spBv1.0/g/DBIRTH/e/pump1"]
    out = node.node_data(5000, alarm_values(TOPIC, record(1), 0), devices)
    kinds = [t.split("/")[2] for t, _ in out]
    assert kinds == ["NBIRTH", "DBIRTH", "NDATA"]  # S8: reborn before the new metric
    nbirth, ndata = decode_payload(out[0][1]), decode_payload(out[2][1])
    assert nbirth.seq == 0
    born = {m.name: m for m in nbirth.metrics}
    assert born["bdSeq"].value == 3
    assert born["Alarms/tank-high/State"].value == "unacknowledged"
    assert born["Alarms/tank-high/Priority"].datatype == DataType.STRING
    aliases = [m.alias for m in nbirth.metrics if m.name and m.name.startswith("Alarms/")]
    assert len(set(aliases)) == len(aliases) == 11
    dbirth = decode_payload(out[1][1])
    assert not set(aliases) & {m.alias for m in dbirth.metrics}  # unique across the node
    assert ndata.seq == 2
    assert all(m.name is None and m.alias in aliases for m in ndata.metrics)
    # The same alarm again: NDATA only, its newest values remembered for the next birth.
    again = node.node_data(6000, alarm_values(TOPIC, record(2, state="acknowledged"), 0), devices)
    assert [t.split("/")[2] for t, _ in again] == ["NDATA"]
    reborn = {m.name: m.value for m in decode_payload(node.birth(7000, devices)[0][1]).metrics}
    assert reborn["Alarms/tank-high/State"] == "acknowledged"
    assert reborn["Alarms/tank-high/Seq"] == 2
    # A historical value is sent flagged, and does not become the value a birth announces.
    old = alarm_values(TOPIC, record(1, state="returned"), 0, historical=True)
    (only,) = node.node_data(8000, old, devices)
    assert all(m.is_historical for m in decode_payload(only[1]).metrics)
    reborn = {m.name: m.value for m in decode_payload(node.birth(9000, devices)[0][1]).metrics}
    assert reborn["Alarms/tank-high/State"] == "acknowledged"
    assert encode_payload(Payload()) == b""


def test_postgres_event_rows_are_idempotent() -> None:
    sink = PostgresSinkConfig(type="postgres", name="up")
    upstream = PostgresUpstream(sink)
    row = upstream._event_row(OutgoingEvent(TOPIC, record(3), False, 50.0))
    shuffled = dict(reversed(list(record(3).items())))
    again = upstream._event_row(OutgoingEvent(TOPIC, shuffled, True, 99.0))
    # The same record is the same row (the digest of its canonical form), wherever it comes
    # from; only the JSON text keeps the order the record had.
    assert row[:5] + row[6:] == again[:5] + again[6:]
    assert json.loads(row[5]) == json.loads(again[5])
    stamp, topic, kind, subject, seq, text, source, digest = row
    assert (stamp.timestamp(), topic, kind, subject, seq, source) == (
        1003.0, TOPIC, "alarm", "tank-high", 3, "up",
    )  # fmt: skip
    assert json.loads(text) == record(3)
    other = upstream._event_row(OutgoingEvent(TOPIC, record(3, comment="x"), False, 50.0))
    assert other[-1] != digest
    untimed = upstream._event_row(OutgoingEvent("event.control.l", {"name": "l"}, False, 77.0))
    assert (untimed[0].timestamp(), untimed[3], untimed[4]) == (77.0, "l", None)
