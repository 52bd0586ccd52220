"""A driver with no hardware behind it, for tests and demos (registered as driver ``fake``).

Points take their values from config (``value``, and ``pattern: ramp|sine|counter`` to make
them move) or from the test (``driver.values[name] = …``). Tests inject failures directly:
``driver.unavailable = "cable cut"`` makes ``open``/``read``/``write`` raise DeviceUnavailable,
``driver.faults[group] = "illegal address"`` makes that group's reads raise DeviceFault,
``driver.bad_points[name] = "overflow"`` reports one point bad, and ``driver.read_delay``
slows every read. ``driver.reads`` counts reads per group; ``driver.writes`` lists writes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from plantd.bus import SampleValue
from plantd.config import Ge
from plantd.errors import DeviceFault, DeviceUnavailable
from plantd.module import GroupConfig, ModuleConfig, PointConfig, Reading

__all__ = ["FakeConnection", "FakeDriver", "FakeGroup", "FakeModule", "FakePoint"]


@dataclass(frozen=True, kw_only=True)
class FakePoint(PointConfig):
    value: float | int | bool | str = 0
    pattern: Literal["constant", "ramp", "sine", "counter"] = "constant"
    period: Annotated[float, Ge(0.001)] = 10.0
    """Seconds per cycle of a ramp or sine (amplitude ``value``); a counter adds 1 per read."""


@dataclass(frozen=True, kw_only=True)
class FakeGroup(GroupConfig):
    points: tuple[FakePoint, ...] = ()


@dataclass(frozen=True, kw_only=True)
class FakeConnection:
    open_delay: Annotated[float, Ge(0)] = 0.0


@dataclass(frozen=True, kw_only=True)
class FakeModule(ModuleConfig):
    connection: FakeConnection = field(default_factory=FakeConnection)
    groups: tuple[FakeGroup, ...] = ()


class FakeDriver:
    config_type: ClassVar[type[ModuleConfig]] = FakeModule

    def __init__(self, config: FakeModule) -> None:
        self.config = config
        self.values: dict[str, SampleValue] = {}
        self.unavailable: str | None = None
        self.faults: dict[str, str] = {}
        self.bad_points: dict[str, str] = {}
        self.read_delay = 0.0
        self.reads: Counter[str] = Counter()
        self.writes: list[tuple[str, Any]] = []
        self.opened = 0
        self.is_open = False
        self._counters: Counter[str] = Counter()
        self._t0 = time.monotonic()

    async def open(self) -> None:
        if self.config.connection.open_delay:
            await asyncio.sleep(self.config.connection.open_delay)
        if self.unavailable:
            raise DeviceUnavailable(self.unavailable)
        self.opened += 1
        self.is_open = True

    async def close(self) -> None:
        self.is_open = False

    async def read(self, group: FakeGroup) -> dict[str, Reading]:
        self._check_open()
        if self.read_delay:
            await asyncio.sleep(self.read_delay)
            self._check_open()
        self.reads[group.name] += 1
        if group.name in self.faults:
            raise DeviceFault(self.faults[group.name])
        readings: dict[str, Reading] = {}
        for point in group.points:
            if point.name in self.bad_points:
                readings[point.name] = Reading.bad(self.bad_points[point.name])
            else:
                readings[point.name] = Reading(self._value(point))
        return readings

    async def write(self, point: FakePoint, value: Any) -> SampleValue:
        self._check_open()
        if not point.writable:
            raise DeviceFault(f"point {point.name!r} is read-only on the device")
        if isinstance(point.value, bool) != isinstance(value, bool):
            raise ValueError(f"{point.name!r} takes a {type(point.value).__name__}")
        self.writes.append((point.name, value))
        self.values[point.name] = value
        return value  # type: ignore[no-any-return]

    def status(self) -> dict[str, Any]:
        return {"opened": self.opened, "reads": dict(self.reads), "writes": len(self.writes)}

    def _check_open(self) -> None:
        if self.unavailable:
            self.is_open = False
            raise DeviceUnavailable(self.unavailable)
        if not self.is_open:
            raise DeviceUnavailable("not open")

    def _value(self, point: FakePoint) -> SampleValue:
        if point.name in self.values:
            return self.values[point.name]
        base = point.value
        if point.pattern == "constant" or isinstance(base, bool | str):
            return base
        phase = ((time.monotonic() - self._t0) % point.period) / point.period
        if point.pattern == "ramp":
            return float(base) * phase
        if point.pattern == "sine":
            return float(base) * math.sin(2 * math.pi * phase)
        self._counters[point.name] += 1
        return int(base) + self._counters[point.name]
