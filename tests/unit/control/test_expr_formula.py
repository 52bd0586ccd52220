"""Formulas: results, quality and timestamps of a bound expression."""

from __future__ import annotations

import math

import pytest

from plantd.bus import Quality, Sample
from plantd.control._expr import compile_expression

GOOD, UNCERTAIN, BAD = Quality.GOOD, Quality.UNCERTAIN, Quality.BAD


def test_nothing_until_every_input_was_seen() -> None:
    formula = compile_expression("a.x + b.y if c.on else 0").bind()
    assert formula.inputs == {"a.x", "b.y", "c.on"}
    assert formula.evaluate(10.0) is None
    formula.observe("a.x", Sample(1.0, 1.0))
    formula.observe("c.on", Sample(False, 2.0))
    assert formula.evaluate(10.0) is None  # b.y is not read, but it was never seen either
    formula.observe("b.y", Sample(2.0, 3.0))
    assert formula.evaluate(10.0) == Sample(0.0, 3.0, GOOD)


def test_other_points_are_ignored() -> None:
    formula = compile_expression("a.x * 2").bind()
    formula.observe("a.other", Sample(5.0, 1.0))
    assert formula.evaluate(1.0) is None
    formula.observe("a.x", Sample(5, 4.0))
    assert formula.evaluate(9.0) == Sample(10.0, 4.0, GOOD)


def test_the_quality_is_the_worst_of_the_inputs_read() -> None:
    formula = compile_expression("a.x + a.y").bind()
    formula.observe("a.x", Sample(1.0, 1.0, GOOD))
    formula.observe("a.y", Sample(2.0, 2.0, UNCERTAIN))
    assert formula.evaluate(3.0) == Sample(3.0, 2.0, UNCERTAIN)
    formula.observe("a.x", Sample(1.0, 3.0, BAD))
    assert formula.evaluate(3.0) == Sample(3.0, 3.0, BAD)
    formula.observe("a.x", Sample(1.0, 4.0, GOOD))
    formula.observe("a.y", Sample(2.0, 4.0, GOOD))
    assert formula.evaluate(4.0) == Sample(3.0, 4.0, GOOD)


def test_a_branch_not_taken_does_not_count_for_quality() -> None:
    formula = compile_expression("a.x if a.on else a.y").bind()
    formula.observe("a.on", Sample(True, 1.0))
    formula.observe("a.x", Sample(1.0, 1.0, GOOD))
    formula.observe("a.y", Sample(2.0, 5.0, BAD))
    assert formula.evaluate(6.0) == Sample(1.0, 5.0, GOOD)  # the newest input's timestamp
    formula.observe("a.on", Sample(False, 6.0))
    assert formula.evaluate(6.0) == Sample(2.0, 6.0, BAD)


def test_and_or_short_circuit() -> None:
    formula = compile_expression("a.on or a.bad > 1").bind()
    formula.observe("a.on", Sample(True, 1.0))
    formula.observe("a.bad", Sample("text", 1.0))
    assert formula.evaluate(1.0) == Sample(True, 1.0, GOOD)
    formula.observe("a.on", Sample(False, 2.0))
    result = formula.evaluate(2.0)
    assert result is not None
    assert result.quality is BAD


@pytest.mark.parametrize("value", ["text", None, [1, 2], {"a": 1}, math.nan, math.inf, 10**400])
def test_an_input_that_is_not_a_number_makes_the_result_bad(value: object) -> None:
    formula = compile_expression("a.x + 1").bind()
    formula.observe("a.x", Sample(value, 7.0))  # type: ignore[arg-type]
    result = formula.evaluate(8.0)
    assert result is not None
    assert result.quality is BAD
    assert math.isnan(result.value)  # type: ignore[arg-type]
    assert result.timestamp == 7.0


