"""``ModbusDriver``: the plantd driver door (``open``/``read``/``write``/``status``/``close``).

One driver instance owns one :class:`Line` (one connection) and a :class:`GroupReader` per group.
``read(group)`` may be called by one task per group at the same time; the line serialises what
goes over the wire. Errors at this edge, as the runtime expects them:

- ``DeviceUnavailable``: no connection, or no unit of the connection answers;
- ``DeviceFault``: the device refused (every request of a group, or a write);
- ``ValueError`` from ``write``: the value does not fit the point, or the point is not writable;
- everything else about the device goes into the ``Reading`` of the points it concerns.

Writes encode with the same :class:`PointCodec` that decodes reads: FC 5 for a coil, FC 6 for a
one-register value, FC 16 for wider ones (FC 15/16 always with ``always_write_multiple``). A
point that is one bit of a register, or a bit map, is read, changed and written back while the
line is held, so no other request of this driver comes between. With ``read_back: true`` the
registers are read again and compared with what was written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

from plantd.bus import SampleValue
from plantd.errors import DeviceFault, UsageError
from plantd.module import ModuleConfig
from plantd_drivers.modbus._codec import PointCodec
from plantd_drivers.modbus._config import ModbusModule, ModbusPoint, point_table
from plantd_drivers.modbus._group import GroupReader, build_codec
from plantd_drivers.modbus._line import Line, UnitDown
from plantd_drivers.modbus._planner import Learned
from plantd_drivers.modbus._transport import BadAnswer, Refused, Transport
from plantd_drivers.modbus._types import FUNCTION_OF_TABLE, describe_exception

__all__ = ["ModbusDriver"]


class ModbusDriver:
    """The ``modbus`` driver: registers and bits of Modbus devices, polled, as typed points.

    Config (:class:`ModbusModule`): ``connection`` is one TCP device or gateway, or one serial
    line (``transport: tcp | rtu | rtu-over-tcp``, ``host``/``port`` or ``device``, serial
    settings, ``timeout``, ``retries``, request sizes, the default ``order``); each group reads
    one ``unit`` id, by default from one ``table``, and its points give an ``address`` and a
    ``type`` with scale, offset, clamp, enum or bits (see :mod:`plantd_drivers.modbus._config`).

    - read: as few requests as the device allows (a merged request it refuses is split, and
      the cut remembered), each point decoded; per-point problems go in its Reading.
    - write: the point's function code (5, 6, 15 or 16), read-modify-write for a bit or a bit
      map, an optional read-back compared with what was written.
    - stream: none; every group is polled.
    """

    config_type: ClassVar[type[ModuleConfig]] = ModbusModule

    def __init__(self, config: ModbusModule, *, transport: Transport | None = None) -> None:
        """``transport`` replaces the real connection (tests, simulators); by default it
        follows ``connection.transport``. A relative serial ``device`` is relative to the
        module file."""
        if config.connection.device is not None:
            device = config.resolve_path(config.connection.device)
            config = dataclasses.replace(
                config, connection=dataclasses.replace(config.connection, device=device)
            )
        self.config = config
        self.learned = Learned()
        self.line = Line(config.connection, {group.unit for group in config.groups}, transport)
        self.readers = {
            group.name: GroupReader(group, config.connection, self.learned)
            for group in config.groups
        }
        self._targets: dict[str, _Target] = {}
        for group in config.groups:
            for point in group.points:
                codec = build_codec(point, group, config.connection)
                table = point_table(point, group)
                self._targets[point.name] = _Target(point, group.unit, table, codec)
        self.writes = 0

    def observe_requests(self, observe: Callable[[float], None]) -> None:
        """Call ``observe`` with the seconds of every attempt put on the line (the runtime's
        request-time metric)."""
        self.line.observe = observe

    async def open(self) -> None:
        """Connect the line (DeviceUnavailable if it cannot)."""
        await self.line.open()

    async def close(self) -> None:
        """Close the line. Idempotent."""
        await self.line.close()

    async def read(self, group: Any) -> dict[str, Any]:
        """Every point of ``group``, decoded, as ``{name: Reading}``: DeviceUnavailable if
        no unit of the line answers, DeviceFault if the device refuses every request of the
        group; UsageError for a group not in the module."""
        reader = self.readers.get(getattr(group, "name", None))  # type: ignore[arg-type]
        if reader is None:
            raise UsageError(f"module {self.config.name!r} has no group {group!r}")
        return await reader.read(self.line)

    async def write(self, point: Any, value: Any) -> SampleValue:
        """Encode ``value`` and write it to ``point``'s unit while the line is held;
        answers the value as written (decoded back). ValueError for a value that does not fit
        or a point that is not writable, DeviceFault if the device refuses or (with
        ``read_back``) did not keep the value."""
        target = self._targets.get(getattr(point, "name", ""))
        if target is None:
            raise UsageError(f"module {self.config.name!r} has no point {point!r}")
        problem = target.point.check_write(value)
        if problem is not None:
            raise ValueError(problem)
        codec = target.codec
        if codec.needs_current():
            codec.encode(value, [0] * codec.registers)  # refuse a bad value before any I/O
            registers = None
        else:
            registers = codec.encode(value)
        exchange = _Write(target, value, registers, self.config.connection.always_write_multiple)
        try:
            written, back = await self.line.request(target.unit, exchange)
        except Refused as exc:
            where = f"FC {exchange.function} at {target.point.address}"
            raise DeviceFault(
                f"unit {target.unit} refused writing {target.point.name!r} ({where}): "
                f"{describe_exception(exc.code)}"
            ) from None
        except BadAnswer as exc:
            raise DeviceFault(f"writing {target.point.name!r}: {exc}") from None
        except UnitDown as exc:
            raise DeviceFault(f"writing {target.point.name!r}: {exc}; not written") from None
        self.writes += 1
        value_now = _decoded(codec, written)
        if back is not None and list(back[: len(written)]) != written:
            raise DeviceFault(
                f"read-back of {target.point.name!r} after writing {value_now!r} gave "
                f"{_decoded(codec, back[: len(written)])!r}: the device did not keep the value "
                "(local/manual mode, a limit of its own, or another master writing it?)"
            )
        return value_now

    def status(self) -> dict[str, Any]:
        """The line's figures, writes done, requests per group cycle, addresses held back
        after refusals, and the cuts learned between requests."""
        return {
            **self.line.status(),
            "writes": self.writes,
            "requests_per_cycle": {name: len(r.plan()) for name, r in self.readers.items()},
            "held_back": [
                held
                for reader in self.readers.values()
                for held in reader.refusals.status(reader.unit, self.line.clock())
            ],
            "learned_cuts": {
                f"{unit}/{table}": list(cuts) for (unit, table), cuts in self.learned.cuts.items()
            },
        }


class _Target:
    __slots__ = ("codec", "point", "table", "unit")

    def __init__(self, point: ModbusPoint, unit: int, table: str, codec: PointCodec) -> None:
        self.point = point
        self.unit = unit
        self.table = table
        self.codec = codec


class _Write:
    """One write as the line's operation: (read,) encode, write, (read back)."""

    def __init__(
        self, target: _Target, value: Any, registers: list[int] | None, multiple: bool
    ) -> None:
        self.target = target
        self.value = value
        self.registers = registers
        coil = target.table == "coil"
        single = coil or target.codec.registers == 1
        self.function = (15 if coil else 16) if multiple or not single else (5 if coil else 6)
        self.read_function = FUNCTION_OF_TABLE["coil" if coil else "holding"]

    async def __call__(self, transport: Transport) -> tuple[list[int], list[int] | None]:
        target, codec = self.target, self.target.codec
        unit, address, size = target.unit, target.point.address, codec.registers
        registers = self.registers
        if registers is None:
            current = await transport.read(unit, 3, address, size)
            registers = codec.encode(self.value, current)
        await transport.write(unit, self.function, address, registers)
        if not target.point.read_back:
            return registers, None
        back = await transport.read(unit, self.read_function, address, size)
        return registers, [int(v) for v in back[:size]]


def _decoded(codec: PointCodec, registers: list[int]) -> SampleValue:
    if codec.bit_table:
        return bool(registers[0])
    return codec.decode(registers).value
