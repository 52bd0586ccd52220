"""Calculated points: :class:`CalcEngine` runs the ``calc.d`` calcs.

Each calc is a formula (a bound expression, see ``_expr``) whose result is the point
``calc.NAME``. Rules:

- A calc may read another (``calc.b``); the calcs are evaluated in dependency order, so one
  evaluate gives every calc's new value from the same inputs. Reading a calc that is not
  defined, or a cycle (``calc.a`` reads ``calc.b`` reads ``calc.a``), is a ConfigError naming
  the calcs.
- :meth:`CalcEngine.evaluate` gives the calcs whose inputs changed since the last evaluate
  (a calc whose input calc was given counts as changed), and those whose ``period`` is due: a
  period re-evaluates time-driven functions (``integral``, ``avg_over`` …) while inputs are
  quiet. A period calc is first due at the first evaluate, then every ``period`` after (a missed
  deadline is not caught up: the next one is a period after ``now``).
- A calc whose inputs were not all seen yet gives nothing.
- Samples of ``calc.*`` points given to :meth:`CalcEngine.observe` are ignored: the engine is
  their source, and feeds them to the calcs that read them itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from plantd.bus import Sample
from plantd.config import did_you_mean
from plantd.control._calc_config import CalcConfig
from plantd.control._expr import Expression, ExpressionError, compile_expression
from plantd.control._formula import Formula
from plantd.errors import ConfigError

__all__ = ["CalcEngine", "Formula"]  # Formula lives in _formula; here too for old imports

_CALC = "calc."


class CalcEngine:
    """The calcs of ``calc.d`` (see the module docstring)."""

    def __init__(self, calcs: Sequence[CalcConfig]) -> None:
        self.configs = {calc.name: calc for calc in calcs}
        problems = [
            f"calc {name!r} is defined {count} times"
            for name in self.configs
            if (count := sum(calc.name == name for calc in calcs)) > 1
        ]
        expressions: dict[str, Expression] = {}
        for calc in calcs:
            try:
                expressions[calc.name] = compile_expression(calc.expr)
            except ExpressionError as exc:
                problems.append(f"calc {calc.name!r}: invalid expression {calc.expr!r}: {exc}")
        for name, expression in expressions.items():
            for point in sorted(expression.inputs):
                read = point.removeprefix(_CALC)
                if point.startswith(_CALC) and read not in self.configs:
                    hint = did_you_mean(read, self.configs)
                    problems.append(f"calc {name!r} reads {point}, which is not a calc{hint}")
        if problems:
            raise ConfigError(problems)
        self.order = _dependency_order(expressions)
        self._formulas = {name: expressions[name].bind() for name in self.order}
        self._readers: dict[str, list[str]] = {}  # point -> calcs that read it
        for name in self.order:
            for point in expressions[name].inputs:
                self._readers.setdefault(point, []).append(name)
        self.inputs = frozenset(point for point in self._readers if not point.startswith(_CALC))
        self._changed: set[str] = set()
        self._due: dict[str, float] = {
            name: -math.inf for name, calc in self.configs.items() if calc.period is not None
        }
        self.latest: dict[str, Sample] = {}
        """The last result of each calc that has given one."""

    def observe(self, point: str, sample: Sample) -> None:
        """Take a new sample of an input point (``calc.*`` points are ignored)."""
        if point.startswith(_CALC):
            return
        for name in self._readers.get(point, ()):
            self._formulas[name].observe(point, sample)
            self._changed.add(name)

    def evaluate(self, now: float) -> list[tuple[str, Sample]]:
        """``(NAME, sample)`` for the calcs that changed or are due, in dependency order."""
        results: list[tuple[str, Sample]] = []
        for name in self.order:
            due = self._due.get(name)
            if name not in self._changed and (due is None or now < due):
                continue
            self._changed.discard(name)
            if due is not None and now >= due:
                period = self.configs[name].period or 0.0
                self._due[name] = due + period if now < due + period else now + period
            sample = self._formulas[name].evaluate(now)
            if sample is None:
                continue
            self.latest[name] = sample
            results.append((name, sample))
            for reader in self._readers.get(_CALC + name, ()):
                self._formulas[reader].observe(_CALC + name, sample)
                self._changed.add(reader)
        return results

    def next_due(self) -> float | None:
        """The earliest period deadline (``-inf`` before the first evaluate), or None."""
        return min(self._due.values(), default=None)

    def status(self) -> list[dict[str, Any]]:
        """One dict per calc: its config and last result (for ``org.plantd.Control list``)."""
        rows: list[dict[str, Any]] = []
        for name, calc in self.configs.items():
            sample = self.latest.get(name)
            rows.append(
                {
                    "name": name,
                    "expr": calc.expr,
                    "description": calc.description,
                    "unit": calc.unit,
                    "period": calc.period,
                    "value": None if sample is None else sample.value,
                    "quality": None if sample is None else sample.quality.label,
                    "timestamp": None if sample is None else sample.timestamp,
                }
            )
        return rows


def _dependency_order(expressions: dict[str, Expression]) -> list[str]:
    """The calcs, each after the calcs it reads (config order otherwise); ConfigError on a
    cycle, naming it."""
    order: list[str] = []
    state: dict[str, str] = {}  # "visiting" | "done"
    path: list[str] = []

    def visit(name: str) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = [*path[path.index(name) :], name]
            raise ConfigError([f"calcs read each other in a cycle: {' -> '.join(cycle)}"])
        state[name] = "visiting"
        path.append(name)
        for point in sorted(expressions[name].inputs):
            if point.startswith(_CALC):
                visit(point.removeprefix(_CALC))
        path.pop()
        state[name] = "done"
        order.append(name)

    for name in expressions:
        visit(name)
    return order
