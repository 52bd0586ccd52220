"""Just enough of the protobuf wire format for Sparkplug B (sans-IO, bytes in and out).

Why by hand: Sparkplug B needs two messages (Payload, Metric) and a handful of scalar fields;
a generated module would tie plantd to a ``protobuf`` runtime version for ~150 lines of
encoding rules that have not changed since 2008. The rules (protobuf.dev, "Encoding"):

    a field is a key then a value; key = (field number << 3) | wire type
    wire type 0  VARINT   base-128, least significant group first, high bit = more follows;
                          negative int32/int64 are sent as their 64-bit two's complement
    wire type 1  I64      8 bytes little-endian (double, fixed64)
    wire type 2  LEN      a varint length, then that many bytes (string, bytes, sub-message)
    wire type 5  I32      4 bytes little-endian (float, fixed32)

Decoding keeps unknown fields' values and skips nothing silently: a truncated or malformed
message raises :class:`ProtobufError` naming the offset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from plantd.errors import RemoteProtocolError

__all__ = [
    "I32",
    "I64",
    "LEN",
    "VARINT",
    "ProtobufError",
    "bool_field",
    "bytes_field",
    "double_field",
    "fields",
    "float_field",
    "string_field",
    "uint_field",
    "varint",
]

VARINT, I64, LEN, I32 = 0, 1, 2, 5
_U64 = (1 << 64) - 1


class ProtobufError(RemoteProtocolError, ValueError):
    """Bytes that are not a well-formed protobuf message (a peer's: the MQTT server relays
    commands from upstream). Still a ``ValueError``, as before it joined the PlantdError tree."""


def varint(value: int) -> bytes:
    """The base-128 encoding of ``value`` (negative values as 64-bit two's complement)."""
    value &= _U64
    out = bytearray()
    while True:
        group = value & 0x7F
        value >>= 7
        if value:
            out.append(group | 0x80)
        else:
            out.append(group)
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def uint_field(number: int, value: int) -> bytes:
    return _key(number, VARINT) + varint(value)


def bool_field(number: int, value: bool) -> bytes:
    return _key(number, VARINT) + (b"\x01" if value else b"\x00")


def double_field(number: int, value: float) -> bytes:
    return _key(number, I64) + struct.pack("<d", value)


def float_field(number: int, value: float) -> bytes:
    return _key(number, I32) + struct.pack("<f", value)


def bytes_field(number: int, value: bytes) -> bytes:
    return _key(number, LEN) + varint(len(value)) + value


def string_field(number: int, value: str) -> bytes:
    return bytes_field(number, value.encode())


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if offset >= len(data):
            raise ProtobufError(f"varint runs past the end at offset {offset}")
        byte = data[offset]
        offset += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & _U64, offset
        shift += 7
        if shift >= 70:
            raise ProtobufError(f"varint longer than 10 bytes at offset {offset}")


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` for each field: ints for VARINT, raw little-endian
    bytes for I64/I32 (the schema says whether they are a double or a fixed64), bytes for
    LEN."""
    offset = 0
    while offset < len(data):
        key, offset = _read_varint(data, offset)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtobufError(f"field number 0 at offset {offset}")
        value: int | bytes
        if wire == VARINT:
            value, offset = _read_varint(data, offset)
        elif wire in (I64, I32):
            size = 8 if wire == I64 else 4
            if offset + size > len(data):
                raise ProtobufError(f"fixed-size field {number} runs past the end")
            value, offset = data[offset : offset + size], offset + size
        elif wire == LEN:
            length, offset = _read_varint(data, offset)
            if offset + length > len(data):
                raise ProtobufError(f"field {number} of {length} bytes runs past the end")
            value, offset = data[offset : offset + length], offset + length
        else:
            raise ProtobufError(f"unsupported wire type {wire} for field {number}")
        yield number, wire, value
