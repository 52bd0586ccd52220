"""``alarms.d/*.yaml``: ``alarms: [AlarmConfig, …]`` (see docs/control.md, "Alarms").

Each field is checked on its own by its type and markers; the rules that tie fields together
(which type needs a limit, a setpoint or a state) are in :meth:`AlarmConfig.cross_check`, so a
wrong file gets one problem per mistake, each naming file:line.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Final, Literal

from plantd.config import Check, Duration, Ge, KeyPath
from plantd.control._conditions import Detection
from plantd.control._names import name_problem

__all__ = ["ALARM_TYPES", "PRIORITIES", "AlarmConfig", "AlarmType", "AlarmsFile", "Priority"]

AlarmType = Literal[
    "high", "high-high", "low", "low-low", "rate", "deviation", "discrete", "bad-quality"
]
Priority = Literal["low", "medium", "high", "urgent"]
ALARM_TYPES: Final = (
    "high", "high-high", "low", "low-low", "rate", "deviation", "discrete", "bad-quality"
)  # fmt: skip
PRIORITIES: Final = ("low", "medium", "high", "urgent")
_WITH_LIMIT: Final = frozenset({"high", "high-high", "low", "low-low", "rate", "deviation"})

_POINT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\.[^\s.][^\s]*", re.ASCII)


def point_problem(point: str) -> str | None:
    if _POINT.fullmatch(point):
        return None
    return f"expected a point as MODULE.POINT (e.g. field.tank_level), got {point!r}"


def suppress_problem(text: str) -> str | None:
    """The expression's problem, by the expression language when it is there."""
    if not text.strip():
        return "expected an expression, got empty text"
    try:
        expr = importlib.import_module("plantd.control._expr")
    except ImportError:  # the expression language is not built yet: text is all we can check
        return None
    problem: str | None = expr.expression_problem(text)
    return problem


@dataclass(frozen=True, slots=True)
class AlarmConfig:
    """One alarm: ``type`` of condition on ``point`` (see ``_conditions`` for the rules)."""

    name: Annotated[str, Check(name_problem)]
    point: Annotated[str, Check(point_problem)]
    type: AlarmType
    limit: float | None = None
    deadband: Annotated[float, Ge(0)] = 0.0
    on_delay: Annotated[float, Duration, Ge(0)] = 0.0
    off_delay: Annotated[float, Duration, Ge(0)] = 0.0
    setpoint: float | str | None = None
    state: bool | int | float | str | None = None
    priority: Priority = "medium"
    message: str = ""
    suppress_when: Annotated[str, Check(suppress_problem)] | None = None
    latch: bool = False

    @property
    def detection(self) -> Detection:
        return Detection(
            type=self.type,
            point=self.point,
            limit=self.limit,
            deadband=self.deadband,
            on_delay=self.on_delay,
            off_delay=self.off_delay,
            setpoint=self.setpoint,
            state=self.state,
        )

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        kind = self.type
        if kind in _WITH_LIMIT:
            yield from self._limit_problems()
        else:
            if self.limit is not None:
                yield (("limit",), f"only for types with a limit, not for type {kind}")
            if self.deadband:
                yield (("deadband",), f"only for types with a limit, not for type {kind}")
        if kind == "deviation":
            if self.setpoint is None:
                yield (("setpoint",), "required for type deviation (a number or a point)")
            elif isinstance(self.setpoint, str) and (p := point_problem(self.setpoint)):
                yield (("setpoint",), p)
            elif isinstance(self.setpoint, float) and not math.isfinite(self.setpoint):
                yield (("setpoint",), f"expected a finite number, got {self.setpoint}")
        elif self.setpoint is not None:
            yield (("setpoint",), f"only for type deviation, not for type {kind}")
        if kind == "discrete":
            if self.state is None:
                yield (("state",), "required for type discrete (the value that is abnormal)")
        elif self.state is not None:
            yield (("state",), f"only for type discrete, not for type {kind}")

    def _limit_problems(self) -> Iterator[tuple[KeyPath, str]]:
        limit = self.limit
        if limit is None:
            yield (("limit",), f"required for type {self.type}")
            return
        if self.type in ("rate", "deviation"):
            # |rate| and |pv - sp| are never negative: a clear point below 0 never comes
            if limit <= 0:
                yield (("limit",), f"expected a number > 0 for type {self.type}, got {limit:g}")
            elif self.deadband >= limit:
                yield (
                    ("deadband",),
                    f"must be less than limit ({limit:g}) for type {self.type}, "
                    f"got {self.deadband:g} (the alarm could never clear)",
                )


@dataclass(frozen=True, slots=True)
class AlarmsFile:
    """One ``alarms.d/*.yaml`` file. Names are unique within it (and the loader checks them
    across files)."""

    alarms: tuple[AlarmConfig, ...] = ()

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        seen: set[str] = set()
        for index, alarm in enumerate(self.alarms):
            if alarm.name in seen:
                yield (("alarms", index, "name"), f"alarm {alarm.name!r} is defined twice")
            seen.add(alarm.name)
