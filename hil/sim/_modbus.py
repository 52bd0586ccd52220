"""A simulated Modbus device bound to the plant model: points ↔ registers, and its server.

Each unit of a :class:`~hil.sim.SimDevice` becomes a :class:`hil.modbus.Device`; together they
answer behind one :class:`hil.modbus.Simulator` and one server (TCP, or RTU on a pseudo-terminal).
:meth:`ModbusBinding.show` writes point values into registers — in engineering units divided
back by ``scale``/``offset``, rounded to the raw step and saturated to the type's range — unless
the unit is *frozen* (a stuck device: it answers, its values do not move). A client's write
comes back through :attr:`hil.modbus.Device.on_write`: the points it touched are decoded and
handed to the plant, which runs their ``on_write`` handlers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from plantd_drivers.modbus import BIT_TABLES

from hil.modbus import (
    Device,
    Framing,
    PtyServer,
    Simulator,
    TcpServer,
    from_registers,
    to_registers,
)
from hil.modbus import Table as ModbusTable
from hil.sim._plant import Plant
from hil.sim._schema import SimDevice, SimPoint

__all__ = ["ModbusBinding", "decode_point", "encode_point"]

_FLOAT32_MAX = 3.4028234663852886e38
_RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int48": (-(2**47), 2**47 - 1),
    "uint48": (0, 2**48 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}


def encode_point(point: SimPoint, value: Any, order: str) -> list[int]:
    """The registers holding ``value`` (engineering units) for a register point."""
    kind = point.value_type
    assert kind is not None
    if kind == "string":
        length = point.length or 2
        text = str(value).encode()[:length].decode(errors="ignore")
        return to_registers("string", text, order, length=length)
    if kind == "bool":
        return to_registers("bool", bool(value), order)
    raw = (float(value) - point.offset) / point.scale
    if kind in ("float32", "float64"):
        if kind == "float32" and math.isfinite(raw) and abs(raw) > _FLOAT32_MAX:
            raw = math.copysign(math.inf, raw)
        return to_registers(kind, raw, order)
    low, high = _RANGES[kind]
    whole = 0 if not math.isfinite(raw) else min(max(round(raw), low), high)
    return to_registers(kind, whole, order)


def decode_point(point: SimPoint, registers: list[int], order: str) -> Any:
    """The value (engineering units) that ``registers`` hold for a register point."""
    kind = point.value_type
    assert kind is not None
    raw = from_registers(kind, registers, order)
    if kind in ("bool", "string") or (point.scale == 1 and point.offset == 0):
        return raw
    assert isinstance(raw, int | float)
    return raw * point.scale + point.offset


class ModbusBinding:
    def __init__(self, spec: SimDevice, plant: Plant, changed: Callable[[set[str]], None]) -> None:
        self.spec = spec
        self.plant = plant
        self.simulator = Simulator()
        self.server: TcpServer | PtyServer | None = None
        self.frozen: set[int] = set()
        """Units whose registers no longer follow the plant (they still answer)."""
        self.writes = 0
        """Writes clients made (each FC 5/6/15/16 request that was stored)."""
        self._changed = changed
        self._keys: dict[str, tuple[int, SimPoint]] = {}
        for unit in spec.units:
            device = Device(max_registers=unit.max_registers)
            _map_unit(device, unit.points, strict=unit.strict_map)
            device.on_write = partial(self._written, unit.unit)
            self.simulator.devices[unit.unit] = device
            for point in unit.points:
                if point.table is not None:
                    self._keys[f"{spec.name}.{point.name}"] = (unit.unit, point)
        self.show(self._keys)

    @property
    def keys(self) -> list[str]:
        return list(self._keys)

    def units(self) -> list[int]:
        return sorted(self.simulator.devices)

    def show(self, keys: Iterable[str]) -> None:
        """Put the plant's values of ``keys`` (those on this device) into registers."""
        for key in keys:
            found = self._keys.get(key)
            if found is None or found[0] in self.frozen:
                continue
            unit, point = found
            device = self.simulator.devices[unit]
            value = self.plant.values[key]
            assert point.table is not None
            assert point.address is not None
            if point.table in BIT_TABLES:
                device.bits[point.table][point.address] = bool(value)
            elif point.bit is not None:
                register = device.registers[point.table][point.address]
                mask = 1 << point.bit
                register = register | mask if value else register & ~mask
                device.registers[point.table][point.address] = register
            else:
                order = point.order or self.spec.order
                device.set_registers(point.table, point.address, encode_point(point, value, order))

    def unit_keys(self, unit: int | None) -> list[str]:
        return [key for key, (u, _) in self._keys.items() if unit is None or u == unit]

    async def start_server(self, *, run_dir: Path, port: int | None = None) -> None:
        spec = self.spec
        if spec.transport == "rtu":
            link = None
            if spec.link is not None:
                link = Path(spec.link) if Path(spec.link).is_absolute() else run_dir / spec.link
            self.server = PtyServer(self.simulator, link=link)
        else:
            framing: Framing = "mbap" if spec.transport == "tcp" else "rtu"
            chosen = spec.port if port is None else port
            self.server = TcpServer(self.simulator, host=spec.host, port=chosen, framing=framing)
        await self.server.start()

    def describe(self) -> dict[str, Any]:
        """Where clients reach the device, for people and for rigs that rewrite module files."""
        spec = self.spec
        where: dict[str, Any] = {"name": spec.name, "kind": "modbus", "transport": spec.transport}
        if isinstance(self.server, PtyServer):
            where["device"] = str(self.server.link or self.server.device)
            where["pty"] = self.server.device
        elif isinstance(self.server, TcpServer):
            where |= {"host": self.server.host, "port": self.server.port}
        where["units"] = self.units()
        return where

    def _written(self, unit: int, table: ModbusTable, address: int, count: int) -> None:
        self.writes += 1
        device = self.simulator.devices[unit]
        changed: set[str] = set()
        for key, (u, point) in self._keys.items():
            if u != unit or point.table != table or point.address is None:
                continue
            if point.address + point.size() <= address or point.address >= address + count:
                continue
            if table in BIT_TABLES:
                value: Any = device.bits[table][point.address]
            elif point.bit is not None:
                value = bool(device.registers[table][point.address] >> point.bit & 1)
            else:
                registers = device.get_registers(table, point.address, point.size())
                value = decode_point(point, registers, point.order or self.spec.order)
            changed |= self.plant.write(key, value)
        self._changed(changed)


def _map_unit(device: Device, points: tuple[SimPoint, ...], *, strict: bool) -> None:
    used: dict[str, set[int]] = {}
    for point in points:
        if point.table is not None and point.address is not None:
            span = range(point.address, point.address + point.size())
            used.setdefault(point.table, set()).update(span)
    for table, addresses in used.items():
        ordered = sorted(addresses)
        reach = 2000 if table in BIT_TABLES else 125
        start = previous = ordered[0]
        for address in ordered[1:]:
            if address - previous > (1 if strict else reach):
                device.map(_table(table), start, previous - start + 1)
                start = address
            previous = address
        device.map(_table(table), start, previous - start + 1)


def _table(name: str) -> ModbusTable:
    assert name in ("coil", "discrete", "holding", "input")
    return name  # type: ignore[return-value]  # checked just above
