"""The expression language of calculated points, alarm suppression and interlock conditions.

Text is read by a tokenizer and a precedence-climbing parser into a tree of frozen dataclasses
(this module); :meth:`Expression.bind` gives a :class:`~plantd.control._formula.Formula` that
evaluates by walking the tree (``_formula``, with the evaluation rules). Nothing hands user text
to Python's ``eval``, ``exec``, ``compile`` or ``ast``. The tree is at most :data:`MAX_DEPTH`
deep in nesting; a long flat chain (``1+1+…``) is bounded by :data:`MAX_LENGTH`, so evaluating
recurses at most about 500 levels.

The language, loosest binding first (as in Python)::

    X if C else Y                  conditional (only the chosen branch is read)
    or   and   not                 give true/false
    <  <=  >  >=  ==  !=           give true/false; chain like Python (0 < x.y < 5)
    +  -                           (true/false count as 1/0 in arithmetic)
    *  /  %                        % takes the sign of the divisor, as in Python
    -x  +x                         unary
    **                             power, right to left; -2**2 is -4
    3  2.5  1e-3  true  false  field.flow  point("field.tank-level")  f(…)  (…)

Point names are ``MODULE.POINT``: parts of letters, digits and ``_`` joined by dots (the first
starting with a letter or ``_``). A name with a ``-`` (``field.tank-level``) would read as a
subtraction, so it is written ``point("field.tank-level")``. Durations (``250ms 60s 5m 1h 1d``,
no space before the unit) and quoted text appear only where a function takes them: windows
(``avg_over(x, 60s)``), the unit of ``integral(x, 1h)`` and units in ``convert(x, "degC",
"degF")`` (checked here, when the expression is compiled). See ``_functions`` for the functions.

Every error names what was wrong and its column (1-based). Texts longer than
:data:`MAX_LENGTH` or nested deeper than :data:`MAX_DEPTH` are refused.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn, TypeAlias

from plantd.control._functions import FUNCTIONS
from plantd.control._units import conversion_problem
from plantd.errors import PlantdError

if TYPE_CHECKING:
    from plantd.control._formula import Formula

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Expression",
    "ExpressionError",
    "Node",
    "compile_expression",
    "expression_problem",
]

MAX_LENGTH = 1000
MAX_DEPTH = 50


class ExpressionError(PlantdError, ValueError):
    """Text that is not an expression; the message says what is wrong and at which column."""

    def __init__(self, reason: str, column: int | None = None) -> None:
        self.reason = reason
        self.column = column
        super().__init__(reason if column is None else f"at column {column}: {reason}")


# The tree. `column` is where the node's text starts (1-based), for errors.
@dataclass(frozen=True, slots=True)
class Num:
    value: float
    column: int


@dataclass(frozen=True, slots=True)
class Bool:
    value: bool
    column: int


@dataclass(frozen=True, slots=True)
class Duration:
    seconds: float
    column: int


@dataclass(frozen=True, slots=True)
class Text:
    value: str
    column: int


@dataclass(frozen=True, slots=True)
class Point:
    name: str
    column: int


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "-", "+", "not"
    operand: Node
    column: int


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # "+", "-", "*", "/", "%", "**", "and", "or"
    left: Node
    right: Node
    column: int


@dataclass(frozen=True, slots=True)
class Compare:
    ops: tuple[str, ...]  # len(operands) - 1 of "<", "<=", ">", ">=", "==", "!="
    operands: tuple[Node, ...]
    column: int


@dataclass(frozen=True, slots=True)
class IfElse:
    condition: Node
    then: Node
    other: Node
    column: int


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]
    column: int
    site: int = -1  # stateful functions: index of this call's state in the Formula
    reads: frozenset[str] = frozenset()  # stateful functions: the points its argument reads


Node: TypeAlias = Num | Bool | Duration | Text | Point | Unary | Binary | Compare | IfElse | Call

_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)(?P<suffix>[A-Za-z_][A-Za-z0-9_]*)?
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)(?P<dot>\.)?
    |(?P<text>"[^"\n]*"|'[^'\n]*')
    |(?P<op>\*\*|==|!=|<=|>=|[-+*/%<>(),])""",
    re.VERBOSE | re.ASCII,
)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_HINTS = {"=": "use '==' to compare", "!": "use 'not'", "&": "use 'and'", "|": "use 'or'"}
_HINTS["^"] = "use '**' for a power"
_KEYWORDS = frozenset({"true", "false", "and", "or", "not", "if", "else"})
_COMPARISONS = frozenset({"<", "<=", ">", ">=", "==", "!="})
_POINT_TEXT = re.compile(r"[^\s.]+(?:\.[^\s.]+)+")


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "num", "dur", "name", "text", "op", "end"
    text: str
    column: int
    value: float = 0.0


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        column = position + 1
        if match is None:
            char = text[position]
            if char in "\"'":
                raise ExpressionError(f"text not closed (missing {char})", column)
            hint = f" ({_HINTS[char]})" if char in _HINTS else ""
            raise ExpressionError(f"unexpected {char!r}{hint}", column)
        kind = match.lastgroup
        position = match.end()
        if match["suffix"] is not None:
            unit = match["suffix"]
            if unit not in _DURATION_UNITS:
                raise ExpressionError(
                    f"unknown duration unit {unit!r} in {match[0]!r} (use ms, s, m, h or d)",
                    column,
                )
            seconds = float(match["num"]) * _DURATION_UNITS[unit]
            tokens.append(_Token("dur", match[0], column, seconds))
        elif match["dot"] is not None:
            raise ExpressionError(f"point name {match[0]!r} ends with '.'", column)
        elif kind == "num":
            tokens.append(_Token("num", match[0], column, float(match[0])))
        elif kind != "space":
            tokens.append(_Token("name" if kind == "name" else str(kind), match[0], column))
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest option; looser than the config's own hint, as
    function names are short and often abbreviated (``avgg`` -> ``avg_over``)."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(token: _Token) -> str:
    return "end of expression" if token.kind == "end" else repr(token.text)


