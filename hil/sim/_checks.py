"""Rules of a simulator file that involve more than one point, and how names are resolved.

- device names are unique, and so are point names within a device and unit ids within it;
- on a serial line (rtu, rtu-over-tcp) unit ids run from 1 to 247;
- points of one unit and table do not share registers (bit points may share a register with
  other bit points, never the same bit);
- every name an expression uses is a point: bare (the same device first, then the only point of
  that name in the file) or ``device.point``;
- points computed by ``expr`` do not depend on themselves in a loop (``integrate`` and
  ``follow`` carry state from step to step, so a loop through them is a feedback, not a cycle);
- every register a point spans exists (the last address is 65535), and a point fits in one read
  of its unit (``max_registers``).

:func:`fault_misfits` says whether a fault fits a device (its unit exists; ``bad-crc`` needs an
RTU framing, ``drop`` a TCP connection), for scenario files before anything runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from hil.sim._expr import parse_expr
from plantd.config import KeyPath, did_you_mean

if TYPE_CHECKING:
    from hil.sim._faults import Fault, Heal
    from hil.sim._schema import SimDevice, SimFile, SimPoint

__all__ = ["Names", "check_file", "expressions_of", "fault_misfits", "heal_misfits"]

_LAST_ADDRESS = 65535


class Names:
    """Point keys (``device.point``) of a file, and what a name in an expression refers to."""

    def __init__(self, file: SimFile) -> None:
        self.by_device: dict[str, list[str]] = {
            device.name: [point.name for unit in device.units for point in unit.points]
            for device in file.devices
        }

    def resolve(self, device: str, name: str) -> str:
        """The key ``name`` means in a point of ``device``; :class:`LookupError` says why not."""
        if "." in name:
            owner, point = name.split(".", 1)
            if owner not in self.by_device:
                hint = did_you_mean(owner, self.by_device)
                raise LookupError(f"{name!r}: no device {owner!r}{hint}")
            if point not in self.by_device[owner]:
                hint = did_you_mean(point, self.by_device[owner])
                raise LookupError(f"{name!r}: device {owner!r} has no point {point!r}{hint}")
            return name
        if name in self.by_device.get(device, ()):
            return f"{device}.{name}"
        owners = [owner for owner, points in self.by_device.items() if name in points]
        if len(owners) == 1:
            return f"{owners[0]}.{name}"
        if owners:
            choices = " or ".join(f"{owner}.{name}" for owner in owners)
            raise LookupError(f"{name!r} is ambiguous: write {choices}")
        every = [point for points in self.by_device.values() for point in points]
        raise LookupError(f"no point {name!r}{did_you_mean(name, every)}")


def expressions_of(point: SimPoint) -> Iterator[tuple[KeyPath, str]]:
    """(key path relative to the point, expression text) of every expression the point has."""
    if point.expr is not None:
        yield ("expr",), point.expr
    if point.integrate is not None:
        yield ("integrate", "rate"), point.integrate.rate
    if point.follow is not None:
        yield ("follow", "target"), point.follow.target
    for index, handler in enumerate(point.on_write):
        if isinstance(handler.to, str):
            yield ("on_write", index, "to"), handler.to


def check_file(file: SimFile) -> Iterator[tuple[KeyPath, str]]:
    names = Names(file)
    devices: dict[str, int] = {}
    expr_deps: dict[str, tuple[KeyPath, set[str]]] = {}
    for d, device in enumerate(file.devices):
        where: KeyPath = ("devices", d)
        if device.name in devices:
            yield (*where, "name"), f"device name {device.name!r} is used twice"
        devices.setdefault(device.name, d)
        yield from _check_device(file, d, names, expr_deps)
    yield from _check_cycles(expr_deps)


def _check_device(
    file: SimFile, d: int, names: Names, expr_deps: dict[str, tuple[KeyPath, set[str]]]
) -> Iterator[tuple[KeyPath, str]]:
    device = file.devices[d]
    seen_points: set[str] = set()
    seen_units: set[int] = set()
    for u, unit in enumerate(device.units):
        where: KeyPath = ("devices", d, "units", u)
        if unit.unit in seen_units:
            yield (*where, "unit"), f"unit {unit.unit} is used twice in device {device.name!r}"
        seen_units.add(unit.unit)
        if device.transport != "tcp" and not 1 <= unit.unit <= 247:
            yield (*where, "unit"), f"on a serial line unit ids run from 1 to 247, got {unit.unit}"
        yield from _check_overlaps(unit.points, where)
        yield from _check_extents(unit.points, unit.max_registers, where)
        for p, point in enumerate(unit.points):
            at: KeyPath = (*where, "points", p)
            if point.name in seen_points:
                yield (*at, "name"), f"point {point.name!r} is used twice in {device.name!r}"
            seen_points.add(point.name)
            for relative, text in expressions_of(point):
                deps: set[str] = set()
                for name in sorted(parse_expr(text).names):
                    try:
                        deps.add(names.resolve(device.name, name))
                    except LookupError as exc:
                        yield (*at, *relative), str(exc)
                if relative == ("expr",):
                    expr_deps[f"{device.name}.{point.name}"] = ((*at, "expr"), deps)
            for h, handler in enumerate(point.on_write):
                try:
                    names.resolve(device.name, handler.set)
                except LookupError as exc:
                    yield (*at, "on_write", h, "set"), str(exc)


def _check_extents(
    points: tuple[SimPoint, ...], max_registers: int, where: KeyPath
) -> Iterator[tuple[KeyPath, str]]:
    for p, point in enumerate(points):
        if point.table is None or point.address is None:
            continue
        size = point.size()
        last = point.address + size - 1
        at: KeyPath = (*where, "points", p, "address")
        if last > _LAST_ADDRESS:
            span = f"{point.table} {point.address} + {size} registers"
            yield at, f"{span} runs past the last address {_LAST_ADDRESS}"
        elif size > max_registers:
            most = f"its unit serves at most {max_registers} in one read (max_registers)"
            yield at, f"the point spans {size} registers; {most}"


def fault_misfits(device: SimDevice, fault: Fault) -> Iterator[tuple[KeyPath, str]]:
    """(key relative to the fault, why) for each way ``fault`` does not fit ``device``."""
    units = [unit.unit for unit in device.units]
    if fault.unit is not None and fault.unit not in units:
        yield ("unit",), _no_unit(device, fault.unit, units)
    if fault.fault == "bad-crc" and device.transport == "tcp":
        instead = "(garbage corrupts its answers instead)"
        yield ("fault",), f"bad-crc needs an RTU framing; {_speaks(device)} {instead}"
    if fault.fault == "drop" and device.transport == "rtu":
        yield ("fault",), f"{_speaks(device)}: there is no connection to drop"


def heal_misfits(device: SimDevice, heal: Heal) -> Iterator[tuple[KeyPath, str]]:
    units = [unit.unit for unit in device.units]
    if heal.unit is not None and heal.unit not in units:
        yield ("unit",), _no_unit(device, heal.unit, units)


def _speaks(device: SimDevice) -> str:
    if device.transport == "tcp":
        return f"device {device.name!r} speaks Modbus TCP"
    return f"device {device.name!r} is a serial line (rtu)"


def _no_unit(device: SimDevice, unit: int, units: list[int]) -> str:
    return f"device {device.name!r} has no unit {unit} (its units: {', '.join(map(str, units))})"


def _check_overlaps(points: tuple[SimPoint, ...], where: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    users: dict[tuple[str, int], list[tuple[int | None, str]]] = {}
    for p, point in enumerate(points):
        if point.table is None or point.address is None:
            continue
        for address in range(point.address, point.address + point.size()):
            others = users.setdefault((point.table, address), [])
            clash = next(
                (
                    name
                    for bit, name in others
                    if bit is None or point.bit is None or bit == point.bit
                ),
                None,
            )
            if clash is not None:
                yield (
                    (*where, "points", p, "address"),
                    f"{point.table} {address} is also point {clash!r}'s",
                )
                break
            others.append((point.bit, point.name))


def _check_cycles(deps: dict[str, tuple[KeyPath, set[str]]]) -> Iterator[tuple[KeyPath, str]]:
    state: dict[str, int] = {}  # 1: being visited, 2: done
    reported: set[str] = set()

    def visit(key: str, trail: list[str]) -> Iterator[tuple[KeyPath, str]]:
        state[key] = 1
        for dep in sorted(deps[key][1]):
            if dep not in deps:
                continue  # not an expr point: its value is there before the exprs run
            if state.get(dep) == 1 and key not in reported:
                loop = [*trail[trail.index(dep) :], dep] if dep in trail else [key, dep]
                reported.update(loop)
                yield deps[key][0], "expressions depend on each other: " + " → ".join(loop)
            elif dep not in state:
                yield from visit(dep, [*trail, dep])
        state[key] = 2

    for key in sorted(deps):
        if key not in state:
            yield from visit(key, [key])
