"""The data bus payload format, version 1. This module is its only owner.

A bus message is two frames, ``[topic, payload]``. Topics are dotted ASCII and prefix-filtered
by subscribers: ``data.<module>.<point>``, ``state.<scope>.<key>``, ``event.<source>.<kind>``,
``log.<service>``. Payloads start with a version byte and a kind byte::

    sample (kind "S", on data.*), little-endian, 32-byte header then the value:
        u8  version = 1      u8  kind = "S"     u8 quality (0 good, 1 uncertain, 2 bad)
        u8  value type       u32 epoch          u64 seq          f64 timestamp (Unix s)
        u64 reserved (0)     value: f64 ("f") | i64 ("i") | u8 ("b") | UTF-8 ("s")
                                    | nothing ("n") | JSON ("j", arrays and objects)

    batch (kind "B", on data.<module>): every sample of one poll of one module, little-endian,
        u8 version = 1   u8 kind = "B"   u32 epoch   u32 count, then count items:
        u8 name length   name (UTF-8: the point; its topic is <batch topic>.<name>)
        u8 quality       u8 value type   u64 seq     f64 timestamp
        value: f64 | i64 | u8 bool | nothing | u32 length + UTF-8 ("s") or JSON ("j")

    record (kind "J", on state.*, event.*, log.*):
        u8 version = 1       u8 kind = "J"       UTF-8 JSON object

``seq`` counts per topic per publisher from 1 (in a batch, per point topic), so a subscriber of
any prefix sees each topic's numbers without holes unless messages were lost; ``epoch`` is
random per publisher process, so a restarted publisher (whose numbers start again at 1) is told
apart from a gap. Samples are binary
because they are the bulk of the traffic: packing one costs a fraction of a JSON encoding, and
batches because one ZeroMQ message per sample made every consumer pay per sample.
A decoder rejects an unknown version with :class:`BusDecodeError` rather than guessing.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from plantd.errors import RemoteProtocolError

__all__ = [
    "VERSION",
    "BatchItem",
    "BusDecodeError",
    "Quality",
    "Record",
    "Sample",
    "SampleValue",
    "decode",
    "decode_batch",
    "decode_record",
    "decode_sample",
    "encode_batch",
    "encode_record",
    "encode_sample",
    "encode_sample_fields",
    "is_batch",
    "sample_to_json",
]

VERSION: Final = 1
_SAMPLE_HEADER = struct.Struct("<BBBBIQdQ")
_F64 = struct.Struct("<d")
_I64 = struct.Struct("<q")
_KIND_SAMPLE, _KIND_RECORD, _KIND_BATCH = ord("S"), ord("J"), ord("B")
_BATCH_HEADER = struct.Struct("<BBII")
_ITEM_HEAD = struct.Struct("<BBQd")  # quality, value type, seq, timestamp
_ITEM_F64 = struct.Struct("<BBQdd")  # … and an f64 value: the common case, packed at once
_U32 = struct.Struct("<I")
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1

SampleValue = float | int | bool | str | list[Any] | dict[str, Any] | None


class Quality(IntEnum):
    GOOD = 0
    UNCERTAIN = 1
    BAD = 2

    @property
    def label(self) -> str:
        return self.name.lower()


_QUALITIES = tuple(Quality)
"""Quality by its wire number: a tuple index costs far less than ``Quality(n)`` per sample."""


class BusDecodeError(RemoteProtocolError, ValueError):
    """A payload that is not version-1 bus format (names what is wrong). Still a
    ``ValueError``, as it was before it joined the ``PlantdError`` tree."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of one point: what a module publishes on ``data.<module>.<point>``."""

    value: SampleValue
    timestamp: float  # source timestamp, Unix seconds
    quality: Quality = Quality.GOOD
    seq: int = 0
    epoch: int = 0


@dataclass(frozen=True, slots=True)
class Record:
    """A structured message (state change, event, log line) as a JSON object."""

    fields: dict[str, Any]


def encode_sample(sample: Sample) -> bytes:
    return encode_sample_fields(
        sample.value, sample.timestamp, sample.quality, sample.seq, sample.epoch
    )


def encode_sample_fields(
    value: SampleValue, timestamp: float, quality: int, seq: int, epoch: int
) -> bytes:
    """:func:`encode_sample` without building a :class:`Sample` (the publishing hot path)."""
    if type(value) is float:  # the common case first
        kind, tail = 102, _F64.pack(value)
    else:
        kind, tail = _value_bytes(value)
    header = _SAMPLE_HEADER.pack(VERSION, _KIND_SAMPLE, quality, kind, epoch, seq, timestamp, 0)
    return header + tail


