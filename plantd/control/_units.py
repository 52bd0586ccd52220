"""Engineering-unit conversion for ``convert(x, "degC", "degF")`` in calculated points.

Each unit is a dimension plus an affine map to that dimension's SI unit:
``si = value * scale + offset``. Converting is going to SI and back, so any two units of one
dimension convert, and units of different dimensions never do. Only temperatures have an offset,
and the conversion is of an absolute temperature (20 degC -> 68 degF): a temperature
*difference* of 20 degC is 36 degF, which this table does not do.

Unit names are case-sensitive (``mbar`` is not ``Mbar``) and written in plain ASCII; a few
common spellings are aliases (``L`` for ``l``, ``°C`` for ``degC``). US gallons are used
(``gal``, ``gpm``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from plantd.config import did_you_mean
from plantd.errors import PlantdError

__all__ = ["UNITS", "Unit", "UnitError", "conversion_problem", "convert"]

_GALLON = 3.785411784e-3  # US liquid gallon, m3
_POUND = 0.45359237  # kg
_INCH = 0.0254  # m


class UnitError(PlantdError, ValueError):
    """An unknown unit, or two units that measure different things."""


@dataclass(frozen=True, slots=True)
class Unit:
    """``si = value * scale + offset`` in ``dimension``'s SI unit."""

    dimension: str
    scale: float
    offset: float = 0.0


def _table() -> dict[str, Unit]:
    table: dict[str, Unit] = {}

    def add(dimension: str, **units: float) -> None:
        for name, scale in units.items():
            table[name] = Unit(dimension, scale)

    table["K"] = Unit("temperature", 1.0)
    table["degC"] = Unit("temperature", 1.0, 273.15)
    table["degF"] = Unit("temperature", 5.0 / 9.0, 273.15 - 32.0 * 5.0 / 9.0)
    add("length", m=1.0, mm=1e-3, cm=1e-2, km=1e3, ft=12 * _INCH, **{"in": _INCH})
    add("volume", m3=1.0, l=1e-3, ml=1e-6, gal=_GALLON)
    add("time", s=1.0, ms=1e-3, min=60.0, h=3600.0, d=86400.0)
    add("pressure", Pa=1.0, kPa=1e3, MPa=1e6, bar=1e5, mbar=1e2, psi=_POUND * 9.80665 / _INCH**2)
    add("energy", J=1.0, kJ=1e3, MJ=1e6, Wh=3600.0, kWh=3.6e6, MWh=3.6e9)
    add("power", W=1.0, kW=1e3, MW=1e6)
    add("mass", kg=1.0, g=1e-3, t=1e3, lb=_POUND)
    flows = {"m3/s": 1.0, "m3/h": 1 / 3600, "l/s": 1e-3, "l/min": 1e-3 / 60, "l/h": 1e-3 / 3600}
    flows["gpm"] = _GALLON / 60
    add("volume flow", **flows)
    add("mass flow", **{"kg/s": 1.0, "kg/h": 1 / 3600, "t/h": 1e3 / 3600})
    aliases = {"L": "l", "°C": "degC", "°F": "degF", "L/s": "l/s", "L/min": "l/min"}
    aliases |= {"L/h": "l/h", "sec": "s"}
    for alias, name in aliases.items():
        table[alias] = table[name]
    return table


UNITS: Mapping[str, Unit] = MappingProxyType(_table())
"""Every unit ``convert`` knows, by name."""


def conversion_problem(from_unit: str, to_unit: str) -> str | None:
    """None if ``from_unit`` converts to ``to_unit``, else what is wrong."""
    for name in (from_unit, to_unit):
        if name not in UNITS:
            same = [unit for unit in UNITS if unit.lower() == name.lower()]  # "degc", "KW"
            hint = f" (did you mean {same[0]!r}?)" if same else did_you_mean(name, UNITS)
            return f"unknown unit {name!r}{hint}"
    source, target = UNITS[from_unit], UNITS[to_unit]
    if source.dimension != target.dimension:
        return (
            f"cannot convert {from_unit!r} ({source.dimension}) to {to_unit!r} ({target.dimension})"
        )
    return None


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """``value`` in ``from_unit`` expressed in ``to_unit``; UnitError if they do not convert."""
    problem = conversion_problem(from_unit, to_unit)
    if problem is not None:
        raise UnitError(problem)
    source, target = UNITS[from_unit], UNITS[to_unit]
    if source is target:
        return float(value)
    return ((value * source.scale + source.offset) - target.offset) / target.scale
