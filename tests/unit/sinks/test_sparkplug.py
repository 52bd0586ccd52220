"""Sparkplug B payloads against bytes computed by hand from the protobuf encoding rules, and
the edge node's session rules S1–S6 (see plantd/sinks/_sparkplug.py)."""

from __future__ import annotations

import pytest

from plantd.bus import Quality, Sample
from plantd.sinks.mqtt._protobuf import ProtobufError, fields, varint
from plantd.sinks.mqtt._sparkplug import (
    DataType,
    EdgeNode,
    Metric,
    Payload,
    decode_payload,
    encode_payload,
)

DOUBLE_METRIC = bytes.fromhex(
    "0a0161"  # 1 name "a"
    "1001"  # 2 alias 1
    "18e807"  # 3 timestamp 1000
    "200a"  # 4 datatype 10 (Double)
    "690000000000 00f83f".replace(" ", "")  # 13 double_value 1.5 (wire type 1)
)


def test_varints_by_hand() -> None:
    assert varint(0) == b"\x00"
    assert varint(1) == b"\x01"
    assert varint(300) == b"\xac\x02"
    assert varint(-1) == b"\xff" * 9 + b"\x01"  # 64-bit two's complement


def test_a_double_metric_payload() -> None:
    payload = Payload(1000, [Metric("a", 1, 1000, DataType.DOUBLE, 1.5)], 0)
    expected = (
        bytes.fromhex("08e807")  # 1 timestamp 1000
        + bytes.fromhex("12") + bytes([len(DOUBLE_METRIC)]) + DOUBLE_METRIC  # 2 metrics
        + bytes.fromhex("1800")  # 3 seq 0
    )  # fmt: skip
    assert len(DOUBLE_METRIC) == 19
    assert encode_payload(payload) == expected
    assert decode_payload(expected) == payload


@pytest.mark.parametrize(
    ("datatype", "value", "tail"),
    [
        (DataType.INT64, -1, "58" + "ff" * 9 + "01"),  # 11 long_value
        (DataType.BOOLEAN, True, "7001"),  # 14 boolean_value
        (DataType.STRING, "hi", "7a026869"),  # 15 string_value
        (DataType.INT32, -2, "50feffffff0f"),  # 10 int_value, 32-bit two's complement
        (DataType.FLOAT, 0.5, "650000003f"),  # 12 float_value (wire type 5)
    ],
)
def test_values_by_type(datatype: DataType, value: object, tail: str) -> None:
    metric = Metric(alias=2, datatype=datatype, value=value)  # type: ignore[arg-type]
    head = bytes.fromhex("1002") + bytes.fromhex("20") + varint(datatype)
    encoded = encode_payload(Payload(metrics=[metric]))
    body = head + bytes.fromhex(tail)
    assert encoded == b"\x12" + bytes([len(body)]) + body
    assert decode_payload(encoded).metrics[0] == metric


def test_null_and_quality_property() -> None:
    metric = Metric(alias=3, datatype=DataType.DOUBLE, value=None, properties={"Quality": 0})
    propertyset = (
        bytes.fromhex("0a07") + b"Quality" + bytes.fromhex("1204 0803 1800".replace(" ", ""))
    )
    body = bytes.fromhex("1003 200a 3801".replace(" ", "")) + b"\x4a" + bytes([len(propertyset)])
    body += propertyset
    encoded = encode_payload(Payload(metrics=[metric]))
    assert encoded == b"\x12" + bytes([len(body)]) + body
    assert decode_payload(encoded).metrics[0] == metric


def test_malformed_payloads_are_refused() -> None:
    with pytest.raises(ProtobufError, match="runs past the end"):
        list(fields(bytes.fromhex("1205 0a01".replace(" ", ""))))
    with pytest.raises(ProtobufError, match="varint"):
        list(fields(b"\x08\x80"))


def births(node: EdgeNode) -> list[tuple[str, Payload]]:
    devices = {"pump1": {"flow": Sample(1.5, 10.0, seq=1), "on": Sample(True, 10.0, seq=1)}}
    return [(t, decode_payload(p)) for t, p in node.birth(5000, devices)]


def test_birth_then_data_by_alias_with_seq() -> None:
    node = EdgeNode("g", "edge", bdseq=258)
    topic, death = node.death(1)
    assert topic == "spBv1.0/g/NDEATH/edge"
    assert decode_payload(death).metrics[0].value == 2  # S1: bdSeq mod 256
    assert decode_payload(death).seq is None
    born = births(node)
    assert [t for t, _ in born] == ["spBv1.0/g/NBIRTH/edge", "spBv1.0/g/DBIRTH/edge/pump1"]
    assert [p.seq for _, p in born] == [0, 1]
    dbirth = born[1][1].metrics
    assert [(m.name, m.datatype, m.value) for m in dbirth] == [
        ("flow", DataType.DOUBLE, 1.5),
        ("on", DataType.BOOLEAN, True),
    ]
    aliases = {m.name: m.alias for m in dbirth}
    known = {"pump1": {"flow": Sample(1.5, 10.0)}}
    out = node.data(6000, [("pump1", "flow", Sample(2.5, 11.0, Quality.BAD, 2, 1), True)], known)
    assert len(out) == 1
    topic, raw = out[0]
    data = decode_payload(raw)
    assert topic == "spBv1.0/g/DDATA/edge/pump1"
    assert data.seq == 2
    (metric,) = data.metrics
    assert (metric.name, metric.alias, metric.value, metric.timestamp) == (
        None, aliases["flow"], 2.5, 11000,
    )  # fmt: skip
    assert metric.is_historical
    assert metric.properties == {"Quality": 0}  # S5


def test_a_new_metric_makes_its_device_born_again_and_seq_wraps() -> None:
    node = EdgeNode("g", "edge", bdseq=0)
    births(node)
    node.seq = 254
    known = {"pump1": {"flow": Sample(1.5, 10.0), "on": Sample(True, 10.0)}}
    out = node.data(1, [("pump1", "speed", Sample(3, 12.0), False)], known)
    assert [t for t, _ in out] == ["spBv1.0/g/DBIRTH/edge/pump1", "spBv1.0/g/DDATA/edge/pump1"]
    rebirth, data = (decode_payload(p) for _, p in out)
    assert [m.name for m in rebirth.metrics] == ["flow", "on", "speed"]
    assert (rebirth.seq, data.seq) == (255, 0)  # S4, and S2's wrap
    assert node.data(2, [("pump1", "speed", Sample(4, 13.0), False)], known)[0][0].endswith(
        "DDATA/edge/pump1"
    )


def test_commands() -> None:
    node = EdgeNode("g", "edge", bdseq=0)
    births(node)
    flow_alias = 1
    dcmd = encode_payload(
        Payload(1, [Metric("on", None, 1, DataType.BOOLEAN, False),
                    Metric(None, flow_alias, 1, DataType.DOUBLE, 9.5)])
    )  # fmt: skip
    commands = node.command("spBv1.0/g/DCMD/edge/pump1", dcmd)
    assert [(c.device, c.point, c.value) for c in commands] == [
        ("pump1", "on", False),
        ("pump1", "flow", 9.5),
    ]
    rebirth = encode_payload(Payload(1, [Metric("Node Control/Rebirth", None, 1, 11, True)]))
    assert [(c.device, c.point) for c in node.command("spBv1.0/g/NCMD/edge", rebirth)] == [
        (None, "Node Control/Rebirth")
    ]
    assert node.command("spBv1.0/other/DCMD/edge/pump1", dcmd) == []
