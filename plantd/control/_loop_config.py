"""``control.d/*.yaml``: control loops and interlocks (read with ``plantd.config.parse_dataclass``).

    loops:
      - name: tank-level
        measurement: field.tank_level     # the process value (MODULE.POINT)
        output: station.speed_setpoint    # written through the module's write operation
        setpoint: 3.0                     # a number, or a point (MODULE.POINT) to follow
        period: 1s
        kp: 20                            # out = kp·(e + 1/ti ∫e dt + td·de/dt)
        ti: 30s                           # 0: no integral
        action: reverse                   # reverse | direct
        output_min: 0
        output_max: 100
    interlocks:
      - name: pump-stop-high-level
        when: "field.tank_level > 4.7"
        output: station.pump_run
        safe_value: false
        reset: manual                     # manual | auto

Rules that involve several fields are in each class's ``cross_check``. Rules across files
(unique names, two writers of one output) are the loader's and :class:`LoopEngine`'s.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Literal

from plantd.config import Check, Duration, Ge, Gt, KeyPath
from plantd.control._names import name_problem

__all__ = [
    "ControlFile",
    "InterlockConfig",
    "LoopConfig",
    "name_problem",
    "point_problem",
    "split_point",
]

_LEVEL = r"[A-Za-z0-9][A-Za-z0-9_-]*"
_POINT = re.compile(rf"{_LEVEL}\.{_LEVEL}", re.ASCII)


def point_problem(name: str) -> str | None:
    """None for a point name ``MODULE.POINT``, else the problem."""
    if _POINT.fullmatch(name):
        return None
    return f"expected a point name MODULE.POINT (e.g. field.tank_level), got {name!r}"


def _output_problem(name: str) -> str | None:
    if (problem := point_problem(name)) is not None:
        return problem
    if name.startswith("calc."):
        return f"calculated points cannot be written, got {name!r}"
    return None


def _when_problem(text: str) -> str | None:
    if not text.strip():
        return "expected an expression, got empty text"
    try:
        # Looked up here, not imported at the top: the expression language lands separately,
        # and until it does any non-empty text is accepted (the process compiles it anyway).
        module = importlib.import_module("plantd.control._expr")
    except ImportError:
        return None
    rule: Callable[[str], str | None] = module.expression_problem
    return rule(text)


def split_point(name: str) -> tuple[str, str]:
    """``"station.pump_run"`` -> ``("station", "pump_run")``."""
    module, _, point = name.partition(".")
    return module, point


@dataclass(frozen=True, slots=True)
class LoopConfig:
    """One PID loop (see ``plantd.control._pid`` for the algorithm and its options)."""

    name: Annotated[str, Check(name_problem)]
    measurement: Annotated[str, Check(point_problem)]
    output: Annotated[str, Check(_output_problem)]
    kp: Annotated[float, Gt(0)]
    setpoint: float | str = 0.0
    period: Annotated[float, Duration, Gt(0)] = 1.0
    ti: Annotated[float, Duration, Ge(0)] = 0.0
    td: Annotated[float, Duration, Ge(0)] = 0.0
    derivative_filter: Annotated[float, Gt(0)] = 10.0
    action: Literal["reverse", "direct"] = "reverse"
    output_min: float = 0.0
    output_max: float = 100.0
    setpoint_ramp: Annotated[float, Gt(0)] | None = None
    mode: Literal["auto", "manual"] = "auto"
    stale_after: Annotated[float, Duration, Gt(0)] = 5.0
    on_failure: Literal["hold", "safe", "manual"] = "hold"
    failure_output: float | None = None
    write_deadband: Annotated[float, Ge(0)] = 0.0
    description: str = ""

    @property
    def setpoint_point(self) -> str | None:
        """The point the setpoint follows, or None for a fixed (operator-set) setpoint."""
        return self.setpoint if isinstance(self.setpoint, str) else None

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        limits = self.output_min < self.output_max
        if not limits:
            yield (
                ("output_max",),
                f"must be above output_min ({self.output_min:g}), got {self.output_max:g}",
            )
        if self.on_failure == "safe" and self.failure_output is None:
            yield (("failure_output",), "required when on_failure is 'safe'")
        if (
            limits
            and self.failure_output is not None
            and not (self.output_min <= self.failure_output <= self.output_max)
        ):
            yield (
                ("failure_output",),
                f"must be within output_min..output_max ({self.output_min:g}..{self.output_max:g})"
                f", got {self.failure_output:g}",
            )
        if isinstance(self.setpoint, str):
            if (problem := point_problem(self.setpoint)) is not None:
                yield (("setpoint",), f"expected a number or a point name: {problem}")
        elif not math.isfinite(self.setpoint):
            yield (("setpoint",), f"expected a finite number, got {self.setpoint}")
        if self.measurement == self.output:
            yield (("output",), f"is the measurement too ({self.output!r}); a loop needs both")


@dataclass(frozen=True, slots=True)
class InterlockConfig:
    """While ``when`` is true (or cannot be evaluated), ``output`` is held at ``safe_value``."""

    name: Annotated[str, Check(name_problem)]
    when: Annotated[str, Check(_when_problem)]
    output: Annotated[str, Check(_output_problem)]
    safe_value: bool | int | float | str
    reset: Literal["manual", "auto"] = "manual"
    description: str = ""

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if isinstance(self.safe_value, float) and not math.isfinite(self.safe_value):
            yield (("safe_value",), f"expected a finite number, got {self.safe_value}")


@dataclass(frozen=True, slots=True)
class ControlFile:
    """One ``control.d/*.yaml`` file."""

    loops: tuple[LoopConfig, ...] = ()
    interlocks: tuple[InterlockConfig, ...] = ()

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        writers: dict[str, int] = {}
        for index, loop in enumerate(self.loops):
            if loop.output in writers:
                yield (
                    ("loops", index, "output"),
                    f"{loop.output!r} is written by loop {self.loops[writers[loop.output]].name!r}"
                    " too; one output has one loop",
                )
            writers.setdefault(loop.output, index)
        for index, interlock in enumerate(self.interlocks):
            if interlock.output in writers and isinstance(interlock.safe_value, str):
                yield (
                    ("interlocks", index, "safe_value"),
                    f"must be a number: {interlock.output!r} is a loop's output",
                )