class _Parser:
    """Precedence climbing: one method per level, loosest first (see the module docstring)."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0
        self.depth = 0
        self.calls: list[Call] = []  # stateful call sites, innermost first

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at(self, *texts: str) -> bool:
        token = self.token
        return token.kind in ("op", "name") and token.text in texts

    def fail(self, token: _Token, reason: str | None = None) -> NoReturn:
        raise ExpressionError(reason or f"unexpected {_describe(token)}", token.column)

    def expect(self, text: str, opened: _Token | None = None) -> None:
        if not self.at(text):
            where = f" to close the '(' at column {opened.column}" if opened else ""
            self.fail(self.token, f"expected '{text}'{where}, got {_describe(self.token)}")
        self.take()

    def nested(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(token, f"nested more than {MAX_DEPTH} deep")

    def number(self, node: Node) -> Node:
        """``node`` where a number is expected: durations and text are refused."""
        if isinstance(node, Duration):
            raise ExpressionError(
                "a duration is only allowed as a function's window or unit, not as a number",
                node.column,
            )
        if isinstance(node, Text):
            raise ExpressionError(
                "quoted text is only allowed as a unit in convert() or a name in point()",
                node.column,
            )
        return node

    def parse(self) -> Node:
        if self.token.kind == "end":
            self.fail(self.token, "empty expression")
        node = self.number(self.conditional())
        if self.token.kind != "end":
            self.fail(self.token, f"unexpected {_describe(self.token)} after a complete expression")
        return node

    def conditional(self) -> Node:
        self.nested(self.token)
        node = self.either()
        if self.at("if"):
            token = self.take()
            condition = self.number(self.either())
            self.expect("else")
            other = self.number(self.conditional())
            node = IfElse(condition, self.number(node), other, token.column)
        self.depth -= 1
        return node

    def either(self) -> Node:
        node = self.both()
        while self.at("or"):
            token = self.take()
            node = Binary("or", self.number(node), self.number(self.both()), token.column)
        return node

    def both(self) -> Node:
        node = self.negation()
        while self.at("and"):
            token = self.take()
            node = Binary("and", self.number(node), self.number(self.negation()), token.column)
        return node

    def negation(self) -> Node:
        if not self.at("not"):
            return self.comparison()
        token = self.take()
        self.nested(token)
        node = Unary("not", self.number(self.negation()), token.column)
        self.depth -= 1
        return node

    def comparison(self) -> Node:
        first = self.sum()
        ops: list[str] = []
        operands = [first]
        while self.token.kind == "op" and self.token.text in _COMPARISONS:
            ops.append(self.take().text)
            operands.append(self.number(self.sum()))
        if not ops:
            return first
        self.number(first)
        return Compare(tuple(ops), tuple(operands), first.column)

    def sum(self) -> Node:
        node = self.product()
        while self.at("+", "-"):
            token = self.take()
            node = Binary(token.text, self.number(node), self.number(self.product()), token.column)
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.at("*", "/", "%"):
            token = self.take()
            node = Binary(token.text, self.number(node), self.number(self.unary()), token.column)
        return node

    def unary(self) -> Node:
        if not self.at("-", "+"):
            return self.power()
        token = self.take()
        self.nested(token)
        node = Unary(token.text, self.number(self.unary()), token.column)
        self.depth -= 1
        return node

    def power(self) -> Node:
        node = self.primary()
        if self.at("**"):
            token = self.take()
            self.nested(token)  # 2 ** 2 ** 2 … recurses to the right
            node = Binary("**", self.number(node), self.number(self.unary()), token.column)
            self.depth -= 1
        return node

    def primary(self) -> Node:
        token = self.take()
        if token.kind == "num":
            return Num(token.value, token.column)
        if token.kind == "dur":
            return Duration(token.value, token.column)
        if token.kind == "text":
            return Text(token.text[1:-1], token.column)
        if token.kind == "op" and token.text == "(":
            node = self.conditional()
            self.expect(")", token)
            return node
        if token.kind != "name" or token.text in ("and", "or", "not", "if", "else"):
            self.fail(token)
        if token.text in ("true", "false"):
            return Bool(token.text == "true", token.column)
        if self.at("("):
            return self.call(token)
        if "." in token.text:
            return Point(token.text, token.column)
        hint = _did_you_mean(token.text, [*FUNCTIONS, "point", "true", "false"])
        self.fail(token, f"unknown name {token.text!r}{hint} (a point is MODULE.POINT)")

    def call(self, name: _Token) -> Node:
        opened = self.take()
        self.nested(opened)
        args: list[Node] = []
        if not self.at(")"):
            args.append(self.conditional())
            while self.at(","):
                self.take()
                args.append(self.conditional())
        self.expect(")", opened)
        self.depth -= 1
        if name.text == "point":
            return self.point(name, args)
        if "." in name.text:
            self.fail(name, f"{name.text!r} is not a function (a point takes no '(')")
        signature = FUNCTIONS.get(name.text)
        if signature is None:
            hint = _did_you_mean(name.text, FUNCTIONS)
            self.fail(name, f"unknown function {name.text!r}{hint}")
        problem = signature.arity_problem(len(args))
        if problem is not None:
            self.fail(name, problem)
        for index, arg in enumerate(args):
            self.argument(signature.kind(index), arg, name.text)
        if name.text == "convert" and (unit_problem := conversion_problem(*_units(args))):
            raise ExpressionError(unit_problem, args[1].column)
        if not signature.stateful:
            return Call(name.text, tuple(args), name.column)
        call = Call(name.text, tuple(args), name.column, len(self.calls), _reads(args[0]))
        self.calls.append(call)
        return call

    def argument(self, kind: str, arg: Node, function: str) -> None:
        if kind == "number":
            self.number(arg)
        elif kind == "duration":
            if not isinstance(arg, Duration):
                what = "a number" if isinstance(arg, Num) else "an expression"
                raise ExpressionError(
                    f"{function}() expects a duration like 60s or 1h here, got {what}", arg.column
                )
            if arg.seconds <= 0:
                raise ExpressionError(f"{function}() needs a duration above 0", arg.column)
        elif not isinstance(arg, Text):
            raise ExpressionError(
                f'{function}() expects a unit in quotes here, like "degC"', arg.column
            )

    def point(self, name: _Token, args: list[Node]) -> Node:
        if len(args) != 1 or not isinstance(args[0], Text):
            self.fail(name, 'point() takes one quoted name, like point("field.tank-level")')
        if not _POINT_TEXT.fullmatch(args[0].value):
            raise ExpressionError(
                f"expected a point name MODULE.POINT, got {args[0].value!r}", args[0].column
            )
        return Point(args[0].value, name.column)


def _units(args: list[Node]) -> tuple[str, str]:
    first, second = args[1], args[2]
    if not (isinstance(first, Text) and isinstance(second, Text)):
        raise TypeError("convert() units were checked to be text")
    return first.value, second.value


def _reads(node: Node) -> frozenset[str]:
    """The points ``node`` reads (in any branch)."""
    match node:
        case Point(name=name):
            return frozenset({name})
        case Unary(operand=operand):
            return _reads(operand)
        case Binary(left=left, right=right):
            return _reads(left) | _reads(right)
        case Compare(operands=nodes) | Call(args=nodes):
            return frozenset().union(*(_reads(item) for item in nodes))
        case IfElse(condition=condition, then=then, other=other):
            return _reads(condition) | _reads(then) | _reads(other)
        case _:
            return frozenset()


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled expression: immutable and shareable; :meth:`bind` gives a stateful Formula."""

    text: str
    inputs: frozenset[str]
    root: Node = field(repr=False, compare=False)
    calls: tuple[Call, ...] = field(repr=False, compare=False)
    """The stateful call sites, innermost first (``Call.site`` indexes this)."""
    time_driven: bool = field(repr=False, compare=False)

    def bind(self) -> Formula:
        """A fresh formula with its own state for every stateful call site."""
        # Imported here, not at the top: _formula imports this module's tree and Expression, so
        # a top-level import either way would be a cycle that works only in one import order.
        # Deferring it to the call keeps _expr importable on its own (the config checks only
        # need expression_problem) and the dependency one-way at import time.
        from plantd.control._formula import Formula

        return Formula(self)


def compile_expression(text: str) -> Expression:
    """Parse and check ``text``; :class:`ExpressionError` says what is wrong and where."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"longer than {MAX_LENGTH} characters ({len(text)})")
    parser = _Parser(text)
    root = parser.parse()
    calls = tuple(parser.calls)
    time_driven = any(FUNCTIONS[call.name].time_driven for call in calls)
    return Expression(text, _reads(root), root, calls, time_driven)


def expression_problem(text: str) -> str | None:
    """None if ``text`` compiles, else the problem (for ``Check(expression_problem)``)."""
    try:
        compile_expression(text)
    except ExpressionError as exc:
        return f"invalid expression {text!r}: {exc}"
    return None
