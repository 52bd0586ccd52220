"""``calc.d/*.yaml``: the calculated points, ``calc: [CalcConfig, …]`` (see ``_calc``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from plantd.config import Check, Duration, Gt
from plantd.control._expr import expression_problem
from plantd.control._names import NAME_PATTERN, name_problem

# NAME_PATTERN and name_problem live in _names (shared with alarms, loops and interlocks); they
# are exported here too because callers import them from this module.
__all__ = ["NAME_PATTERN", "CalcConfig", "CalcFile", "name_problem"]


@dataclass(frozen=True, slots=True)
class CalcConfig:
    """One calculated point, published as ``data.calc.NAME``.

    ``expr`` is an expression (see ``_expr``); ``unit`` and ``description`` are for people.
    ``period``: re-evaluate at least this often even while the inputs are quiet (for
    time-driven functions such as ``integral`` and ``avg_over``); None: only when an input
    changes.
    """

    name: Annotated[str, Check(name_problem)]
    expr: Annotated[str, Check(expression_problem)]
    description: str = ""
    unit: str = ""
    period: Annotated[float, Duration, Gt(0)] | None = None


@dataclass(frozen=True, slots=True)
class CalcFile:
    """One ``calc.d/*.yaml`` file."""

    calc: tuple[CalcConfig, ...] = ()
