"""Sparkplug B: the payload codec and an edge node's session (sans-IO: values and a clock
reading in, ``(topic, bytes)`` out).

Mapping (docs/sinks.md, "Sparkplug B"): the sink is the **edge node** ``edge_node_id`` in
``group_id``; each plantd module is a **device**; each point a **metric** (name = point name,
with an alias announced in the DBIRTH). Session rules, in order:

  S1  Before connecting, ``bdSeq`` (0–255) is taken from a counter that survives restarts;
      the will is an NDEATH carrying that ``bdSeq``.
  S2  After each connect (and on an NCMD ``Node Control/Rebirth``), NBIRTH goes first with
      ``seq`` 0, then one DBIRTH per known device with all its metrics, aliases, datatypes and
      last values. Every later message (DBIRTH, DDATA) takes the next ``seq``, wrapping 255->0.
  S3  DDATA carries metrics by alias only, each with its own timestamp (ms) and value; a
      sample delivered from the backlog is flagged ``is_historical``.
  S4  A metric not in its device's last DBIRTH (a new point) makes the device be born again
      (a new DBIRTH) before the DDATA that holds it.
  S5  Quality other than good travels as the metric property ``Quality`` (Int32, OPC codes:
      192 good, 64 uncertain, 0 bad); no value (a bad reading) is ``is_null``.
  S7  A metric's datatype is fixed by its first value and never changes (``types``, kept in
      the queue file across restarts): a later value is sent as that type (an int as Double,
      an integral float as Int64, anything as String text); one that cannot be (text for a
      Double) is sent as null with ``Quality`` 0 (counted in ``mismatched``). A point with
      no value yet has no type: it is not born, and its null samples are not sent (counted
      in ``untyped``) until its first value.
  S6  DCMD metrics become ``write`` calls on ``org.plantd.module.<device>`` (by name, or by
      alias through the last DBIRTH); NCMD ``Node Control/Rebirth`` = true asks for S2.
  S8  The node's own metrics beyond ``bdSeq`` and the rebirth flag (the alarms, ``_alarms``)
      are declared in the NBIRTH with a name, an alias and their last value, and sent in
      NDATA by alias only. One that is not in the last NBIRTH (an alarm seen for the first
      time) makes the whole node be born again (NBIRTH, then every DBIRTH: S2) before the
      NDATA that holds it, since Sparkplug allows no new metric in NDATA.

Protobuf field numbers are those of the Eclipse Tahu ``sparkplug_b.proto``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum

from plantd.bus import Quality, Sample, SampleValue
from plantd.sinks.mqtt._protobuf import (
    I64,
    LEN,
    bool_field,
    bytes_field,
    double_field,
    fields,
    float_field,
    string_field,
    uint_field,
)

__all__ = [
    "NAMESPACE",
    "Command",
    "DataType",
    "EdgeNode",
    "Metric",
    "NodeValue",
    "Payload",
    "decode_payload",
    "encode_payload",
]

NAMESPACE = "spBv1.0"
REBIRTH = "Node Control/Rebirth"
QUALITY_CODES = {Quality.GOOD: 192, Quality.UNCERTAIN: 64, Quality.BAD: 0}


class DataType(IntEnum):
    INT8 = 1
    INT16 = 2
    INT32 = 3
    INT64 = 4
    UINT8 = 5
    UINT16 = 6
    UINT32 = 7
    UINT64 = 8
    FLOAT = 9
    DOUBLE = 10
    BOOLEAN = 11
    STRING = 12
    DATETIME = 13
    TEXT = 14


_INT32_TYPES = {DataType.INT8, DataType.INT16, DataType.INT32}
_UINT32_TYPES = {DataType.UINT8, DataType.UINT16, DataType.UINT32}
_UNFIT = object()  # a value that its metric's datatype cannot carry (S7)


@dataclass(slots=True)
class Metric:
    name: str | None = None
    alias: int | None = None
    timestamp: int | None = None  # ms since the Unix epoch
    datatype: int = DataType.STRING
    value: SampleValue = None
    is_historical: bool = False
    properties: dict[str, int] = field(default_factory=dict)  # Int32 properties only


@dataclass(slots=True)
class Payload:
    timestamp: int | None = None
    metrics: list[Metric] = field(default_factory=list)
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class NodeValue:
    """A value of one of the node's own metrics (S8): its datatype is the caller's, fixed."""

    name: str
    datatype: DataType
    value: SampleValue
    timestamp: int  # ms since the Unix epoch
    historical: bool = False


def datatype_of(value: SampleValue) -> DataType:
    if isinstance(value, bool):
        return DataType.BOOLEAN
    if isinstance(value, int):
        return DataType.INT64 if -(2**63) <= value < 2**63 else DataType.STRING
    if isinstance(value, float):
        return DataType.DOUBLE
    return DataType.STRING


def fit(datatype: DataType, value: SampleValue) -> object:
    """``value`` as a metric of ``datatype`` carries it (S7), or ``_UNFIT``."""
    if value is None or datatype == DataType.STRING:
        return value  # the encoder writes a non-text value as JSON text
    if datatype == DataType.DOUBLE:
        return float(value) if isinstance(value, int | float) else _UNFIT
    if datatype == DataType.INT64:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and -(2**63) <= value < 2**63:
            return int(value)
        return _UNFIT
    if datatype == DataType.BOOLEAN:
        return value if isinstance(value, bool) else _UNFIT
    return _UNFIT


def _encode_metric(metric: Metric) -> bytes:
    out = bytearray()
    if metric.name is not None:
        out += string_field(1, metric.name)
    if metric.alias is not None:
        out += uint_field(2, metric.alias)
    if metric.timestamp is not None:
        out += uint_field(3, metric.timestamp)
    out += uint_field(4, metric.datatype)
    if metric.is_historical:
        out += bool_field(5, True)
    value = metric.value
    if value is None:
        out += bool_field(7, True)
    if metric.properties:
        keys = b"".join(string_field(1, key) for key in metric.properties)
        values = b"".join(
            bytes_field(2, uint_field(1, DataType.INT32) + uint_field(3, number & 0xFFFFFFFF))
            for number in metric.properties.values()
        )
        out += bytes_field(9, keys + values)
    if value is None:
        return bytes(out)
    kind = metric.datatype
    if kind == DataType.BOOLEAN:
        out += bool_field(14, bool(value))
    elif kind in _INT32_TYPES or kind in _UINT32_TYPES:
        out += uint_field(10, int(value) & 0xFFFFFFFF)  # type: ignore[arg-type]
    elif kind in (DataType.INT64, DataType.UINT64, DataType.DATETIME):
        out += uint_field(11, int(value))  # type: ignore[arg-type]
    elif kind == DataType.FLOAT:
        out += float_field(12, float(value))  # type: ignore[arg-type]
    elif kind == DataType.DOUBLE:
        out += double_field(13, float(value))  # type: ignore[arg-type]
    else:
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        out += string_field(15, text)
    return bytes(out)


def encode_payload(payload: Payload) -> bytes:
    out = bytearray()
    if payload.timestamp is not None:
        out += uint_field(1, payload.timestamp)
    for metric in payload.metrics:
        out += bytes_field(2, _encode_metric(metric))
    if payload.seq is not None:
        out += uint_field(3, payload.seq)
    return bytes(out)


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def _decode_properties(data: bytes) -> dict[str, int]:
    keys: list[str] = []
    values: list[int] = []
    for number, _, value in fields(data):
        if number == 1 and isinstance(value, bytes):
            keys.append(value.decode())
        elif number == 2 and isinstance(value, bytes):
            found = 0
            for inner, _, item in fields(value):
                if inner in (3, 4) and isinstance(item, int):
                    found = _signed(item, 32 if inner == 3 else 64)
            values.append(found)
    return dict(zip(keys, values, strict=False))


def _decode_metric(data: bytes) -> Metric:
    metric = Metric()
    is_null = False
    raw: dict[int, int | bytes] = {}
    for number, _, value in fields(data):
        if number == 1 and isinstance(value, bytes):
            metric.name = value.decode()
        elif number == 2 and isinstance(value, int):
            metric.alias = value
        elif number == 3 and isinstance(value, int):
            metric.timestamp = value
        elif number == 4 and isinstance(value, int):
            metric.datatype = value
        elif number == 5 and isinstance(value, int):
            metric.is_historical = bool(value)
        elif number == 7 and isinstance(value, int):
            is_null = bool(value)
        elif number == 9 and isinstance(value, bytes):
            metric.properties = _decode_properties(value)
        elif 10 <= number <= 16:
            raw[number] = value
    if is_null:
        return metric
    kind = metric.datatype
    if 10 in raw and isinstance(raw[10], int):
        number = int(raw[10])
        metric.value = _signed(number, 32) if kind in _INT32_TYPES else number
    elif 11 in raw and isinstance(raw[11], int):
        number = int(raw[11])
        metric.value = _signed(number, 64) if kind == DataType.INT64 else number
    elif 12 in raw and isinstance(raw[12], bytes):
        metric.value = struct.unpack("<f", raw[12])[0]
    elif 13 in raw and isinstance(raw[13], bytes):
        metric.value = struct.unpack("<d", raw[13])[0]
    elif 14 in raw and isinstance(raw[14], int):
        metric.value = bool(raw[14])
    elif 15 in raw and isinstance(raw[15], bytes):
        metric.value = raw[15].decode()
    elif 16 in raw and isinstance(raw[16], bytes):
        metric.value = raw[16].hex()
    return metric


def decode_payload(data: bytes) -> Payload:
    payload = Payload()
    for number, wire, value in fields(data):
        if number == 1 and isinstance(value, int):
            payload.timestamp = value
        elif number == 2 and wire == LEN and isinstance(value, bytes):
            payload.metrics.append(_decode_metric(value))
        elif number == 3 and isinstance(value, int):
            payload.seq = value
        elif wire == I64 and number not in (1, 2, 3):
            continue  # uuid/body and unknown fields: not ours
    return payload


# -- the edge node's session -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """A write asked for by a DCMD (``device``, ``point``) or a rebirth asked by an NCMD."""

    device: str | None
    point: str
    value: SampleValue


class EdgeNode:
    """One session of one edge node (create a new one per connection, with a new bdSeq)."""

    def __init__(
        self,
        group: str,
        node: str,
        bdseq: int,
        types: dict[tuple[str, str], DataType] | None = None,
    ) -> None:
        self.group = group
        self.node = node
        self.bdseq = bdseq % 256
        self.seq = 0
        # (device, point) -> datatype, fixed at the first value (S7); shared across sessions.
        self.types: dict[tuple[str, str], DataType] = {} if types is None else types
        self.fixed: list[tuple[str, str, DataType]] = []  # new in self.types, to be kept
        self.mismatched = 0
        self.untyped = 0
        self._aliases: dict[tuple[str, str], int] = {}
        self._born: dict[str, set[str]] = {}  # device -> its metrics in its last DBIRTH
        self._by_alias: dict[int, tuple[str, str]] = {}
        self._node_aliases: dict[str, int] = {}  # the node's own metrics (S8)
        self._node_born: set[str] = set()  # … in the last NBIRTH
        self.node_metrics: dict[str, NodeValue] = {}  # … their last values, for a rebirth

    def _new_alias(self) -> int:
        """Aliases are unique across the node and its devices."""
        return len(self._aliases) + len(self._node_aliases) + 1

    def topic(self, kind: str, device: str | None = None) -> str:
        base = f"{NAMESPACE}/{self.group}/{kind}/{self.node}"
        return base if device is None else f"{base}/{device}"

    def _next_seq(self) -> int:
        self.seq = (self.seq + 1) % 256
        return self.seq

    def death(self, now_ms: int) -> tuple[str, bytes]:
        """The NDEATH (the will): ``bdSeq`` and no ``seq`` (S1)."""
        bdseq = Metric(name="bdSeq", timestamp=now_ms, datatype=DataType.UINT64, value=self.bdseq)
        return self.topic("NDEATH"), encode_payload(Payload(now_ms, [bdseq]))

    def birth(
        self,
        now_ms: int,
        devices: dict[str, dict[str, Sample]],
        node: Iterable[NodeValue] = (),
    ) -> list[tuple[str, bytes]]:
        """NBIRTH (seq 0), with the node's own metrics ``node`` and those it had (S8), then
        a DBIRTH per device (S2)."""
        self.seq = 0
        self._born.clear()
        for value in node:
            self.node_metrics[value.name] = value
        metrics = [
            Metric(name="bdSeq", timestamp=now_ms, datatype=DataType.UINT64, value=self.bdseq),
            Metric(name=REBIRTH, timestamp=now_ms, datatype=DataType.BOOLEAN, value=False),
        ]
        for name in sorted(self.node_metrics):
            metrics.append(self._node_metric(self.node_metrics[name], named=True))
        self._node_born = set(self.node_metrics)
        out = [(self.topic("NBIRTH"), encode_payload(Payload(now_ms, metrics, 0)))]
        for device in sorted(devices):
            out.append(self._device_birth(now_ms, device, devices[device]))
        return out

    def _device_birth(
        self, now_ms: int, device: str, points: dict[str, Sample]
    ) -> tuple[str, bytes]:
        born: set[str] = set()
        metrics = []
        for point in sorted(points):
            metric = self._metric(device, point, points[point], named=True)
            if metric is not None:  # a point with no value yet is born with its first (S7)
                born.add(point)
                metrics.append(metric)
        self._born[device] = born
        payload = Payload(now_ms, metrics, self._next_seq())
        return self.topic("DBIRTH", device), encode_payload(payload)

    def _datatype(self, device: str, point: str, value: SampleValue) -> DataType | None:
        """The metric's datatype: fixed by its first value, then never changed (S7)."""
        key = (device, point)
        datatype = self.types.get(key)
        if datatype is None and value is not None:
            datatype = self.types[key] = datatype_of(value)
            self.fixed.append((device, point, datatype))
        return datatype

    def _metric(
        self, device: str, point: str, sample: Sample, *, named: bool, historical: bool = False
    ) -> Metric | None:
        """The metric for ``sample``; None while the point has no datatype (S7)."""
        datatype = self._datatype(device, point, sample.value)
        if datatype is None:
            return None
        alias = self._aliases.get((device, point))
        if alias is None:
            alias = self._aliases[(device, point)] = self._new_alias()
            self._by_alias[alias] = (device, point)
        quality = sample.quality
        value = fit(datatype, sample.value)
        if value is _UNFIT:
            self.mismatched += 1
            value, quality = None, Quality.BAD
        properties = {} if quality is Quality.GOOD else {"Quality": QUALITY_CODES[quality]}
        return Metric(
            name=point if named else None,
            alias=alias,
            timestamp=int(sample.timestamp * 1000),
            datatype=datatype,
            value=value,  # type: ignore[arg-type]  # fit() returns a SampleValue here
            is_historical=historical,
            properties=properties,
        )

    def data(
        self,
        now_ms: int,
        samples: Iterable[tuple[str, str, Sample, bool]],
        known: dict[str, dict[str, Sample]],
    ) -> list[tuple[str, bytes]]:
        """DDATA per device for ``(device, point, sample, historical)``; a DBIRTH first for a
        device with a metric its last birth did not announce (S3, S4). ``known`` is every
        device's points with their last sample (what a new DBIRTH announces)."""
        by_device: dict[str, list[tuple[str, Sample, bool]]] = {}
        for device, point, sample, historical in samples:
            by_device.setdefault(device, []).append((point, sample, historical))
        out: list[tuple[str, bytes]] = []
        for device, items in by_device.items():
            born = self._born.get(device, set())
            unborn = [
                (point, sample)
                for point, sample, _ in items
                if point not in born and self._datatype(device, point, sample.value) is not None
            ]
            if unborn:
                points = dict(known.get(device, {}))
                for point, sample in unborn:
                    points.setdefault(point, sample)
                out.append(self._device_birth(now_ms, device, points))
                born = self._born[device]
            metrics = []
            for point, sample, historical in items:
                metric = None
                if point in born:
                    metric = self._metric(device, point, sample, named=False,
                                          historical=historical)  # fmt: skip
                if metric is None:
                    self.untyped += 1  # no value yet: not born, nothing to say (S7)
                    continue
                metrics.append(metric)
            if not metrics:
                continue
            payload = Payload(now_ms, metrics, self._next_seq())
            out.append((self.topic("DDATA", device), encode_payload(payload)))
        return out

    def _node_metric(self, value: NodeValue, *, named: bool) -> Metric:
        alias = self._node_aliases.get(value.name)
        if alias is None:
            alias = self._node_aliases[value.name] = self._new_alias()
        return Metric(
            name=value.name if named else None,
            alias=alias,
            timestamp=value.timestamp,
            datatype=value.datatype,
            value=value.value,
            is_historical=value.historical and not named,
        )

    def node_data(
        self,
        now_ms: int,
        values: Iterable[NodeValue],
        devices: dict[str, dict[str, Sample]],
    ) -> list[tuple[str, bytes]]:
        """An NDATA of the node's own metrics, by alias (S8); the node is born again first
        (NBIRTH and every DBIRTH, with ``devices``) if one of them is not in its last NBIRTH.
        Live values become the last values a later birth announces; historical ones do not."""
        values = list(values)
        if not values:
            return []
        out: list[tuple[str, bytes]] = []
        if any(value.name not in self._node_born for value in values):
            newest: dict[str, NodeValue] = {}
            for value in values:
                if value.name not in self.node_metrics or not value.historical:
                    newest[value.name] = NodeValue(
                        value.name, value.datatype, value.value, value.timestamp
                    )
            out += self.birth(now_ms, devices, newest.values())
        else:
            for value in values:
                if not value.historical:
                    self.node_metrics[value.name] = value
        metrics = [self._node_metric(value, named=False) for value in values]
        out.append(
            (self.topic("NDATA"), encode_payload(Payload(now_ms, metrics, self._next_seq())))
        )
        return out

    def command(self, topic: str, data: bytes) -> list[Command]:
        """The commands an NCMD or DCMD carries (S6); an empty list for anything else."""
        parts = topic.split("/")
        if len(parts) < 4 or parts[0] != NAMESPACE or parts[1] != self.group:
            return []
        if parts[3] != self.node or parts[2] not in ("NCMD", "DCMD"):
            return []
        payload = decode_payload(data)
        if parts[2] == "NCMD":
            return [
                Command(None, REBIRTH, True)
                for m in payload.metrics
                if m.name == REBIRTH and m.value is True
            ]
        if len(parts) != 5:
            return []
        device = parts[4]
        commands = []
        for metric in payload.metrics:
            name = metric.name
            if name is None and metric.alias is not None:
                name = self._by_alias.get(metric.alias, (device, None))[1]
            if name is not None:
                commands.append(Command(device, name, metric.value))
        return commands
