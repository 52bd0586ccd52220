"""The one codec: registers ↔ values, for reads and for writes alike.

Theory of operation. A :class:`PointCodec` is compiled once per point from its config: how many
registers it spans, the struct code of its big-endian bytes, the byte permutation of its order
(see ``_types``) and a *finisher* that turns the raw struct value into a :class:`Reading`
(scale, offset, clamp, enum labels, bit maps, 48-bit ints, text). Writes run the same steps
backwards through the same tables, so a value written and read back is the same value.

Reads are decoded a whole request at a time by a :class:`BlockDecoder`, compiled once per
request: the registers are packed into bytes with one precompiled ``struct`` call, shuffled into
big-endian order with one ``itemgetter`` (skipped when the request is plain ``ABCD`` and has no
holes), and unpacked with one ``struct`` call for every point of the request. Python code runs
per point only where a finisher is needed; a plain unscaled number costs one ``Reading``.

Sans-IO: no sockets, no clock.
"""

from __future__ import annotations

import math
import operator
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from plantd.bus import Quality
from plantd.module import Reading
from plantd_drivers.modbus._types import (
    INTEGER_TYPES,
    Order,
    ValueType,
    byte_permutation,
    register_count,
    type_range,
)

__all__ = ["BitDecoder", "BlockDecoder", "PointCodec"]

Finisher = Callable[[Any], Reading]

_CODES = {
    "bool": "H",
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int48": "6s",
    "uint48": "6s",
    "int64": "q",
    "uint64": "Q",
    "float32": "f",
    "float64": "d",
}


