"""Values ↔ registers for filling a simulated device, written independently of the driver's
codec (lists of words reversed and bytes swapped, rather than the driver's permutation tables)
so that a test of one against the other means something.

Orders name the register layout of the big-endian bytes ``A B C D …`` of a value:
``ABCD`` as is, ``CDAB`` registers reversed, ``BADC`` bytes swapped in each register,
``DCBA`` both. Strings only honour the byte swap.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

__all__ = ["from_registers", "to_registers"]

_STRUCT = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q"}
_STRUCT |= {"float32": "f", "float64": "d"}


def to_registers(
    value_type: str, value: object, order: str = "ABCD", *, length: int | None = None
) -> list[int]:
    """The registers a device holding ``value`` as ``value_type`` in ``order`` sends."""
    if value_type == "string":
        assert isinstance(value, str)
        assert length is not None
        raw = value.encode().ljust(length + length % 2, b"\0")
    elif value_type in ("int48", "uint48"):
        assert isinstance(value, int)
        raw = value.to_bytes(6, "big", signed=value_type == "int48")
    elif value_type == "bool":
        raw = struct.pack(">H", 1 if value else 0)
    else:
        raw = struct.pack(">" + _STRUCT[value_type], value)
    words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if order in ("CDAB", "DCBA") and value_type != "string":
        words.reverse()
    if order in ("BADC", "DCBA"):
        words = [word[::-1] for word in words]
    return [int.from_bytes(word, "big") for word in words]


def from_registers(value_type: str, registers: Sequence[int], order: str = "ABCD") -> object:
    """The inverse of :func:`to_registers`."""
    words = [register.to_bytes(2, "big") for register in registers]
    if order in ("BADC", "DCBA"):
        words = [word[::-1] for word in words]
    if order in ("CDAB", "DCBA") and value_type != "string":
        words.reverse()
    raw = b"".join(words)
    if value_type == "string":
        return raw.split(b"\0", 1)[0].decode()
    if value_type in ("int48", "uint48"):
        return int.from_bytes(raw, "big", signed=value_type == "int48")
    if value_type == "bool":
        return raw != b"\0\0"
    result: object = struct.unpack(">" + _STRUCT[value_type], raw)[0]
    return result
