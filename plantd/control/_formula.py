"""Evaluating expressions: :class:`Formula` walks the tree that ``_expr`` parsed.

A formula is an :class:`~plantd.control._expr.Expression` bound to its own state
(``Expression.bind()`` gives a fresh one): the latest sample of each input and the state of each
stateful function call (``_functions``).

Rules:

- Every value computed must be finite, else the result is ``Sample(nan, …, BAD)``; so is a result
  that reads an input which is not a number (text, None, JSON, NaN, ±inf) or a function that
  cannot answer (``sqrt(-1)``, ``x / 0``, ``rate`` before two samples).
- The quality is the worst quality of the inputs read (and of the stateful functions read).
- The timestamp is ``now`` if the expression uses a time-driven function (``avg_over``,
  ``min_over``, ``max_over``, ``integral``), else the newest timestamp of its inputs.
- Only the chosen branch of ``X if C else Y`` is read, and ``and``/``or`` stop early, so an
  input read only by the branch not taken does not lower the quality.
- Until every input has been seen once, there is no result (None).

The walk recurses once per tree level; the parser bounds the tree (``MAX_DEPTH`` nesting,
``MAX_LENGTH`` text), so it recurses at most about 500 levels.
"""

from __future__ import annotations

import math
from typing import Any

from plantd.bus import Quality, Sample
from plantd.control._expr import (
    Binary,
    Bool,
    Call,
    Compare,
    Duration,
    Expression,
    IfElse,
    Node,
    Num,
    Point,
    Text,
    Unary,
)
from plantd.control._functions import (
    COMPARISONS,
    OPERATORS,
    PURE,
    NotANumber,
    State,
    finite,
    make_state,
)

__all__ = ["Formula"]


class Formula:
    """One bound expression with its own state: the latest sample of each input, and the state of
    each stateful call site.

    :meth:`observe` takes every new sample of an input: it keeps it as the latest value and feeds
    the stateful calls whose argument reads that input (innermost first, so
    ``avg_over(rate(c.n), 1m)`` averages the rate just updated). :meth:`evaluate` walks the tree
    with the latest values (rules in the module docstring).
    """

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
        except NotANumber:
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
                return finite(OPERATORS[op], float(self._eval(left)), float(self._eval(right)))
            case Compare(ops=ops, operands=operands):
                return self._compare(ops, operands)
            case IfElse(condition=condition, then=then, other=other):
                return self._eval(then) if self._eval(condition) else self._eval(other)
            case Call():
                return self._call(node)
        raise NotANumber  # Duration/Text never reach here: the parser keeps them in arguments

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
                raise NotANumber from None
            if math.isfinite(number):
                return number
        raise NotANumber

    def _compare(self, ops: tuple[str, ...], operands: tuple[Node, ...]) -> bool:
        left = self._eval(operands[0])
        for op, node in zip(ops, operands[1:], strict=True):
            right = self._eval(node)
            if not COMPARISONS[op](left, right):
                return False
            left = right
        return True

    def _call(self, call: Call) -> float:
        if call.site >= 0:
            value, quality = self._states[call.site].result(self._now)
            self._quality = max(self._quality, quality)
            if not math.isfinite(value):
                raise NotANumber
            return value
        args: list[Any] = [
            arg.value if isinstance(arg, Text) else float(self._eval(arg)) for arg in call.args
        ]
        return finite(PURE[call.name], *args)
