"""The data bus payload format, version 1. This module is its only owner.

A bus message is two frames, ``[topic, payload]``. Topics are dotted ASCII and prefix-filtered
by subscribers: ``data.<module>.<point>``, ``state.<scope>.<key>``, ``event.<source>.<kind>``,
``log.<service>``. Payloads start with a version byte and a kind byte::

    sample (kind "S", on data.*), little-endian, 32-byte header then the value:
        u8  version = 1      u8  kind = "S"     u8 quality (0 good, 1 uncertain, 2 bad)
        u8  value type       u32 epoch          u64 seq          f64 timestamp (Unix s)
        u64 reserved (0)     value: f64 ("f") | i64 ("i") | u8 ("b") | UTF-8 ("s")
                                    | nothing ("n") | JSON ("j", arrays and objects)

    record (kind "J", on state.*, event.*, log.*):
        u8 version = 1       u8 kind = "J"       UTF-8 JSON object

``seq`` counts per topic per publisher from 1, so a subscriber of any prefix sees each topic's
numbers without holes unless messages were lost; ``epoch`` is random per publisher process, so a
restarted publisher (whose numbers start again at 1) is told apart from a gap. Samples are binary
because they are the bulk of the traffic: packing one costs a fraction of a JSON encoding.
A decoder rejects an unknown version with :class:`BusDecodeError` rather than guessing.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

__all__ = [
    "VERSION",
    "BusDecodeError",
    "Quality",
    "Record",
    "Sample",
    "SampleValue",
    "decode",
    "decode_record",
    "decode_sample",
    "encode_record",
    "encode_sample",
    "encode_sample_fields",
    "sample_to_json",
]

VERSION: Final = 1
_SAMPLE_HEADER = struct.Struct("<BBBBIQdQ")
_F64 = struct.Struct("<d")
_I64 = struct.Struct("<q")
_KIND_SAMPLE, _KIND_RECORD = ord("S"), ord("J")
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1

SampleValue = float | int | bool | str | list[Any] | dict[str, Any] | None


class Quality(IntEnum):
    GOOD = 0
    UNCERTAIN = 1
    BAD = 2

    @property
    def label(self) -> str:
        return self.name.lower()


class BusDecodeError(ValueError):
    """A payload that is not version-1 bus format (names what is wrong)."""


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
    kind_of = type(value)
    if kind_of is float:  # the common case first
        kind, tail = b"f", _F64.pack(value)
    elif isinstance(value, bool):  # before int: True is an int in Python, its own wire type
        kind, tail = b"b", b"\x01" if value else b"\x00"
    elif isinstance(value, int) and _I64_MIN <= value <= _I64_MAX:
        kind, tail = b"i", _I64.pack(value)
    elif isinstance(value, float):
        kind, tail = b"f", _F64.pack(value)
    elif isinstance(value, str):
        kind, tail = b"s", value.encode()
    elif value is None:
        kind, tail = b"n", b""
    else:  # lists, dicts, and integers beyond 64 bits
        kind, tail = b"j", json.dumps(value, separators=(",", ":")).encode()
    header = _SAMPLE_HEADER.pack(VERSION, _KIND_SAMPLE, quality, kind[0], epoch, seq, timestamp, 0)
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
        return Sample(value, timestamp, Quality(quality), seq, epoch)
    except (struct.error, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        if isinstance(exc, BusDecodeError):
            raise
        raise BusDecodeError(f"bad sample value: {exc}") from None


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