def decode_sample(payload: bytes) -> Sample:
    _check_header(payload, _KIND_SAMPLE)
    if len(payload) < _SAMPLE_HEADER.size:
        raise BusDecodeError(f"sample payload of {len(payload)} bytes is shorter than its header")
    _, _, quality, kind, epoch, seq, timestamp, _ = _SAMPLE_HEADER.unpack_from(payload)
    tail = payload[_SAMPLE_HEADER.size :]
    value: SampleValue
    try:
        if kind == ord("f"):
            (value,) = _F64.unpack(tail)
        elif kind == ord("i"):
            (value,) = _I64.unpack(tail)
        elif kind == ord("b"):
            if len(tail) != 1:
                raise BusDecodeError("a bool sample carries exactly one byte")
            value = tail != b"\x00"
        elif kind == ord("s"):
            value = tail.decode()
        elif kind == ord("n"):
            value = None
        elif kind == ord("j"):
            value = json.loads(tail)
        else:
            raise BusDecodeError(f"unknown sample value type {kind!r}")
        if quality >= len(_QUALITIES):
            raise BusDecodeError(f"unknown quality {quality} (0 good, 1 uncertain, 2 bad)")
        return Sample(value, timestamp, _QUALITIES[quality], seq, epoch)
    except (struct.error, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        if isinstance(exc, BusDecodeError):
            raise
        raise BusDecodeError(f"bad sample value: {exc}") from None


BatchItem = tuple[bytes, SampleValue, float, int, int]
"""One sample of a batch as the publisher hands it over: the point's name *already prefixed by
its length byte* (``bytes((len(name),)) + name``: a publisher computes it once per point), the
value, the timestamp, the quality and the seq."""


def encode_batch(epoch: int, items: list[BatchItem]) -> bytes:
    """One batch payload: the samples of one poll (the hot path of every module)."""
    parts = [_BATCH_HEADER.pack(VERSION, _KIND_BATCH, epoch, len(items))]
    append = parts.append
    for name, value, timestamp, quality, seq in items:
        append(name)
        if type(value) is float:  # the common case first
            append(_ITEM_F64.pack(quality, 102, seq, timestamp, value))  # 102: "f"
            continue
        kind, tail = _value_bytes(value)
        append(_ITEM_HEAD.pack(quality, kind, seq, timestamp))
        if kind in (115, 106):  # "s", "j": length-prefixed
            append(_U32.pack(len(tail)))
        append(tail)
    return b"".join(parts)


def _value_bytes(value: SampleValue) -> tuple[int, bytes]:
    """(value type, bytes) as a sample carries them."""
    if isinstance(value, bool):  # before int: True is an int in Python, its own wire type
        return 98, b"\x01" if value else b"\x00"
    if isinstance(value, int) and _I64_MIN <= value <= _I64_MAX:
        return 105, _I64.pack(value)
    if isinstance(value, float):
        return 102, _F64.pack(value)
    if isinstance(value, str):
        return 115, value.encode()
    if value is None:
        return 110, b""
    return 106, json.dumps(value, separators=(",", ":")).encode()  # lists, dicts, big ints


def decode_batch(payload: bytes) -> tuple[int, list[tuple[str, Sample]]]:
    """(epoch, [(point name, sample), …]); BusDecodeError names what is wrong."""
    _check_header(payload, _KIND_BATCH)
    if len(payload) < _BATCH_HEADER.size:
        raise BusDecodeError(f"batch payload of {len(payload)} bytes is shorter than its header")
    _, _, epoch, count = _BATCH_HEADER.unpack_from(payload)
    items: list[tuple[str, Sample]] = []
    at = _BATCH_HEADER.size
    try:
        for _ in range(count):
            size = payload[at]
            name = payload[at + 1 : at + 1 + size].decode()
            at += 1 + size
            quality, kind, seq, timestamp = _ITEM_HEAD.unpack_from(payload, at)
            at += _ITEM_HEAD.size
            value: SampleValue
            if kind == 102:
                (value,) = _F64.unpack_from(payload, at)
                at += 8
            elif kind == 105:
                (value,) = _I64.unpack_from(payload, at)
                at += 8
            elif kind == 98:
                value = payload[at] != 0
                at += 1
            elif kind == 110:
                value = None
            elif kind in (115, 106):
                (length,) = _U32.unpack_from(payload, at)
                tail = payload[at + 4 : at + 4 + length]
                if len(tail) != length:
                    raise BusDecodeError("a batch item's value runs past the payload")
                at += 4 + length
                value = tail.decode() if kind == 115 else json.loads(tail)
            else:
                raise BusDecodeError(f"unknown sample value type {kind!r} in a batch")
            if quality >= len(_QUALITIES):
                raise BusDecodeError(f"unknown quality {quality} in a batch item")
            items.append((name, Sample(value, timestamp, _QUALITIES[quality], seq, epoch)))
    except (IndexError, struct.error, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        if isinstance(exc, BusDecodeError):
            raise
        raise BusDecodeError(f"bad batch item: {exc}") from None
    if at != len(payload):
        raise BusDecodeError(f"{len(payload) - at} byte(s) after the batch's {count} item(s)")
    return epoch, items


def is_batch(payload: bytes) -> bool:
    return len(payload) >= 2 and payload[1] == _KIND_BATCH


def encode_record(fields: dict[str, Any]) -> bytes:
    return bytes((VERSION, _KIND_RECORD)) + json.dumps(fields, separators=(",", ":")).encode()


def decode_record(payload: bytes) -> Record:
    _check_header(payload, _KIND_RECORD)
    try:
        fields = json.loads(payload[2:])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BusDecodeError(f"record is not JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise BusDecodeError("a record is a JSON object")
    return Record(fields)


def decode(payload: bytes) -> Sample | Record:
    """Either kind, by its kind byte."""
    if len(payload) >= 2 and payload[1] == _KIND_SAMPLE:
        return decode_sample(payload)
    return decode_record(payload)


def _check_header(payload: bytes, kind: int) -> None:
    if len(payload) < 2:
        raise BusDecodeError(f"payload of {len(payload)} bytes has no header")
    if payload[0] != VERSION:
        raise BusDecodeError(f"bus payload version {payload[0]} (this plantd reads {VERSION})")
    if payload[1] != kind:
        raise BusDecodeError(f"expected kind {chr(kind)!r}, got {payload[1]!r}")


def sample_to_json(sample: Sample) -> dict[str, Any]:
    """A sample as plain JSON (for the CLI and REST): NaN and infinities become strings."""
    value = sample.value
    if isinstance(value, float) and not math.isfinite(value):
        value = str(value)
    return {
        "value": value,
        "timestamp": sample.timestamp,
        "quality": sample.quality.label,
        "seq": sample.seq,
        "epoch": sample.epoch,
    }
