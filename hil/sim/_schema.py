"""The simulator file: simulated devices, their points, and how each point's value behaves.

    name: pump-station                  # control service org.plantd.sim.pump-station
    tick: 100ms                         # how often behaviours and the plant model step
    devices:
      - name: plc
        transport: tcp                  # tcp | rtu-over-tcp | rtu (a pseudo-terminal)
        port: 15020                     # 0: any free port (printed at start)
        units:
          - unit: 1
            points:
              - {name: pump_run, table: coil, address: 0, value: true}
              - {name: speed_setpoint, table: holding, address: 0, scale: 0.1, value: 45}
              - name: pump_speed
                table: input
                address: 0
                scale: 0.1
                follow: {target: "speed_setpoint if pump_run else 0", time_constant: 2s}

A point without ``table``/``address`` is an internal variable of the plant model. A point has at
most one behaviour (``ramp``, ``sine``, ``random_walk``, ``steps``, ``expr``, ``integrate``,
``follow``); without one it holds ``value`` until a client writes it. ``docs/hil.md`` lists every
key. Rules that involve the whole file (names in expressions, overlapping registers, cycles) are
checked in :mod:`hil.sim._checks`; everything is read with :func:`plantd.config.parse_dataclass`,
so each problem names file, line and key. The Modbus vocabulary (tables, types, orders, how many
registers a type spans) is the driver's own, from :mod:`plantd_drivers.modbus`: a simulated
device and the driver cannot disagree on what a file may say.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from plantd_drivers.modbus import BIT_TABLES, Order, Table, ValueType, register_count

from hil.sim._expr import VARIABLES, ExprError, parse_expr
from plantd.config import INTERNAL, Check, Duration, Ge, Gt, KeyPath, Le

__all__ = [
    "BEHAVIOURS",
    "Follow",
    "Integrate",
    "OnWrite",
    "Ramp",
    "RandomWalk",
    "SimDevice",
    "SimFile",
    "SimPoint",
    "SimUnit",
    "Sine",
    "Steps",
    "Transport",
]

Transport = Literal["tcp", "rtu", "rtu-over-tcp"]
Scalar = float | int | bool | str
BEHAVIOURS = ("ramp", "sine", "random_walk", "steps", "expr", "integrate", "follow")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_SIM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*", re.ASCII)


def _identifier(name: str) -> str | None:
    if not _IDENTIFIER.fullmatch(name):
        return f"expected letters, digits and '_' (a name expressions can use), got {name!r}"
    if name in VARIABLES:
        return f"{name!r} is a variable of expressions ({', '.join(sorted(VARIABLES))})"
    return None


def _sim_name(name: str) -> str | None:
    ok = _SIM_NAME.fullmatch(name)
    return None if ok else f"expected letters, digits, '-' and '_', got {name!r}"


def _expression(text: str) -> str | None:
    try:
        parse_expr(text)
    except ExprError as exc:
        return str(exc)
    return None


def _nonzero(value: float) -> str | None:
    return None if value != 0 else "expected a number other than 0"


Expression = Annotated[str, Check(_expression)]


@dataclass(frozen=True, kw_only=True)
class Ramp:
    """From ``start`` to ``end`` over ``period``: again (``repeat``), back (``bounce``), or stop
    at ``end`` (``once``)."""

    start: float = 0.0
    end: float
    period: Annotated[float, Duration, Gt(0)]
    mode: Literal["repeat", "bounce", "once"] = "repeat"


@dataclass(frozen=True, kw_only=True)
class Sine:
    mean: float = 0.0
    amplitude: float = 1.0
    period: Annotated[float, Duration, Gt(0)]
    phase: float = 0.0
    """Degrees."""


@dataclass(frozen=True, kw_only=True)
class RandomWalk:
    """Moves at most ``step`` per second, at random, and stays within ``[min, max]``."""

    start: float | None = None
    step: Annotated[float, Gt(0)]
    min: float
    max: float

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if self.min >= self.max:
            yield ("max",), f"max {self.max:g} must be above min {self.min:g}"
        if self.start is not None and not self.min <= self.start <= self.max:
            yield ("start",), f"start {self.start:g} is outside [{self.min:g}, {self.max:g}]"


@dataclass(frozen=True, kw_only=True)
class Steps:
    """``values`` in turn, each for ``every`` seconds; then again (``repeat``) or the last."""

    values: tuple[Scalar, ...]
    every: Annotated[float, Duration, Gt(0)]
    repeat: bool = True

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if not self.values:
            yield ("values",), "expected at least one value"


@dataclass(frozen=True, kw_only=True)
class Integrate:
    """``value += rate × dt`` each step (a tank level from flows), kept within min/max."""

    rate: Expression
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True, kw_only=True)
class Follow:
    """Approaches ``target`` as a first-order lag (a motor speed after its setpoint)."""

    target: Expression
    time_constant: Annotated[float, Duration, Gt(0)]
    rate_limit: Annotated[float, Gt(0)] | None = None
    """Largest change per second, if any (a ramp-limited drive)."""


@dataclass(frozen=True, kw_only=True)
class OnWrite:
    """When a client writes the point, set point ``set`` to ``to`` (``value``: what was written)."""

    set: str
    to: Scalar

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if isinstance(self.to, str) and (problem := _expression(self.to)) is not None:
            yield ("to",), problem


@dataclass(frozen=True, kw_only=True)
class SimPoint:
    name: Annotated[str, Check(_identifier)]
    description: str = ""
    table: Table | None = None
    """None (and no address): an internal variable of the plant model."""
    address: Annotated[int, Ge(0), Le(65535)] | None = None
    type: ValueType | None = None
    order: Order | None = None
    bit: Annotated[int, Ge(0), Le(15)] | None = None
    length: Annotated[int, Ge(1), Le(246)] | None = None
    scale: Annotated[float, Check(_nonzero)] = 1.0
    offset: float = 0.0
    value: Scalar | None = None
    """The value at start and after a restart (default 0, false or empty text)."""
    ramp: Ramp | None = None
    sine: Sine | None = None
    random_walk: RandomWalk | None = None
    steps: Steps | None = None
    expr: Expression | None = None
    integrate: Integrate | None = None
    follow: Follow | None = None
    on_write: tuple[OnWrite, ...] = ()

    @property
    def value_type(self) -> ValueType | None:
        """The type on the wire (None for an internal point without one)."""
        if self.type is not None:
            return self.type
        if self.table is None:
            return None
        return "bool" if self.table in BIT_TABLES or self.bit is not None else "uint16"

    @property
    def behaviour(self) -> str | None:
        present = [name for name in BEHAVIOURS if getattr(self, name) is not None]
        return present[0] if present else None

    def size(self) -> int:
        """Registers (or bits) the point spans."""
        kind = self.value_type
        if kind is None or self.table in BIT_TABLES or self.bit is not None:
            return 1
        # A string without length is reported by cross_check; until then it spans one register.
        return register_count(kind, self.length or 1)

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        present = [name for name in BEHAVIOURS if getattr(self, name) is not None]
        if len(present) > 1:
            yield (present[1],), f"a point has one behaviour; this one has {' and '.join(present)}"
        if (self.table is None) != (self.address is None):
            missing = "address" if self.address is None else "table"
            yield (missing,), "a point on the wire needs table and address (neither: internal)"
        kind = self.value_type
        if self.table in BIT_TABLES:
            for key in ("order", "bit", "length"):
                if getattr(self, key) is not None:
                    yield (key,), f"a {self.table} is a single bit: {key} does not apply"
            if kind != "bool":
                yield ("type",), f"a {self.table} is a single bit: type is bool"
        if self.bit is not None and kind != "bool":
            yield ("bit",), f"bit holds a bool in one bit of a register; type is {kind}"
        if kind == "string" and self.length is None:
            yield ("length",), "type string needs length (its size in bytes, 2 per register)"
        if self.length is not None and kind != "string":
            yield ("length",), "length is for type string only"
        if (self.scale != 1 or self.offset != 0) and kind in ("bool", "string"):
            yield ("scale",), f"scale and offset are for numbers; this point is {kind}"


@dataclass(frozen=True, kw_only=True)
class SimUnit:
    unit: Annotated[int, Ge(0), Le(255)] = 1
    max_registers: Annotated[int, Ge(1), Le(125)] = 125
    """Longer reads are refused with exception 2, as by devices that serve fewer at once."""
    strict_map: bool = False
    """Serve only the points' own addresses (holes answer exception 2). By default the holes
    between points (up to 125 registers) read as 0, as most devices answer."""
    points: tuple[SimPoint, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SimDevice:
    name: Annotated[str, Check(_identifier)]
    description: str = ""
    transport: Transport = "tcp"
    host: str = "127.0.0.1"
    port: Annotated[int, Ge(0), Le(65535)] = 0
    """TCP port; 0 takes any free one (printed at start)."""
    link: str | None = None
    """For rtu: a symlink to the pseudo-terminal, so its name is stable (relative paths are
    relative to the run directory)."""
    order: Order = "ABCD"
    """Default byte/word order of the device's multi-register values."""
    retain: bool = False
    """Written values survive a restart (a PLC with retentive memory)."""
    units: tuple[SimUnit, ...] = ()

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if self.transport == "rtu" and self.port:
            yield ("port",), "port is for transports tcp and rtu-over-tcp; this one is rtu"
        if self.transport != "rtu" and self.link is not None:
            yield (
                ("link",),
                f"link names a pseudo-terminal, for transport rtu, not {self.transport}",
            )
        if not self.units:
            yield ("units",), "a device needs at least one unit"


@dataclass(frozen=True, kw_only=True)
class SimFile:
    name: Annotated[str, Check(_sim_name)] | None = None
    """Default: the file's name without .yaml."""
    description: str = ""
    tick: Annotated[float, Duration, Gt(0), Le(10)] = 0.1
    seed: int = 0
    devices: tuple[SimDevice, ...] = ()
    source: Path | None = field(default=None, metadata=INTERNAL)

    @property
    def sim_name(self) -> str:
        return self.name or (self.source.stem if self.source else "sim")

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        from hil.sim._checks import check_file

        yield from check_file(self)
