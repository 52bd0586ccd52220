"""Detection per alarm type, deadband, bad data and on/off delays, with explicit times."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from plantd.bus import Quality, Sample, SampleValue
from plantd.control._conditions import Condition, Detection

P = "field.level"


def feed(
    condition: Condition, values: Sequence[SampleValue], *, start: float = 0.0
) -> list[bool | None]:
    """One good sample per second; the condition's change after each."""
    return [condition.observe(P, Sample(v, start + i), start + i) for i, v in enumerate(values)]


def high(**kw: object) -> Condition:
    return Condition(Detection("high", P, limit=4.5, deadband=0.1, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["high", "high-high"])
def test_high_raises_above_the_limit_and_clears_below_it_minus_the_deadband(kind: str) -> None:
    c = Condition(Detection(kind, P, limit=4.5, deadband=0.1))
    assert feed(c, [4.4, 4.5, 4.6, 4.45, 4.41, 4.39, 4.5]) == [
        None, None, True, None, None, False, None,
    ]  # fmt: skip
    assert c.value == 4.5
    assert c.sample_time == 6.0


@pytest.mark.parametrize("kind", ["low", "low-low"])
def test_low_is_high_mirrored(kind: str) -> None:
    c = Condition(Detection(kind, P, limit=1.0, deadband=0.2))
    assert feed(c, [1.1, 1.0, 0.9, 1.1, 1.2, 1.21]) == [None, None, True, None, None, False]


def test_a_value_oscillating_around_the_limit_raises_once() -> None:
    c = high()
    changes = feed(c, [4.49, 4.51, 4.48, 4.52, 4.47, 4.53, 4.46, 4.54])
    assert [x for x in changes if x is not None] == [True]


def test_without_a_deadband_the_same_oscillation_chatters() -> None:
    c = Condition(Detection("high", P, limit=4.5))
    changes = feed(c, [4.49, 4.51, 4.48, 4.52])
    assert changes == [None, True, False, True]


def test_rate_is_the_absolute_change_per_second_by_sample_time() -> None:
    c = Condition(Detection("rate", P, limit=1.0, deadband=0.1))
    samples = [(0, 0.0), (1, 0.5), (3, 3.5), (4, 2.55), (5, 1.7)]
    changes = [c.observe(P, Sample(v, t), 100.0 + t) for t, v in samples]
    # rates: -, 0.5, 1.5 (raise), 0.95 (in the deadband), 0.85 (clear); the falling side counts
    assert changes == [None, None, True, None, False]


def test_rate_skips_a_sample_that_is_not_newer() -> None:
    c = Condition(Detection("rate", P, limit=1.0))
    assert c.observe(P, Sample(0.0, 10.0), 0.0) is None
    assert c.observe(P, Sample(50.0, 10.0), 1.0) is None  # same timestamp: no rate
    assert c.observe(P, Sample(50.0, 9.0), 2.0) is None  # older: no rate
    assert c.observe(P, Sample(0.5, 11.0), 3.0) is None  # 0.5/s against the sample at 10.0
    assert c.observe(P, Sample(5.0, 12.0), 4.0) is True


def test_deviation_from_a_number() -> None:
    c = Condition(Detection("deviation", P, limit=0.5, deadband=0.1, setpoint=3.0))
    assert c.inputs == {P}
    assert feed(c, [3.4, 2.4, 2.55, 2.61, 3.0]) == [None, True, None, False, None]


def test_deviation_from_a_point_tracks_the_setpoint() -> None:
    sp = "station.level_sp"
    c = Condition(Detection("deviation", P, limit=0.5, deadband=0.1, setpoint=sp))
    assert c.inputs == {P, sp}
    assert c.observe(P, Sample(3.6, 1.0), 1.0) is None  # no setpoint yet: nothing known
    assert c.observe(sp, Sample(3.0, 2.0), 2.0) is True  # |3.6 - 3.0| > 0.5
    assert c.observe(sp, Sample(3.5, 3.0), 3.0) is False  # |3.6 - 3.5| < 0.4
    assert c.observe(sp, Sample(0.0, 4.0, Quality.BAD), 4.0) is None  # bad setpoint: keep
    assert c.observe(P, Sample(9.0, 5.0), 5.0) is None  # still no good setpoint
    assert c.observe(sp, Sample(3.5, 6.0), 6.0) is True


@pytest.mark.parametrize(
    ("state", "values", "expected"),
    [
        (True, [False, True, True, False], [None, True, None, False]),
        ("FAULT", ["OK", "FAULT", 3, "OK"], [None, True, False, None]),
        (2, [1, 2.0, 3], [None, True, False]),
    ],
)
def test_discrete_is_abnormal_at_its_state(
    state: SampleValue, values: list[SampleValue], expected: list[bool | None]
) -> None:
    c = Condition(Detection("discrete", P, state=state))  # type: ignore[arg-type]
    assert feed(c, values) == expected


def test_discrete_keeps_its_condition_on_bad_data() -> None:
    c = Condition(Detection("discrete", P, state=True))
    assert c.observe(P, Sample(True, 1.0), 1.0) is True
    assert c.observe(P, Sample(False, 2.0, Quality.BAD), 2.0) is None
    assert c.observe(P, Sample(None, 3.0), 3.0) is None
    assert c.active


def test_bad_quality_is_bad_only_not_uncertain() -> None:
    c = Condition(Detection("bad-quality", P))
    qualities = [Quality.GOOD, Quality.UNCERTAIN, Quality.BAD, Quality.BAD, Quality.UNCERTAIN]
    changes = [c.observe(P, Sample(1.0, t, q), float(t)) for t, q in enumerate(qualities)]
    assert changes == [None, None, True, None, False]


@pytest.mark.parametrize(
    "bad",
    [
        Sample(0.0, 2.0, Quality.BAD),
        Sample(0.0, 2.0, Quality.UNCERTAIN),
        Sample("low", 2.0),
        Sample(None, 2.0),
        Sample(float("nan"), 2.0),
        Sample([1, 2], 2.0),
    ],
)
def test_bad_data_neither_raises_nor_clears_a_limit_alarm(bad: Sample) -> None:
    c = high()
    assert c.observe(P, Sample(5.0, 1.0), 1.0) is True
    assert c.observe(P, bad, 2.0) is None
    assert c.active
    assert c.observe(P, Sample(0.0, 3.0), 3.0) is False
    bad_high = Sample(9.0, 4.0, bad.quality) if bad.quality is not Quality.GOOD else bad
    assert c.observe(P, bad_high, 4.0) is None
    assert not c.active


def test_a_bool_is_a_number() -> None:
    c = Condition(Detection("high", P, limit=0.5))
    assert feed(c, [False, True]) == [None, True]


def test_on_delay_needs_the_condition_to_hold_continuously() -> None:
    c = high(on_delay=2.0)
    assert c.observe(P, Sample(5.0, 10.0), 10.0) is None
    assert c.next_due() == 12.0
    assert c.tick(11.9) is None
    assert c.observe(P, Sample(4.0, 11.0), 11.0) is None  # gone before the delay ended
    assert c.next_due() is None
    assert c.tick(12.0) is None
    assert c.observe(P, Sample(5.0, 12.5), 12.5) is None
    assert c.next_due() == 14.5
    assert c.observe(P, Sample(5.1, 13.0), 13.0) is None  # holding: the delay is not restarted
    assert c.tick(14.5) is True
    assert c.next_due() is None


def test_a_sample_after_the_delay_raises_without_a_tick() -> None:
    c = high(on_delay=2.0)
    c.observe(P, Sample(5.0, 10.0), 10.0)
    assert c.observe(P, Sample(5.0, 13.0), 13.0) is True


def test_off_delay_needs_the_condition_gone_continuously() -> None:
    c = high(off_delay=5.0)
    assert c.observe(P, Sample(5.0, 0.0), 0.0) is True  # no on_delay: at once
    assert c.observe(P, Sample(4.0, 1.0), 1.0) is None
    assert c.next_due() == 6.0
    assert c.observe(P, Sample(4.45, 2.0), 2.0) is None  # in the deadband: still gone
    assert c.observe(P, Sample(4.6, 3.0), 3.0) is None  # back: the clearing is off
    assert c.next_due() is None
    assert c.observe(P, Sample(4.0, 4.0), 4.0) is None
    assert c.tick(8.9) is None
    assert c.tick(9.0) is False


def test_a_restored_active_condition_is_not_raised_again() -> None:
    c = Condition(Detection("high", P, limit=4.5), active=True)
    assert c.observe(P, Sample(5.0, 1.0), 1.0) is None
    assert c.observe(P, Sample(4.0, 2.0), 2.0) is False


def test_other_points_are_ignored() -> None:
    c = high()
    assert c.observe("field.other", Sample(100.0, 1.0), 1.0) is None
    assert c.value is None
