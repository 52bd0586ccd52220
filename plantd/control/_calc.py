"""Calculated points: :class:`Formula` (a bound expression) and :class:`CalcEngine`.

A :class:`Formula` keeps the latest sample of each input and the state of each stateful call
site. :meth:`Formula.observe` takes every new sample of an input: it updates the latest value and
feeds the stateful calls whose argument reads that input (innermost first, so
``avg_over(rate(c.n), 1m)`` averages the rate just updated). :meth:`Formula.evaluate` walks the
tree with the latest values; the rules of results are in ``_expr``'s docstring.

:class:`CalcEngine` runs the ``calc.d`` calcs, each a formula whose result is the point
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
import operator
from collections.abc import Callable, Sequence
from typing import Any

from plantd.bus import Quality, Sample
from plantd.config import did_you_mean
from plantd.control._calc_config import CalcConfig
from plantd.control._expr import (
    Binary,
    Bool,
    Call,
    Compare,
    Duration,
    Expression,
    ExpressionError,
    IfElse,
    Node,
    Num,
    Point,
    Text,
    Unary,
    compile_expression,
)
from plantd.control._functions import PURE, State, make_state
from plantd.errors import ConfigError

__all__ = ["CalcEngine", "Formula"]

_CALC = "calc."

_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": operator.mod,
    "**": math.pow,  # never a complex number: (-8) ** 0.5 raises ValueError
}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


class _Bad(Exception):
    """The result is not a number: evaluation stops, the result is BAD."""


class Formula:
    """One bound expression with its own state (see the module docstring)."""

    def __init__(self, expression: Expression) -> None:
        self.expression = expression
        self.inputs = expression.inputs
        self._latest: dict[str, Sample] = {}
        self._states: list[State] = [
            make_state(call.name, tuple(a.seconds for a in call.args if isinstance(a, Duration)))
            for call in expression.calls
        ]
        self._feeds: dict[str, list[Call]] = {}
        for call in expression.calls:  # innermost first
            for point in call.reads:
                self._feeds.setdefault(point, []).append(call)
        self._quality = Quality.GOOD
        self._now = 0.0

    def observe(self, point: str, sample: Sample) -> None:
        """Take a new sample of input ``point`` (other points are ignored)."""
        if point not in self.inputs:
            return
        self._latest[point] = sample
        for call in self._feeds.get(point, ()):
            if all(name in self._latest for name in call.reads):
                value, quality = self._run(call.args[0], sample.timestamp)
                self._states[call.site].push(sample.timestamp, value, quality)

    def evaluate(self, now: float) -> Sample | None:
        """The result at ``now``; None while some input has never been seen."""
        if len(self._latest) < len(self.inputs):
            return None
        value, quality = self._run(self.expression.root, now)
        if self.expression.time_driven or not self._latest:
            timestamp = now
        else:
            timestamp = max(sample.timestamp for sample in self._latest.values())
        if isinstance(value, float) and math.isnan(value):
            return Sample(value, timestamp, Quality.BAD)
        return Sample(value, timestamp, quality)

    def _run(self, node: Node, now: float) -> tuple[float | bool, Quality]:
        self._quality, self._now = Quality.GOOD, now
        try:
            value = self._eval(node)
        except _Bad:
            return math.nan, Quality.BAD
        return value, self._quality

    def _eval(self, node: Node) -> float | bool:
        match node:
            case Num(value=value) | Bool(value=value):
                return value
            case Point(name=name):
                return self._read(name)
            case Unary(op="not", operand=operand):
                return not self._eval(operand)
            case Unary(op=op, operand=operand):
                value = float(self._eval(operand))
                return -value if op == "-" else value
            case Binary(op="and", left=left, right=right):
                return bool(self._eval(left)) and bool(self._eval(right))
            case Binary(op="or", left=left, right=right):
                return bool(self._eval(left)) or bool(self._eval(right))
            case Binary(op=op, left=left, right=right):
                return _finite(_ARITHMETIC[op], float(self._eval(left)), float(self._eval(right)))
            case Compare(ops=ops, operands=operands):
                return self._compare(ops, operands)
            case IfElse(condition=condition, then=then, other=other):
                return self._eval(then) if self._eval(condition) else self._eval(other)
            case Call():
                return self._call(node)
        raise _Bad  # Duration/Text never reach here: the parser keeps them in arguments

    def _read(self, name: str) -> float | bool:
        sample = self._latest[name]
        self._quality = max(self._quality, sample.quality)
        value = sample.value
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            try:
                number = float(value)
            except OverflowError:
                raise _Bad from None
            if math.isfinite(number):
                return number
        raise _Bad

    def _compare(self, ops: tuple[str, ...], operands: tuple[Node, ...]) -> bool:
        left = self._eval(operands[0])
        for op, node in zip(ops, operands[1:], strict=True):
            right = self._eval(node)
            if not _COMPARE[op](left, right):
                return False
            left = right
        return True

    def _call(self, call: Call) -> float:
        if call.site >= 0:
            value, quality = self._states[call.site].result(self._now)
            self._quality = max(self._quality, quality)
            if not math.isfinite(value):
                raise _Bad
            return value
        args: list[Any] = [
            arg.value if isinstance(arg, Text) else float(self._eval(arg)) for arg in call.args
        ]
        return _finite(PURE[call.name], *args)


def _finite(function: Callable[..., float], *args: Any) -> float:
    try:
        result = float(function(*args))
    except (ArithmeticError, ValueError):  # x / 0, sqrt(-1), overflow
        raise _Bad from None
    if not math.isfinite(result):
        raise _Bad
    return result


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
        for calc in self.configs.values():
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
            if due is not None:
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
