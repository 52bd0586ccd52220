"""The calc engine: dependency order, cycles, change- and period-driven evaluation."""

from __future__ import annotations

import math

import pytest

from plantd.bus import Quality, Sample
from plantd.control._calc import CalcEngine
from plantd.control._calc_config import CalcConfig
from plantd.errors import ConfigError

GOOD, BAD = Quality.GOOD, Quality.BAD


def calc(name: str, expr: str, period: float | None = None) -> CalcConfig:
    return CalcConfig(name=name, expr=expr, period=period)


def problems(*calcs: CalcConfig) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        CalcEngine(calcs)
    return caught.value.problems


def test_calcs_reading_calcs_are_evaluated_in_dependency_order() -> None:
    engine = CalcEngine(
        [
            calc("total", "calc.double + calc.half"),  # listed before what it reads
            calc("double", "field.x * 2"),
            calc("half", "calc.double / 4"),
        ]
    )
    assert engine.order == ["double", "half", "total"]
    assert engine.inputs == {"field.x"}
    assert engine.evaluate(1.0) == []  # nothing seen yet
    engine.observe("field.x", Sample(4.0, 10.0))
    assert engine.evaluate(11.0) == [
        ("double", Sample(8.0, 10.0, GOOD)),
        ("half", Sample(2.0, 10.0, GOOD)),
        ("total", Sample(10.0, 10.0, GOOD)),
    ]
    assert engine.evaluate(12.0) == []  # nothing changed


def test_only_calcs_whose_inputs_changed_are_given() -> None:
    engine = CalcEngine([calc("a", "m.x + 1"), calc("b", "m.y + 1"), calc("c", "calc.a * m.y")])
    engine.observe("m.x", Sample(1.0, 1.0))
    engine.observe("m.y", Sample(2.0, 1.0))
    assert [name for name, _ in engine.evaluate(1.0)] == ["a", "b", "c"]
    engine.observe("m.y", Sample(3.0, 2.0))
    assert engine.evaluate(2.0) == [("b", Sample(4.0, 2.0, GOOD)), ("c", Sample(6.0, 2.0, GOOD))]
    engine.observe("m.x", Sample(5.0, 3.0))
    assert engine.evaluate(3.0) == [("a", Sample(6.0, 3.0, GOOD)), ("c", Sample(18.0, 3.0, GOOD))]


def test_calc_samples_from_outside_are_ignored() -> None:
    engine = CalcEngine([calc("a", "m.x + 1"), calc("b", "calc.a * 2")])
    engine.observe("calc.a", Sample(100.0, 1.0))
    assert engine.evaluate(1.0) == []


def test_a_bad_calc_propagates_bad_to_its_readers() -> None:
    engine = CalcEngine([calc("a", "m.x / m.y"), calc("b", "calc.a + 1")])
    engine.observe("m.x", Sample(1.0, 1.0))
    engine.observe("m.y", Sample(0.0, 1.0))
    results = dict(engine.evaluate(1.0))
    assert results["a"].quality is BAD
    assert results["b"].quality is BAD
    assert math.isnan(results["b"].value)  # type: ignore[arg-type]


def test_a_cycle_is_a_config_error_naming_the_calcs() -> None:
    found = problems(
        calc("a", "calc.b + 1"), calc("b", "calc.c + 1"), calc("c", "calc.a + m.x"), calc("d", "1")
    )
    assert found == ["calcs read each other in a cycle: a -> b -> c -> a"]


def test_a_calc_reading_itself_is_a_cycle() -> None:
    assert problems(calc("a", "calc.a + 1")) == ["calcs read each other in a cycle: a -> a"]


def test_unknown_calcs_bad_expressions_and_duplicates_are_all_reported() -> None:
    found = problems(
        calc("flow", "calc.flwo * 2"),
        calc("level", "m.x +"),
        calc("level", "m.y"),
    )
    assert found == [
        "calc 'level' is defined 2 times",
        "calc 'level': invalid expression 'm.x +': at column 6: unexpected end of expression",
        "calc 'flow' reads calc.flwo, which is not a calc (did you mean 'flow'?)",
    ]


def test_a_period_calc_is_due_at_the_first_evaluate_then_every_period() -> None:
    engine = CalcEngine([calc("total", "integral(m.flow, 1h)", period=10.0), calc("x", "m.x")])
    assert engine.next_due() == -math.inf
    engine.observe("m.flow", Sample(36.0, 0.0))  # 36 per hour
    assert engine.evaluate(0.0) == [("total", Sample(0.0, 0.0, GOOD))]
    assert engine.next_due() == 10.0
    assert engine.evaluate(9.9) == []  # quiet input, not due
    assert engine.evaluate(10.0) == [("total", Sample(pytest.approx(0.1), 10.0, GOOD))]  # type: ignore[arg-type]
    assert engine.next_due() == 20.0
    engine.observe("m.flow", Sample(36.0, 12.0))  # a change makes it due at once
    assert [name for name, _ in engine.evaluate(12.0)] == ["total"]
    assert engine.next_due() == 20.0  # the period schedule is kept
    assert engine.evaluate(55.0)[0][1].value == pytest.approx(0.55)
    assert engine.next_due() == 65.0  # missed deadlines are not caught up


def test_a_period_calc_with_unseen_inputs_gives_nothing() -> None:
    engine = CalcEngine([calc("avg", "avg_over(m.x, 1m)", period=5.0)])
    assert engine.evaluate(0.0) == []
    assert engine.next_due() == 5.0


def test_no_period_no_deadline() -> None:
    assert CalcEngine([calc("a", "m.x")]).next_due() is None
    assert CalcEngine([]).next_due() is None


def test_a_period_calc_feeds_its_readers() -> None:
    engine = CalcEngine(
        [calc("avg", "avg_over(m.x, 10s)", period=1.0), calc("high", "calc.avg > 5")]
    )
    engine.observe("m.x", Sample(0.0, 0.0))
    engine.evaluate(0.0)
    engine.observe("m.x", Sample(10.0, 1.0))
    engine.evaluate(1.0)
    results = dict(engine.evaluate(7.0))  # avg over 0..7: (0*1 + 10*6) / 7 > 5
    assert results["avg"].value == pytest.approx(60 / 7)
    assert results["high"] == Sample(True, 7.0, GOOD)


def test_status_lists_every_calc_with_its_last_result() -> None:
    engine = CalcEngine([CalcConfig(name="a", expr="m.x * 2", unit="m3", description="twice")])
    assert engine.status()[0]["value"] is None
    engine.observe("m.x", Sample(2.0, 5.0))
    engine.evaluate(6.0)
    assert engine.status() == [
        {
            "name": "a",
            "expr": "m.x * 2",
            "description": "twice",
            "unit": "m3",
            "period": None,
            "value": 4.0,
            "quality": "good",
            "timestamp": 5.0,
        }
    ]