@pytest.mark.parametrize(
    "text",
    [
        "a.x / 0",
        "sqrt(a.x - 10)",
        "ln(a.x - 1)",
        "a.x % 0",
        "(0 - a.x) ** 0.5",
        "10 ** (a.x * 400)",
        "clamp(a.x, 5, 0)",
        "round(a.x, 0.5)",
        "exp(a.x * 1000)",
    ],
)
def test_impossible_results_are_bad(text: str) -> None:
    formula = compile_expression(text).bind()
    formula.observe("a.x", Sample(1.0, 1.0))
    result = formula.evaluate(1.0)
    assert result is not None
    assert result.quality is BAD
    assert math.isnan(result.value)  # type: ignore[arg-type]


def test_comparisons_and_logic_give_booleans_and_arithmetic_counts_them() -> None:
    formula = compile_expression("(a.x > 1) + (a.x > 2) + a.on").bind()
    formula.observe("a.x", Sample(3, 1.0))
    formula.observe("a.on", Sample(True, 1.0))
    assert formula.evaluate(1.0) == Sample(3.0, 1.0, GOOD)
    logic = compile_expression("a.on and not a.x > 5").bind()
    logic.observe("a.x", Sample(3, 1.0))
    logic.observe("a.on", Sample(1, 1.0))
    result = logic.evaluate(1.0)
    assert result is not None
    assert result.value is True


def test_time_driven_expressions_are_stamped_now() -> None:
    formula = compile_expression("avg_over(a.x, 10s) + a.y").bind()
    formula.observe("a.x", Sample(1.0, 1.0))
    formula.observe("a.y", Sample(1.0, 2.0))
    result = formula.evaluate(50.0)
    assert result == Sample(2.0, 50.0, GOOD)


def test_each_call_site_and_each_binding_keeps_its_own_state() -> None:
    expression = compile_expression("delta(a.x) + 10 * delta(a.x * 2)")
    first, second = expression.bind(), expression.bind()
    first.observe("a.x", Sample(1.0, 1.0))
    first.observe("a.x", Sample(4.0, 2.0))
    assert first.evaluate(2.0) == Sample(3.0 + 10 * 6.0, 2.0, GOOD)
    second.observe("a.x", Sample(1.0, 1.0))
    second_result = second.evaluate(2.0)
    assert second_result is not None
    assert second_result.quality is BAD  # one sample: no delta yet


def test_a_stateful_function_of_a_stateful_function() -> None:
    formula = compile_expression("max_over(rate(c.n), 1h)").bind()
    for t, n in ((0, 0), (10, 100), (20, 120), (30, 150)):
        formula.observe("c.n", Sample(float(n), float(t)))
    # rates: 10/s, 2/s, 3/s -> the largest in the hour
    assert formula.evaluate(30.0) == Sample(10.0, 30.0, GOOD)


def test_a_stateful_function_over_two_points() -> None:
    formula = compile_expression("integral(a.x * a.y, 1s)").bind()
    formula.observe("a.x", Sample(2.0, 0.0))
    formula.observe("a.y", Sample(3.0, 0.0))  # 6 from t = 0
    formula.observe("a.x", Sample(4.0, 10.0))  # 12 at t = 10: trapezoid 90
    assert formula.evaluate(10.0) == Sample(90.0, 10.0, GOOD)


def test_the_state_worsens_the_quality() -> None:
    formula = compile_expression("avg_over(a.x, 10s)").bind()
    formula.observe("a.x", Sample(1.0, 0.0, UNCERTAIN))
    formula.observe("a.x", Sample(3.0, 5.0, GOOD))
    assert formula.evaluate(10.0) == Sample(2.0, 10.0, UNCERTAIN)
    assert formula.evaluate(15.1) == Sample(3.0, 15.1, GOOD)  # the uncertain one left the window


def test_convert_in_an_expression() -> None:
    formula = compile_expression('convert(a.t, "degC", "degF")').bind()
    formula.observe("a.t", Sample(100.0, 1.0))
    result = formula.evaluate(1.0)
    assert result is not None
    assert result.value == pytest.approx(212.0)
