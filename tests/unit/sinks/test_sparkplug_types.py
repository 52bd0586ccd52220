"""Rule S7 (plantd/sinks/_sparkplug.py): a metric's datatype is fixed by its first value and
never changes — a bad sample (no value) is the same metric, null, with its ``Quality``
property; it never makes the device be born again (issue 12, item 9)."""

from __future__ import annotations

from pathlib import Path

from plantd.bus import Quality, Sample
from plantd.sinks import DiskQueue
from plantd.sinks.mqtt._sparkplug import DataType, EdgeNode, Metric, Payload, decode_payload

GOOD = {"flow": Sample(1.5, 10.0, seq=1)}


def decoded(out: list[tuple[str, bytes]]) -> list[tuple[str, Payload]]:
    return [(topic.split("/", 2)[2], decode_payload(raw)) for topic, raw in out]


def only_metric(out: list[tuple[str, bytes]]) -> tuple[str, Metric]:
    ((kind, payload),) = decoded(out)
    (metric,) = payload.metrics
    return kind, metric


def test_a_bad_sample_keeps_the_datatype_and_carries_its_quality() -> None:
    node = EdgeNode("g", "edge", bdseq=0)
    node.birth(1, {"pump1": dict(GOOD)})
    bad = Sample(None, 11.0, Quality.BAD, seq=2)
    kind, metric = only_metric(node.data(2, [("pump1", "flow", bad, False)], {}))
    assert kind == "DDATA/edge/pump1"  # no DBIRTH: nothing about the metric changed
    assert (metric.datatype, metric.value, metric.properties) == (
        DataType.DOUBLE,
        None,
        {"Quality": 0},
    )
    kind, metric = only_metric(
        node.data(3, [("pump1", "flow", Sample(2.5, 12.0, seq=3), False)], {})
    )
    assert kind == "DDATA/edge/pump1"
    assert (metric.datatype, metric.value, metric.properties) == (DataType.DOUBLE, 2.5, {})


def test_a_rebirth_announces_a_bad_metric_with_its_own_datatype() -> None:
    first = EdgeNode("g", "edge", bdseq=0)
    first.birth(1, {"pump1": dict(GOOD)})
    # The next session (a reconnect, or a restart that read the types from the queue file).
    node = EdgeNode("g", "edge", bdseq=1, types=dict(first.types))
    born = decoded(node.birth(2, {"pump1": {"flow": Sample(None, 11.0, Quality.BAD, seq=2)}}))
    assert [kind for kind, _ in born] == ["NBIRTH/edge", "DBIRTH/edge/pump1"]
    (metric,) = born[1][1].metrics
    assert (metric.name, metric.datatype, metric.value) == ("flow", DataType.DOUBLE, None)
    assert metric.properties == {"Quality": 0}


def test_values_are_sent_as_the_born_type_or_as_bad_nulls() -> None:
    node = EdgeNode("g", "edge", bdseq=0)
    node.birth(1, {"pump1": {"flow": Sample(1.5, 1.0), "count": Sample(7, 1.0)}})
    out = node.data(
        2,
        [
            ("pump1", "flow", Sample(3, 2.0, seq=2), False),  # an int for a Double
            ("pump1", "count", Sample(8.0, 2.0, seq=2), False),  # an integral float for Int64
            ("pump1", "flow", Sample("n/a", 3.0, Quality.UNCERTAIN, seq=3), False),
        ],
        {},
    )
    ((kind, payload),) = decoded(out)
    assert kind == "DDATA/edge/pump1"
    assert [(m.datatype, m.value, m.properties) for m in payload.metrics] == [
        (DataType.DOUBLE, 3.0, {}),
        (DataType.INT64, 8, {}),
        (DataType.DOUBLE, None, {"Quality": 0}),  # text cannot be a Double: null and bad
    ]
    assert node.mismatched == 1


def test_a_point_without_a_value_yet_is_born_with_its_first() -> None:
    node = EdgeNode("g", "edge", bdseq=0)
    unknown = {"flow": Sample(None, 1.0, Quality.BAD, seq=1)}
    born = decoded(node.birth(1, {"pump1": unknown}))
    assert born[1][1].metrics == []  # no datatype to announce yet
    assert node.data(2, [("pump1", "flow", unknown["flow"], False)], {"pump1": unknown}) == []
    assert node.untyped == 1
    out = decoded(node.data(3, [("pump1", "flow", Sample(4.5, 3.0, seq=2), False)], {}))
    assert [kind for kind, _ in out] == ["DBIRTH/edge/pump1", "DDATA/edge/pump1"]
    assert [(m.name, m.datatype) for m in out[0][1].metrics] == [("flow", DataType.DOUBLE)]
    assert node.fixed == [("pump1", "flow", DataType.DOUBLE)]


async def test_the_queue_file_keeps_the_datatypes(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path / "q.db", max_bytes=10**6, max_age=3600)
    try:
        await queue.save_metric_types([("pump1", "flow", DataType.DOUBLE)])
        await queue.save_metric_types([("pump1", "flow", DataType.STRING)])  # never changes
    finally:
        queue.close()
    reopened = DiskQueue(tmp_path / "q.db", max_bytes=10**6, max_age=3600)
    try:
        assert reopened.metric_types() == {("pump1", "flow"): DataType.DOUBLE}
    finally:
        reopened.close()