class PointCodec:
    """How one point's value sits in registers (or in one bit of a coil/discrete table)."""

    __slots__ = (
        "bit",
        "bit_table",
        "bits",
        "clamp",
        "code",
        "enum",
        "finish",
        "labels",
        "length",
        "offset",
        "order",
        "perm",
        "registers",
        "scale",
        "value_type",
    )

    def __init__(
        self,
        value_type: ValueType,
        order: Order = "ABCD",
        *,
        bit_table: bool = False,
        bit: int | None = None,
        length: int | None = None,
        scale: float = 1.0,
        offset: float = 0.0,
        clamp: tuple[float | None, float | None] = (None, None),
        enum: Mapping[str, int] | None = None,
        bits: Mapping[str, int] | None = None,
    ) -> None:
        self.value_type = value_type
        self.order = order
        self.bit_table = bit_table
        self.bit = bit
        self.length = length
        self.scale = scale
        self.offset = offset
        self.clamp = clamp
        self.enum = dict(enum) if enum else None
        self.labels = {number: label for label, number in enum.items()} if enum else None
        self.bits = dict(bits) if bits else None
        self.registers = 1 if bit_table else register_count(value_type, length)
        string = value_type == "string"
        self.code = f"{2 * self.registers}s" if string else _CODES[value_type]
        self.perm = byte_permutation(self.registers, order, string=string)
        self.finish = self._finisher()

    # -- reading -------------------------------------------------------------------------------

    def _finisher(self) -> Finisher | None:
        kind = self.value_type
        if self.bit_table:
            return None
        if kind == "bool":
            if self.bit is not None:
                mask = 1 << self.bit
                return lambda raw: Reading(bool(raw & mask))
            return lambda raw: Reading(raw != 0)
        if kind == "string":
            return _text
        if kind in ("int48", "uint48"):
            signed = kind == "int48"
            then = self._numeric_finisher()
            if then is None:
                return lambda raw: Reading(int.from_bytes(raw, "big", signed=signed))
            return lambda raw: then(int.from_bytes(raw, "big", signed=signed))
        if self.labels is not None:
            labels = self.labels
            return lambda raw: (
                Reading(labels[raw]) if raw in labels else Reading(raw, Quality.UNCERTAIN)
            )
        if self.bits is not None:
            names = tuple(self.bits.items())
            return lambda raw: Reading({name: bool(raw >> bit & 1) for name, bit in names})
        return self._numeric_finisher()

    def _numeric_finisher(self) -> Finisher | None:
        scale, offset = self.scale, self.offset
        low, high = self.clamp
        if scale == 1 and offset == 0 and low is None and high is None:
            return None
        plain = scale == 1 and offset == 0

        def finish(raw: Any) -> Reading:
            value = raw if plain else raw * scale + offset
            if low is not None and value < low:
                return Reading(low, Quality.UNCERTAIN)
            if high is not None and value > high:
                return Reading(high, Quality.UNCERTAIN)
            return Reading(value)

        return finish

    def decode(self, registers: Sequence[int]) -> Reading:
        """One value from its own registers (the slow path: probes, read-backs, tests)."""
        decoder = BlockDecoder(len(registers), [("value", 0, self)])
        readings: dict[str, Reading] = {}
        decoder.decode(registers, readings)
        return readings["value"]

    # -- writing -------------------------------------------------------------------------------

    def needs_current(self) -> bool:
        """True if writing changes only part of a register (read-modify-write)."""
        return not self.bit_table and (self.bit is not None or self.bits is not None)

    def encode(self, value: Any, current: Sequence[int] | None = None) -> list[int]:
        """The registers that hold ``value`` (``[0]``/``[1]`` for a coil); ValueError if it does
        not fit. ``current`` is the point's registers now, needed when :meth:`needs_current`."""
        if self.bit_table:
            return [int(_as_bool(value))]
        if self.needs_current():
            if current is None or len(current) != self.registers:
                raise ValueError("this point needs its current registers to write part of them")
            raw: Any = self._merge_bits(value, current)
        else:
            raw = self._raw(value)
        try:
            packed = struct.pack(">" + self.code, raw)
        except (struct.error, OverflowError) as exc:
            raise ValueError(f"{value!r} does not fit a {self.value_type}: {exc}") from None
        wire = bytes(packed[p] for p in self.perm)
        return list(struct.unpack(f">{self.registers}H", wire))

    def _raw(self, value: Any) -> Any:
        kind = self.value_type
        if kind == "bool":
            return int(_as_bool(value))
        if kind == "string":
            return self._text_bytes(value)
        if self.enum is not None:
            value = self._enum_number(value)
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number for a {kind}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value} cannot be written")
        plain = self.scale == 1 and self.offset == 0
        scaled = value if plain else (value - self.offset) / self.scale
        if kind not in INTEGER_TYPES:
            return float(scaled)
        return self._integer(value, scaled)

    def _integer(self, value: Any, scaled: float) -> Any:
        kind = self.value_type
        if isinstance(scaled, float):
            if scaled != int(scaled) and self.scale == 1 and self.offset == 0:
                raise ValueError(f"{value!r} is not a whole number, and the point is a {kind}")
            scaled = round(scaled)
        low, high = type_range(kind)
        if not low <= scaled <= high:
            extra = "" if self.scale == 1 and self.offset == 0 else f" (raw value {scaled})"
            raise ValueError(f"{value!r} is outside the range of a {kind}, {low}…{high}{extra}")
        if kind in ("int48", "uint48"):
            return int(scaled).to_bytes(6, "big", signed=kind == "int48")
        return int(scaled)

    def _enum_number(self, value: Any) -> int:
        assert self.enum is not None
        assert self.labels is not None
        if isinstance(value, str) and value in self.enum:
            return self.enum[value]
        if isinstance(value, int) and not isinstance(value, bool) and value in self.labels:
            return value
        choices = ", ".join(repr(label) for label in self.enum)
        raise ValueError(f"{value!r} is not one of {choices}")

    def _text_bytes(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise ValueError(f"expected text for a string point, got {value!r}")
        data = value.encode()
        room = 2 * self.registers if self.length is None else self.length
        if len(data) > room:
            raise ValueError(f"{value!r} is {len(data)} bytes long; the point holds {room}")
        return data.ljust(2 * self.registers, b"\0")

    def _merge_bits(self, value: Any, current: Sequence[int]) -> int:
        word = _register_value(current, self.perm, self.code)
        if self.bit is not None:
            mask = 1 << self.bit
            return word | mask if _as_bool(value) else word & ~mask
        assert self.bits is not None
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a mapping of bit names to true/false, got {value!r}")
        for name, state in value.items():
            if name not in self.bits:
                known = ", ".join(repr(n) for n in self.bits)
                raise ValueError(f"{name!r} is not a bit of this point (bits: {known})")
            mask = 1 << self.bits[name]
            word = word | mask if _as_bool(state) else word & ~mask
        return word


class BlockDecoder:
    """Decodes every point of one register request in one pass (compiled once per request)."""

    __slots__ = (
        "_finishers",
        "_names",
        "_pack",
        "_raw",
        "_readings",
        "_shuffle",
        "_unpack",
        "count",
    )

    def __init__(self, count: int, points: Sequence[tuple[str, int, PointCodec]]) -> None:
        """``points``: (name, offset in registers from the request's start, codec)."""
        self.count = count
        self._pack = struct.Struct(f">{count}H").pack
        indices: list[int] = []
        codes = []
        for _, offset, codec in points:
            indices.extend(2 * offset + p for p in codec.perm)
            codes.append(codec.code)
        identity = indices == list(range(2 * count))
        self._shuffle = None if identity else operator.itemgetter(*indices)
        self._unpack = struct.Struct(">" + "".join(codes)).unpack
        self._names = tuple(name for name, _, _ in points)
        self._finishers = tuple(codec.finish for _, _, codec in points)
        # The last raw value of each point and its Reading: most process values change far
        # less often than they are polled, and a Reading is immutable, so an unchanged raw
        # value reuses its Reading instead of building (and shaping) a new one.
        self._raw: list[object] = [_NEVER] * len(points)
        self._readings: list[Reading] = [_UNREAD] * len(points)

    def decode(self, registers: Sequence[int], out: dict[str, Reading]) -> None:
        raw = self._pack(*registers)
        if self._shuffle is not None:
            raw = bytes(self._shuffle(raw))
        last, readings = self._raw, self._readings
        for i, (name, finish, value) in enumerate(
            zip(self._names, self._finishers, self._unpack(raw), strict=True)
        ):
            if value != last[i]:
                last[i] = value
                readings[i] = Reading(value) if finish is None else finish(value)
            out[name] = readings[i]


class BitDecoder:
    """Decodes the points of one coil or discrete-input request."""

    __slots__ = ("_get", "_names", "count")

    def __init__(self, count: int, points: Sequence[tuple[str, int]]) -> None:
        """``points``: (name, offset in bits from the request's start)."""
        self.count = count
        self._names = tuple(name for name, _ in points)
        offsets = [offset for _, offset in points]
        single = len(offsets) == 1
        getter = operator.itemgetter(*offsets)
        self._get: Callable[[Sequence[bool]], Sequence[bool]] = (
            (lambda bits: (getter(bits),)) if single else getter
        )

    def decode(self, bits: Sequence[bool], out: dict[str, Reading]) -> None:
        for name, value in zip(self._names, self._get(bits), strict=True):
            out[name] = Reading(bool(value))


class _Never:
    """Equal to nothing, so the first value of every point is decoded."""

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = object.__hash__


_NEVER = _Never()
_UNREAD = Reading.bad("not read yet")


def _text(raw: bytes) -> Reading:
    text = raw.split(b"\0", 1)[0].rstrip(b" ")
    try:
        return Reading(text.decode())
    except UnicodeDecodeError:
        return Reading.bad(f"not UTF-8 text: {raw!r}")


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"expected true or false, got {value!r}")


def _register_value(current: Sequence[int], perm: tuple[int, ...], code: str) -> int:
    wire = struct.pack(f">{len(current)}H", *current)
    value: int = struct.unpack(">" + code, bytes(wire[p] for p in perm))[0]
    if code in ("h", "i", "q"):  # bit maps work on the unsigned bit pattern
        value &= (1 << (8 * len(wire))) - 1
    return value
