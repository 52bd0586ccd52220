"""The unit table of convert()."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantd.control._units import UNITS, UnitError, conversion_problem, convert
from plantd.errors import PlantdError


@pytest.mark.parametrize(
    ("value", "source", "target", "expected"),
    [
        (100.0, "degC", "degF", 212.0),
        (-40.0, "degC", "degF", -40.0),
        (32.0, "degF", "degC", 0.0),
        (0.0, "degC", "K", 273.15),
        (0.0, "K", "degF", -459.67),
        (1.0, "ft", "m", 0.3048),
        (12.0, "in", "ft", 1.0),
        (1500.0, "mm", "m", 1.5),
        (1.0, "gal", "l", 3.785411784),
        (1.0, "m3", "l", 1000.0),
        (1.0, "m3/h", "l/min", 1000.0 / 60),
        (1.0, "gpm", "l/min", 3.785411784),
        (3.6, "m3/h", "l/s", 1.0),
        (1.0, "bar", "kPa", 100.0),
        (1.0, "psi", "kPa", 6.894757293168361),
        (1013.25, "mbar", "Pa", 101325.0),
        (1.0, "kWh", "J", 3.6e6),
        (2.5, "MWh", "kWh", 2500.0),
        (1500.0, "W", "kW", 1.5),
        (1.0, "lb", "kg", 0.45359237),
        (2.5, "t", "kg", 2500.0),
        (90.0, "min", "h", 1.5),
        (36.0, "t/h", "kg/s", 10.0),
        (5.0, "L", "l", 5.0),
        (20.0, "°C", "degF", 68.0),
    ],
)
def test_conversions(value: float, source: str, target: str, expected: float) -> None:
    assert convert(value, source, target) == pytest.approx(expected)


@given(
    st.sampled_from(sorted(UNITS)),
    st.sampled_from(sorted(UNITS)),
    st.floats(min_value=-1e6, max_value=1e6),
)
def test_a_round_trip_gives_the_value_back(source: str, target: str, value: float) -> None:
    if conversion_problem(source, target) is None:
        back = convert(convert(value, source, target), target, source)
        assert back == pytest.approx(value, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize(
    ("source", "target", "problem"),
    [
        ("degC", "bar", "cannot convert 'degC' (temperature) to 'bar' (pressure)"),
        ("kW", "kWh", "cannot convert 'kW' (power) to 'kWh' (energy)"),
        ("furlong", "m", "unknown unit 'furlong'"),
        ("m", "KM", "unknown unit 'KM' (did you mean 'km'?)"),
        ("kwh", "J", "unknown unit 'kwh' (did you mean 'kWh'?)"),
    ],
)
def test_unknown_and_incompatible_units(source: str, target: str, problem: str) -> None:
    assert conversion_problem(source, target) == problem
    with pytest.raises(UnitError) as caught:
        convert(1.0, source, target)
    assert str(caught.value) == problem
    assert isinstance(caught.value, PlantdError)
    assert isinstance(caught.value, ValueError)
