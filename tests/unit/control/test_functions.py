"""Stateful functions: windows, integral, rate and delta, with explicit timestamps."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantd.bus import Quality
from plantd.control._functions import FUNCTIONS, MAX_WINDOW_SAMPLES, PURE, make_state

GOOD, UNCERTAIN, BAD = Quality.GOOD, Quality.UNCERTAIN, Quality.BAD


def rounded(result: tuple[float, Quality]) -> tuple[float, Quality]:
    """A state's result with its value rounded to 9 places (for exact comparisons)."""
    return round(result[0], 9), result[1]


def test_every_function_has_a_signature_and_the_pure_ones_an_implementation() -> None:
    stateful = {name for name, signature in FUNCTIONS.items() if signature.stateful}
    assert stateful == {"avg_over", "min_over", "max_over", "integral", "rate", "delta"}
    assert set(PURE) == set(FUNCTIONS) - stateful


def test_avg_over_is_time_weighted_with_values_held_until_the_next_sample() -> None:
    window = make_state("avg_over", (10.0,))
    window.push(0.0, 0.0, GOOD)
    window.push(8.0, 10.0, GOOD)  # 0 for 8 s, then 10
    assert rounded(window.result(10.0)) == (2.0, GOOD)  # (0*8 + 10*2) / 10
    assert rounded(window.result(13.0)) == (5.0, GOOD)  # window 3..13: 0*5 + 10*5
    assert window.result(18.0) == (10.0, GOOD)  # 8..18: only the 10 is left


def test_a_window_shorter_than_its_width_averages_what_it_has() -> None:
    window = make_state("avg_over", (60.0,))
    window.push(100.0, 4.0, GOOD)
    assert window.result(100.0) == (4.0, GOOD)
    window.push(110.0, 8.0, GOOD)
    assert rounded(window.result(120.0)) == (6.0, GOOD)


def test_min_and_max_over_count_the_value_held_into_the_window() -> None:
    low, high = make_state("min_over", (10.0,)), make_state("max_over", (10.0,))
    for state in (low, high):
        for t, v in ((0.0, 5.0), (3.0, -1.0), (6.0, 7.0), (9.0, 2.0)):
            state.push(t, v, GOOD)
    assert low.result(9.0) == (-1.0, GOOD)
    assert high.result(9.0) == (7.0, GOOD)
    assert low.result(15.0) == (-1.0, GOOD)  # window 5..15: -1 is held until 6
    assert low.result(16.5) == (2.0, GOOD)  # window 6.5..16.5: 7 (held until 9) and 2
    assert high.result(18.9) == (7.0, GOOD)  # 8.9..18.9: 7 is held until 9
    assert high.result(19.0) == (2.0, GOOD)  # 9..19: 7 was replaced at the window's start


def test_min_over_holds_a_value_until_it_is_replaced() -> None:
    low = make_state("min_over", (10.0,))
    low.push(0.0, -1.0, GOOD)
    low.push(6.0, 3.0, GOOD)
    assert low.result(15.0) == (-1.0, GOOD)  # -1 held from 0 to 6, inside 5..15
    assert low.result(16.5) == (3.0, GOOD)


def test_a_bad_value_is_a_gap_that_makes_the_window_uncertain_while_it_is_in_it() -> None:
    window = make_state("avg_over", (10.0,))
    window.push(0.0, 2.0, GOOD)
    window.push(4.0, math.nan, BAD)
    window.push(6.0, 4.0, GOOD)
    value, quality = window.result(10.0)
    assert value == pytest.approx((2.0 * 4 + 4.0 * 4) / 8)  # the 2 s gap counts nothing
    assert quality is UNCERTAIN
    assert window.result(16.5) == (4.0, GOOD)


def test_a_window_of_only_gaps_is_bad() -> None:
    window = make_state("max_over", (10.0,))
    window.push(0.0, 1.0, GOOD)
    window.push(1.0, math.nan, BAD)
    value, quality = window.result(20.0)
    assert math.isnan(value)
    assert quality is BAD


def test_a_nan_before_any_number_is_not_kept() -> None:
    window = make_state("avg_over", (10.0,))
    window.push(0.0, math.nan, BAD)
    window.push(1.0, 3.0, GOOD)
    assert window.result(5.0) == (3.0, GOOD)


def test_out_of_order_and_duplicate_samples_are_ignored() -> None:
    window = make_state("max_over", (100.0,))
    window.push(10.0, 1.0, GOOD)
    window.push(10.0, 50.0, GOOD)
    window.push(5.0, 60.0, GOOD)
    assert window.result(20.0) == (1.0, GOOD)


def test_the_window_keeps_at_most_its_cap_and_is_uncertain_when_it_lost_samples() -> None:
    window = make_state("max_over", (1e9,))
    window.push(0.0, 1000.0, GOOD)
    for index in range(1, MAX_WINDOW_SAMPLES + 1):
        window.push(float(index), 1.0, GOOD)
    assert len(window.samples) == MAX_WINDOW_SAMPLES  # type: ignore[attr-defined]
    assert window.result(MAX_WINDOW_SAMPLES + 1.0) == (1.0, UNCERTAIN)  # the 1000 is gone


