"""The expression language: parsing, precedence, errors with columns, evaluation rules."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantd.bus import Quality, Sample
from plantd.control._expr import (
    MAX_DEPTH,
    MAX_LENGTH,
    ExpressionError,
    compile_expression,
    expression_problem,
)
from plantd.errors import PlantdError


def value_of(text: str, **points: object) -> object:
    """Evaluate ``text`` with GOOD samples; keyword ``m_x`` is point ``m.x``."""
    formula = compile_expression(text).bind()
    for key, value in points.items():
        formula.observe(key.replace("_", ".", 1), Sample(value, 1.0))  # type: ignore[arg-type]
    result = formula.evaluate(2.0)
    assert result is not None
    return result.value


def error(text: str) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text)
    return caught.value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("2 ** 3 ** 2", 512.0),  # right to left
        ("-2 ** 2", -4.0),  # power binds tighter than unary minus
        ("2 ** -1", 0.5),
        ("10 - 4 - 3", 3.0),  # left to right
        ("12 / 3 / 2", 2.0),
        ("-7 % 3", 2.0),  # the sign of the divisor, as in Python
        ("7 % -3", -2.0),
        ("1 + 2 > 2", True),
        ("1 < 2 < 3", True),
        ("3 > 2 > 2", False),  # chained: 3 > 2 and 2 > 2
        ("not 1 > 2", True),
        ("true and false or true", True),
        ("true or false and false", True),  # and binds tighter than or
        ("not true or true", True),
        ("1 if false else 2 if true else 3", 2.0),
        ("1 + 1 if 2 > 1 else 0", 2.0),  # the conditional is loosest
        ("true + true", 2.0),  # booleans count as 1/0
        ("- - 3", 3.0),
        ("1e3 + .5", 1000.5),
        ("abs(-2) + min(3, 1, 2) + max(1, 4)", 7.0),
        ("clamp(12, 0, 10) + floor(1.7) + ceil(1.2)", 13.0),
        ("round(2.345, 2)", 2.35),
        ("sqrt(16) + ln(exp(2)) + log10(1000)", 9.0),
    ],
)
def test_precedence_and_operators(text: str, expected: object) -> None:
    result = value_of(text)
    assert result == pytest.approx(expected)
    assert type(result) is type(expected)


def test_points_are_read_and_listed_as_inputs() -> None:
    expression = compile_expression('field.flow * 2 + point("field.tank-level") - calc.x')
    assert expression.inputs == {"field.flow", "field.tank-level", "calc.x"}
    assert value_of("a.b - c.d", a_b=5, c_d=2) == 3.0
    assert value_of('point("a.tank-1") - 1', **{"a_tank-1": 3}) == 2.0


def test_point_parts_may_start_with_a_digit_after_the_module() -> None:
    assert compile_expression("plc.2nd_stage + 1").inputs == {"plc.2nd_stage"}


def test_a_minus_between_names_is_a_subtraction() -> None:
    assert compile_expression("a.x-b.y").inputs == {"a.x", "b.y"}


NOT_A_NUMBER = "a duration is only allowed as a function's window or unit, not as a number"


@pytest.mark.parametrize(
    ("text", "column", "reason"),
    [
        ("avgg(a.b, 60s)", 1, "unknown function 'avgg' (did you mean 'avg_over'?)"),
        ("a.b + )", 7, "unexpected ')'"),
        ("(a.b + 1", 9, "expected ')' to close the '(' at column 1, got end of expression"),
        ("a.b +", 6, "unexpected end of expression"),
        ("", 1, "empty expression"),
        ("a.b c.d", 5, "unexpected 'c.d' after a complete expression"),
        ("a.b = 1", 5, "unexpected '=' (use '==' to compare)"),
        ("a.b && c.d", 5, "unexpected '&' (use 'and')"),
        ("a.b ^ 2", 5, "unexpected '^' (use '**' for a power)"),
        ("a.b + 'x", 7, "text not closed (missing ')"),
        ("tank_level > 2", 1, "unknown name 'tank_level' (a point is MODULE.POINT)"),
        ("True", 1, "unknown name 'True' (did you mean 'true'?) (a point is MODULE.POINT)"),
        ("field. + 1", 1, "point name 'field.' ends with '.'"),
        ("a.b(1)", 1, "'a.b' is not a function (a point takes no '(')"),
        ("clamp(a.b, 1)", 1, "clamp() takes 3 arguments, got 2"),
        ("min(a.b)", 1, "min() takes at least 2 arguments, got 1"),
        ("abs()", 1, "abs() takes 1 argument, got 0"),
        ("round(1, 2, 3)", 1, "round() takes 1 to 2 arguments, got 3"),
        (
            "avg_over(a.b, 60)",
            15,
            "avg_over() expects a duration like 60s or 1h here, got a number",
        ),
        ("avg_over(a.b, 0s)", 15, "avg_over() needs a duration above 0"),
        (
            "a.b + 60s",
            7,
            "a duration is only allowed as a function's window or unit, not as a number",
        ),
        (
            "abs(5m)",
            5,
            "a duration is only allowed as a function's window or unit, not as a number",
        ),
        ("5min", 1, "unknown duration unit 'min' in '5min' (use ms, s, m, h or d)"),
        ('"degC"', 1, "quoted text is only allowed as a unit in convert() or a name in point()"),
        (
            'convert(a.b, "degC", "bar")',
            14,
            "cannot convert 'degC' (temperature) to 'bar' (pressure)",
        ),
        ('convert(a.b, "degc", "degF")', 14, "unknown unit 'degc' (did you mean 'degC'?)"),
        ("convert(a.b, degC, 'degF')", 14, "unknown name 'degC' (a point is MODULE.POINT)"),
        ('convert(a.b, 1, "degF")', 14, 'convert() expects a unit in quotes here, like "degC"'),
        ('point("tank")', 7, "expected a point name MODULE.POINT, got 'tank'"),
        ("point(a.b)", 1, 'point() takes one quoted name, like point("field.tank-level")'),
        ("1 if a.b", 9, "expected 'else', got end of expression"),
        ("not", 4, "unexpected end of expression"),
        ("a.b and or c.d", 9, "unexpected 'or'"),
    ],
)
def test_errors_name_the_problem_and_its_column(text: str, column: int, reason: str) -> None:
    caught = error(text)
    assert caught.column == column
    assert caught.reason == reason
    assert str(caught) == f"at column {column}: {reason}"


def test_expression_errors_are_plantd_errors_and_value_errors() -> None:
    assert isinstance(error(")"), PlantdError)
    assert isinstance(error(")"), ValueError)


def test_expression_problem_is_none_for_a_good_expression_and_the_message_otherwise() -> None:
    assert expression_problem("avg_over(field.flow, 5m) > 3") is None
    assert (
        expression_problem("a.b +")
        == "invalid expression 'a.b +': at column 6: unexpected end of expression"
    )


def test_long_expressions_are_refused() -> None:
    text = " + ".join(["a.b"] * 300)
    assert len(text) > MAX_LENGTH
    assert error(text).reason == f"longer than {MAX_LENGTH} characters ({len(text)})"
    assert compile_expression(" + ".join(["a.b"] * 150)).inputs == {"a.b"}


@pytest.mark.parametrize(
    "template",
    ["{}", "-{}", "not {}", "abs({})", "2 ** {}", "1 if a.b else {}"],
    ids=["parentheses", "minus", "not", "calls", "powers", "conditionals"],
)
def test_deep_nesting_is_refused(template: str) -> None:
    deep = "1 > 0"
    for _ in range(MAX_DEPTH + 1):
        deep = template.format(f"({deep})" if template == "{}" else deep)
    assert "nested more than 50 deep" in error(deep).reason
    shallow = "1 > 0"
    for _ in range(MAX_DEPTH // 2 - 1):
        shallow = template.format(f"({shallow})" if template == "{}" else shallow)
    assert compile_expression(shallow).text == shallow


def test_expressions_are_values() -> None:
    one = compile_expression("a.b + 1")
    assert one == compile_expression("a.b + 1")
    assert hash(one) == hash(compile_expression("a.b + 1"))
    with pytest.raises(AttributeError):
        one.text = "x"  # type: ignore[misc]


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


# What Python computes for "a.x OP a.y * a.z - a.x" (the same precedence)
PYTHON = {
    "+": lambda x, y, z: x + y * z - x,
    "-": lambda x, y, z: x - y * z - x,
    "*": lambda x, y, z: x * y * z - x,
    "/": lambda x, y, z: x / y * z - x,
    "%": lambda x, y, z: x % y * z - x,
}


@given(finite, finite, finite, st.sampled_from(sorted(PYTHON)))
def test_arithmetic_agrees_with_python(x: float, y: float, z: float, op: str) -> None:
    formula = compile_expression(f"a.x {op} a.y * a.z - a.x").bind()
    for name, value in (("a.x", x), ("a.y", y), ("a.z", z)):
        formula.observe(name, Sample(value, 1.0))
    result = formula.evaluate(2.0)
    assert result is not None
    try:
        expected: float | None = PYTHON[op](x, y, z)
    except ZeroDivisionError:
        expected = None
    if expected is None or not math.isfinite(expected):
        assert result.quality is Quality.BAD
        assert math.isnan(result.value)  # type: ignore[arg-type]
    else:
        assert result.quality is Quality.GOOD
        assert result.value == expected


@given(finite, finite, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
def test_comparisons_agree_with_python(x: float, y: float, op: str) -> None:
    python = {
        "<": x < y,
        "<=": x <= y,
        ">": x > y,
        ">=": x >= y,
        "==": x == y,
        "!=": x != y,
    }[op]
    assert value_of(f"a.x {op} a.y", a_x=x, a_y=y) is python


@given(st.floats(min_value=-100, max_value=100), st.floats(min_value=-5, max_value=5))
def test_powers_agree_with_python_or_are_bad(x: float, y: float) -> None:
    formula = compile_expression("a.x ** a.y").bind()
    formula.observe("a.x", Sample(x, 1.0))
    formula.observe("a.y", Sample(y, 1.0))
    result = formula.evaluate(1.0)
    assert result is not None
    try:
        expected = x**y
    except ArithmeticError:  # ZeroDivisionError, OverflowError
        expected = None
    if isinstance(expected, float) and math.isfinite(expected):
        assert result.value == pytest.approx(expected)
    else:  # a complex number, a division by zero or an overflow
        assert result.quality is Quality.BAD
