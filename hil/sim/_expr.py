"""Point expressions: the small, safe arithmetic the plant model is written in.

    plc.pump_speed * 1.2 + noise(0.2)
    speed_setpoint if pump_run else 0
    clamp((inflow - outflow) / 1200, -0.1, 0.1)

Python syntax, a subset: numbers, ``true``/``false`` (or ``True``/``False``), names, ``+ - * /
// % **``, comparisons (chained), ``and``/``or``/``not``, ``a if c else b`` and calls of the
functions in :data:`FUNCTIONS`. Names are point names — bare (a point of the same device first,
then the only point of that name in the file) or ``device.point`` — and the variables ``t``
(seconds since the simulation started), ``dt`` (seconds since the last step), ``value`` (the
point's own value; in an ``on_write`` handler, the value written) and ``pi``. Nothing else: no
attributes of objects, indexing, lambdas or imports, so a simulator file runs no code of its own.

Two phases: :func:`parse_expr` checks the syntax and lists the names used (so the file's
validation can name a typo with its line); :meth:`ParsedExpr.compile` resolves them to point
keys and returns a closure over the tree — no ``eval`` anywhere.
"""

from __future__ import annotations

import ast
import math
import operator
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FUNCTIONS",
    "VARIABLES",
    "Context",
    "Evaluator",
    "ExprError",
    "ParsedExpr",
    "parse_expr",
]

VARIABLES = frozenset({"t", "dt", "value", "pi", "true", "false"})


class Context:
    """What an expression sees while it runs: point values, the clock, a seeded noise source."""

    __slots__ = ("dt", "rng", "t", "value", "values")

    def __init__(self, values: Mapping[str, Any], rng: random.Random) -> None:
        self.values = values
        self.rng = rng
        self.t = 0.0
        self.dt = 0.0
        self.value: Any = 0.0


Evaluator = Callable[[Context], Any]


def _clamp(x: float, low: float, high: float) -> float:
    return min(max(x, low), high)


FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    "abs": abs,
    "min": min,
    "max": max,
    "clamp": _clamp,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "sin": math.sin,
    "cos": math.cos,
    "int": int,
    "float": float,
    "bool": bool,
}
"""Functions an expression may call, plus ``noise(sd)`` (normal, mean 0) and ``random()``
(uniform in [0, 1)), both from the simulation's seeded generator."""

_RANDOM = frozenset({"noise", "random"})
_CONSTANTS: Mapping[str, float | bool] = {"pi": math.pi, "true": True, "false": False}

