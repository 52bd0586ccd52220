"""The Modbus module file: one connection (a TCP device, a gateway or a serial line), groups of
points polled from one unit id each.

    driver: modbus
    connection:
      transport: rtu                 # tcp | rtu | rtu-over-tcp
      device: /dev/ttyUSB0
      baudrate: 9600
      parity: none
      order: CDAB                    # default byte/word order of multi-register values
    groups:
      - name: meter
        unit: 3
        table: input                 # coil | discrete | holding | input (FC 1 | 2 | 3 | 4)
        interval: 1s
        points:
          - {name: voltage_l1, address: 0, type: float32}
          - {name: energy, address: 100, type: uint32, scale: 0.01}

Every rule that involves several keys is checked here, once, with the key path of the culprit,
so the driver never meets a point it cannot read. ``docs/drivers/modbus.md`` lists every key.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from plantd.config import Check, Duration, Ge, Gt, KeyPath, Le
from plantd.module import GroupConfig, ModuleConfig, PointConfig
from plantd_drivers.modbus._types import (
    BIT_TABLES,
    Order,
    Table,
    ValueType,
    register_count,
    type_range,
)

__all__ = [
    "Clamp",
    "ModbusConnection",
    "ModbusGroup",
    "ModbusModule",
    "ModbusPoint",
    "point_order",
    "point_table",
    "point_type",
]

Transport = Literal["tcp", "rtu", "rtu-over-tcp"]
_ENUM_TYPES = frozenset({"int16", "uint16", "int32", "uint32", "int64", "uint64"})
_BITS_TYPES = frozenset({"uint16", "uint32", "uint64"})


def _nonzero(value: float) -> str | None:
    return None if value != 0 else "expected a number other than 0 (values are multiplied by it)"


@dataclass(frozen=True, kw_only=True)
class Clamp:
    """Read values outside ``[min, max]`` are published as the bound, with quality uncertain."""

    min: float | None = None
    max: float | None = None

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if self.min is not None and self.max is not None and self.min > self.max:
            yield ("min",), f"min {self.min:g} is above max {self.max:g}"


@dataclass(frozen=True, kw_only=True)
class ModbusConnection:
    transport: Transport = "tcp"
    host: str | None = None
    port: Annotated[int, Ge(1), Le(65535)] = 502
    device: str | None = None
    """Serial device for ``rtu``, e.g. ``/dev/ttyUSB0`` or ``/dev/serial/by-id/…``."""
    baudrate: Annotated[int, Ge(300), Le(4_000_000)] = 19200
    parity: Literal["none", "even", "odd"] = "even"
    stopbits: Literal[1, 2] = 1
    timeout: Annotated[float, Duration, Gt(0)] = 1.0
    """How long to wait for each answer."""
    retries: Annotated[int, Ge(0), Le(10)] = 1
    """Attempts after the first before a unit counts as not answering."""
    inter_frame_delay: Annotated[float, Duration, Ge(0), Le(1)] | None = None
    """Silence between two requests; null: 3.5 characters on a serial line, none over TCP."""
    max_registers: Annotated[int, Ge(1), Le(125)] = 125
    max_bits: Annotated[int, Ge(1), Le(2000)] = 2000
    max_gap: Annotated[int, Ge(0), Le(124)] = 16
    """Unused registers a merged read may span between two points."""
    max_bit_gap: Annotated[int, Ge(0), Le(1999)] = 64
    order: Order = "ABCD"
    always_write_multiple: bool = False
    """Write with FC 15/16 even for one coil/register (for devices without FC 5/6)."""
    backoff_initial: Annotated[float, Duration, Gt(0)] = 0.5
    backoff_max: Annotated[float, Duration, Gt(0)] = 30.0

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        over_tcp = self.transport in ("tcp", "rtu-over-tcp")
        if over_tcp and not self.host:
            yield ("host",), f"transport {self.transport} needs a host (name or IP address)"
        if over_tcp and self.device:
            yield ("device",), f"device is for transport rtu; transport is {self.transport}"
        if self.transport == "rtu" and not self.device:
            yield ("device",), "transport rtu needs a serial device, e.g. /dev/ttyUSB0"
        if self.transport == "rtu" and self.host:
            yield ("host",), "host is for transports tcp and rtu-over-tcp; transport is rtu"
        if self.backoff_initial > self.backoff_max:
            yield (
                ("backoff_initial",),
                f"must not exceed backoff_max ({self.backoff_max:g} s), "
                f"got {self.backoff_initial:g} s",
            )

    def frame_delay(self) -> float:
        """The silence kept between two requests on this connection, in seconds."""
        if self.inter_frame_delay is not None:
            return self.inter_frame_delay
        if self.transport != "rtu":
            return 0.0
        # Modbus over serial line §2.5.1.1: 3.5 characters of 11 bits, 1.75 ms above 19200 baud
        return 3.5 * 11 / self.baudrate if self.baudrate <= 19200 else 0.00175


@dataclass(frozen=True, kw_only=True)
class ModbusPoint(PointConfig):
    address: Annotated[int, Ge(0), Le(65535)]
    """Protocol address, from 0 (register 40001 of a manual is holding address 0)."""
    table: Table | None = None
    type: ValueType | None = None
    order: Order | None = None
    bit: Annotated[int, Ge(0), Le(15)] | None = None
    length: Annotated[int, Ge(1), Le(246)] | None = None
    """Bytes of a string (two per register)."""
    scale: Annotated[float, Check(_nonzero)] = 1.0
    offset: float = 0.0
    clamp: Clamp | None = None
    enum: Mapping[str, int] | None = None
    bits: Mapping[str, Annotated[int, Ge(0), Le(63)]] | None = None
    read_back: bool = False

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        yield from super().cross_check()
        kind = self.type or ("bool" if self.bit is not None else None)
        if kind == "string" and self.length is None:
            yield ("length",), "type string needs length (its size in bytes, 2 per register)"
        if self.length is not None and kind != "string":
            yield ("length",), "length is for type string only"
        if self.bit is not None and kind not in (None, "bool"):
            yield ("bit",), f"bit picks one bit of a register as a bool; type is {kind}"
        if self.read_back and not self.writable:
            yield ("read_back",), "read_back checks writes, and this point is not writable"
        if self.enum is not None and self.bits is not None:
            yield ("bits",), "a point has either enum or bits, not both"
        yield from self._check_enum(kind or "uint16")
        yield from self._check_bits(kind or "uint16")
        numeric = kind not in ("bool", "string") and self.enum is None and self.bits is None
        shaped = (self.scale != 1, "scale"), (self.offset != 0, "offset"), (self.clamp, "clamp")
        for present, key in shaped:
            if present and not numeric:
                what = "enum" if self.enum is not None else "bits" if self.bits else kind
                yield (key,), f"{key} is for numbers; this point is {what}"

    def _check_enum(self, kind: str) -> Iterator[tuple[KeyPath, str]]:
        if self.enum is None:
            return
        if kind not in _ENUM_TYPES:
            yield ("enum",), f"enum needs an integer type (int16 … uint64, not 48-bit), not {kind}"
            return
        low, high = type_range(kind)  # type: ignore[arg-type]  # checked just above
        seen: dict[int, str] = {}
        for label, number in self.enum.items():
            if not low <= number <= high:
                yield ("enum", label), f"{number} does not fit a {kind} ({low}…{high})"
            if number in seen:
                yield ("enum", label), f"{number} is also {seen[number]!r}; each needs its own"
            seen.setdefault(number, label)

    def _check_bits(self, kind: str) -> Iterator[tuple[KeyPath, str]]:
        if self.bits is None:
            return
        if kind not in _BITS_TYPES:
            yield ("bits",), f"bits needs type uint16, uint32 or uint64, not {kind}"
            return
        width = 16 * register_count(kind)  # type: ignore[arg-type]  # checked just above
        for name, bit in self.bits.items():
            if bit >= width:
                yield ("bits", name), f"bit {bit} is beyond the {width} bits of a {kind}"


@dataclass(frozen=True, kw_only=True)
class ModbusGroup(GroupConfig):
    unit: Annotated[int, Ge(0), Le(255)] = 1
    """Unit id (slave address) every point of the group is read from."""
    table: Table = "holding"
    order: Order | None = None
    max_registers: Annotated[int, Ge(1), Le(125)] | None = None
    max_gap: Annotated[int, Ge(0), Le(124)] | None = None
    points: tuple[ModbusPoint, ...] = ()

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        for p, point in enumerate(self.points):
            table = point_table(point, self)
            where: KeyPath = ("points", p)
            if point.writable and table in ("discrete", "input"):
                yield (
                    (*where, "writable"),
                    f"{table} tables are read-only in Modbus; write to a coil or holding register",
                )
            if table in BIT_TABLES:
                for key in ("type", "order", "bit", "length", "clamp", "enum", "bits"):
                    if getattr(point, key) is not None and (key, point.type) != ("type", "bool"):
                        yield (*where, key), f"a {table} is a single bit: {key} does not apply"
                for key, default in (("scale", 1.0), ("offset", 0.0)):
                    if getattr(point, key) != default:
                        yield (*where, key), f"a {table} is a single bit: {key} does not apply"
                continue
            size = register_count(point_type(point, table), point.length or 2)
            if point.address + size > 65536:
                yield (*where, "address"), f"{size} registers from {point.address} pass 65535"


@dataclass(frozen=True, kw_only=True)
class ModbusModule(ModuleConfig):
    connection: ModbusConnection
    groups: tuple[ModbusGroup, ...] = ()

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        yield from super().cross_check()
        serial = self.connection.transport != "tcp"
        for g, group in enumerate(self.groups):
            if serial and not 1 <= group.unit <= 247:
                yield (
                    ("groups", g, "unit"),
                    f"on a serial line unit ids run from 1 to 247, got {group.unit}",
                )
            limit = group.max_registers or self.connection.max_registers
            for p, point in enumerate(group.points):
                table = point_table(point, group)
                if table in BIT_TABLES:
                    continue
                size = register_count(point_type(point, table), point.length or 2)
                if size > limit:
                    yield (
                        ("groups", g, "points", p, "type"),
                        f"the point spans {size} registers; max_registers is {limit}",
                    )


def point_table(point: ModbusPoint, group: ModbusGroup) -> Table:
    """The table a point is read from: its own ``table``, else its group's."""
    return point.table or group.table


def point_type(point: ModbusPoint, table: Table) -> ValueType:
    """The point's value type: its own ``type``, else ``bool`` for a bit (a coil, a discrete
    input, a ``bit`` of a register), else ``uint16``."""
    if point.type is not None:
        return point.type
    return "bool" if table in BIT_TABLES or point.bit is not None else "uint16"


def point_order(point: ModbusPoint, group: ModbusGroup, connection: ModbusConnection) -> Order:
    """The byte/word order of a point's value: its own, else its group's, else the
    connection's."""
    return point.order or group.order or connection.order
