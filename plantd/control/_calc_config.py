"""``calc.d/*.yaml``: the calculated points, ``calc: [CalcConfig, …]`` (see ``_calc``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from plantd.config import Check, Duration, Gt
from plantd.control._expr import expression_problem

__all__ = ["NAME_PATTERN", "CalcConfig", "CalcFile", "name_problem"]

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""Names of calcs, alarms, loops and interlocks (each is a bus topic level)."""


def name_problem(name: str) -> str | None:
    """None for a good name, else what is wrong (for ``Check(name_problem)``)."""
    if NAME_PATTERN.fullmatch(name):
        return None
    return (
        "expected 1 to 64 letters, digits, '_' and '-', starting with a letter or digit, "
        f"got {name!r}"
    )


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