_BINARY: Mapping[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE: Mapping[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


class ExprError(ValueError):
    """An expression that is not in the language (the message says which part)."""


@dataclass(frozen=True)
class ParsedExpr:
    text: str
    tree: ast.expr
    names: frozenset[str]
    """Point names used, as written (``flow`` or ``meter.flow``); variables not included."""

    def compile(self, resolve: Callable[[str], str]) -> Evaluator:
        """A closure computing the expression; ``resolve`` maps each name to its point key."""
        return _Compiler(resolve).build(self.tree)


def parse_expr(text: str) -> ParsedExpr:
    """Check ``text`` against the language; :class:`ExprError` says what is not allowed."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ExprError(f"not an expression: {exc.msg} in {text!r}") from None
    names: set[str] = set()
    nodes = list(ast.walk(tree))
    # a Name that is a callee (min) or the device of device.point is not a point itself
    skip = {id(n.func) for n in nodes if isinstance(n, ast.Call)}
    skip |= {id(n.value) for n in nodes if isinstance(n, ast.Attribute)}
    for node in nodes:
        _check_node(node)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            names.add(f"{node.value.id}.{node.attr}")
        elif isinstance(node, ast.Name) and id(node) not in skip and node.id not in VARIABLES:
            names.add(node.id)
    return ParsedExpr(text, tree, frozenset(names))


def _check_node(node: ast.AST) -> None:
    allowed = (
        ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Call, ast.Name,
        ast.Attribute, ast.Constant, ast.Load, ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
    )  # fmt: skip
    if not isinstance(node, allowed) or isinstance(node, ast.MatMult | ast.BitAnd | ast.BitOr):
        raise ExprError(f"{type(node).__name__.lower()} is not allowed in a point expression")
    if isinstance(node, ast.BinOp) and type(node.op) not in _BINARY:
        raise ExprError(f"operator {type(node.op).__name__} is not allowed")
    if isinstance(node, ast.Constant) and not isinstance(node.value, int | float | bool):
        raise ExprError(f"only numbers and true/false are allowed, not {node.value!r}")
    if isinstance(node, ast.Call):
        function = node.func.id if isinstance(node.func, ast.Name) else None
        if function is None or (function not in FUNCTIONS and function not in _RANDOM):
            known = ", ".join(sorted([*FUNCTIONS, *_RANDOM]))
            raise ExprError(f"unknown function {ast.unparse(node.func)!r} (known: {known})")
        if node.keywords:
            raise ExprError(f"{function}() takes positional arguments only")
    if isinstance(node, ast.Attribute) and not isinstance(node.value, ast.Name):
        raise ExprError(f"{ast.unparse(node)!r}: write a point as name or device.name")


class _Compiler:
    def __init__(self, resolve: Callable[[str], str]) -> None:
        self.resolve = resolve

    def build(self, node: ast.expr) -> Evaluator:
        method = getattr(self, f"_{type(node).__name__.lower()}")
        evaluator: Evaluator = method(node)
        return evaluator

    def _constant(self, node: ast.Constant) -> Evaluator:
        value = node.value
        return lambda ctx: value

    def _name(self, node: ast.Name) -> Evaluator:
        if node.id in _CONSTANTS:
            constant = _CONSTANTS[node.id]
            return lambda ctx: constant
        if node.id in ("t", "dt", "value"):
            attribute: Evaluator = operator.attrgetter(node.id)
            return attribute
        key = self.resolve(node.id)
        return lambda ctx: ctx.values[key]

    def _attribute(self, node: ast.Attribute) -> Evaluator:
        assert isinstance(node.value, ast.Name)
        key = self.resolve(f"{node.value.id}.{node.attr}")
        return lambda ctx: ctx.values[key]

    def _binop(self, node: ast.BinOp) -> Evaluator:
        op, left, right = _BINARY[type(node.op)], self.build(node.left), self.build(node.right)
        return lambda ctx: op(left(ctx), right(ctx))

    def _unaryop(self, node: ast.UnaryOp) -> Evaluator:
        operand = self.build(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda ctx: not operand(ctx)
        if isinstance(node.op, ast.USub):
            return lambda ctx: -operand(ctx)
        if isinstance(node.op, ast.UAdd):
            return lambda ctx: +operand(ctx)
        raise ExprError("operator ~ is not allowed")

    def _boolop(self, node: ast.BoolOp) -> Evaluator:
        parts = [self.build(value) for value in node.values]
        if isinstance(node.op, ast.And):
            return lambda ctx: all(part(ctx) for part in parts)
        return lambda ctx: any(part(ctx) for part in parts)

    def _compare(self, node: ast.Compare) -> Evaluator:
        first = self.build(node.left)
        rest = [
            (_COMPARE[type(op)], self.build(right))
            for op, right in zip(node.ops, node.comparators, strict=True)
            if type(op) in _COMPARE or _refuse(op)
        ]

        def compare(ctx: Context) -> bool:
            left = first(ctx)
            for op, right in rest:
                value = right(ctx)
                if not op(left, value):
                    return False
                left = value
            return True

        return compare

    def _ifexp(self, node: ast.IfExp) -> Evaluator:
        test, body, orelse = self.build(node.test), self.build(node.body), self.build(node.orelse)
        return lambda ctx: body(ctx) if test(ctx) else orelse(ctx)

    def _call(self, node: ast.Call) -> Evaluator:
        assert isinstance(node.func, ast.Name)
        args = [self.build(arg) for arg in node.args]
        name = node.func.id
        if name == "noise":
            sd = args[0] if args else (lambda ctx: 1.0)
            return lambda ctx: ctx.rng.gauss(0.0, sd(ctx))
        if name == "random":
            return lambda ctx: ctx.rng.random()
        function = FUNCTIONS[name]
        return lambda ctx: function(*(arg(ctx) for arg in args))


def _refuse(op: ast.cmpop) -> bool:
    raise ExprError(f"comparison {type(op).__name__} is not allowed (use == != < <= > >=)")