def test_old_samples_leave_memory_as_time_passes() -> None:
    window = make_state("avg_over", (10.0,))
    for index in range(1000):
        window.push(float(index), 1.0, GOOD)
    assert len(window.samples) <= 12  # type: ignore[attr-defined]


def test_integral_of_a_ramp_matches_the_analytical_value() -> None:
    # x(t) = 3 t, sampled every 0.5 s from 0 to 60: the trapezoid rule is exact for a line,
    # ∫0..60 3t dt = 1.5 * 60² = 5400; per hour: 5400 / 3600 = 1.5
    total = make_state("integral", (3600.0,))
    for index in range(121):
        t = index * 0.5
        total.push(t, 3 * t, GOOD)
    value, quality = total.result(60.0)
    assert value == pytest.approx(1.5)
    assert quality is GOOD


def test_integral_of_a_sine_converges_to_the_analytical_value() -> None:
    # ∫0..π sin t dt = 2, 1000 samples: the trapezoid rule's error is about π³/(12·1000²)
    total = make_state("integral", (1.0,))
    steps = 1000
    for index in range(steps + 1):
        t = math.pi * index / steps
        total.push(t, math.sin(t), GOOD)
    assert total.result(math.pi)[0] == pytest.approx(2.0, abs=1e-5)


def test_integral_holds_the_last_value_up_to_now() -> None:
    total = make_state("integral", (60.0,))
    total.push(0.0, 6.0, GOOD)
    assert total.result(0.0) == (0.0, GOOD)
    assert rounded(total.result(30.0)) == (3.0, GOOD)  # 6 per minute for half a minute
    total.push(60.0, 6.0, UNCERTAIN)
    assert rounded(total.result(90.0)) == (9.0, UNCERTAIN)  # the last sample's quality


def test_integral_skips_intervals_that_end_in_a_bad_value() -> None:
    total = make_state("integral", (1.0,))
    total.push(0.0, 1.0, GOOD)
    total.push(10.0, math.nan, BAD)
    assert total.result(20.0) == (0.0, BAD)
    total.push(20.0, 1.0, GOOD)
    total.push(30.0, 1.0, GOOD)
    assert rounded(total.result(30.0)) == (10.0, GOOD)


def test_rate_is_per_second_over_the_last_two_samples() -> None:
    rate = make_state("rate", ())
    rate.push(0.0, 100.0, GOOD)
    value, quality = rate.result(0.0)
    assert math.isnan(value)
    assert quality is BAD
    rate.push(10.0, 150.0, GOOD)
    assert rate.result(10.0) == (5.0, GOOD)
    rate.push(20.0, 170.0, UNCERTAIN)
    assert rate.result(99.0) == (2.0, UNCERTAIN)


def test_rate_across_a_counter_reset_counts_up_from_zero() -> None:
    rate = make_state("rate", ())
    rate.push(0.0, 65530.0, GOOD)
    rate.push(10.0, 40.0, GOOD)  # wrapped (or reset) and counted 40 since
    assert rate.result(10.0) == (4.0, GOOD)
    rate.push(20.0, 60.0, GOOD)
    assert rate.result(20.0) == (2.0, GOOD)


@given(st.lists(st.floats(min_value=0, max_value=1e9), min_size=2, max_size=50))
def test_rate_is_never_negative(values: list[float]) -> None:
    rate = make_state("rate", ())
    for index, value in enumerate(values):
        rate.push(float(index), value, GOOD)
        if index:
            assert rate.result(float(index))[0] >= 0


def test_delta_is_the_last_minus_the_previous_sample() -> None:
    delta = make_state("delta", ())
    delta.push(1.0, 10.0, GOOD)
    delta.push(2.0, 7.0, GOOD)
    assert delta.result(5.0) == (-3.0, GOOD)


def test_only_stateful_functions_have_states() -> None:
    with pytest.raises(ValueError, match="'abs' is not a stateful function"):
        make_state("abs", ())


def test_arity_messages() -> None:
    assert FUNCTIONS["integral"].arity_problem(1) is None
    assert FUNCTIONS["integral"].arity_problem(3) == "integral() takes 1 to 2 arguments, got 3"
    assert FUNCTIONS["max"].arity_problem(9) is None


@given(
    st.floats(min_value=-1e6, max_value=1e6),
    st.lists(st.floats(min_value=0.001, max_value=100), min_size=1, max_size=30),
    st.floats(min_value=0.1, max_value=1000),
)
def test_windows_of_a_constant_give_the_constant(
    value: float, gaps: list[float], width: float
) -> None:
    states = [make_state(name, (width,)) for name in ("avg_over", "min_over", "max_over")]
    t = 0.0
    for gap in gaps:
        t += gap
        for state in states:
            state.push(t, value, GOOD)
    for state in states:
        result, quality = state.result(t + width / 2)
        assert result == pytest.approx(value)
        assert quality is GOOD


@given(st.lists(st.floats(min_value=-1e3, max_value=1e3), min_size=2, max_size=30))
def test_the_average_lies_between_the_minimum_and_the_maximum(values: list[float]) -> None:
    states = [make_state(name, (10.0,)) for name in ("avg_over", "min_over", "max_over")]
    for index, value in enumerate(values):
        for state in states:
            state.push(float(index), value, GOOD)
    now = float(len(values))
    average, low, high = (state.result(now)[0] for state in states)
    assert low - 1e-9 <= average <= high + 1e-9
