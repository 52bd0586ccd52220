"""Publish on change: the rules P1-P5 at the top of plantd/module/_publishing.py."""

from __future__ import annotations

import math

from plantd.bus import Quality
from plantd.module import PointConfig, PointDefaults
from plantd.module._publishing import PublishFilter

GOOD, BAD = Quality.GOOD, Quality.BAD


def make(**point: object) -> PublishFilter:
    defaults = {k: point.pop(k) for k in list(point) if k.startswith("default_")}
    return PublishFilter(
        PointConfig(name="p", **point),  # type: ignore[arg-type]
        PointDefaults(**{k.removeprefix("default_"): v for k, v in defaults.items()}),  # type: ignore[arg-type]
    )


def test_first_value_and_quality_changes_are_published() -> None:
    f = make(deadband=100)
    assert f.offer(1.0, GOOD, 0)
    assert not f.offer(2.0, GOOD, 1)
    assert f.offer(None, BAD, 2)
    assert not f.offer(None, BAD, 3)
    assert f.offer(2.0, GOOD, 4)


def test_without_deadband_any_change_is_published() -> None:
    f = make()
    assert f.offer(1, GOOD, 0)
    assert not f.offer(1, GOOD, 1)
    assert f.offer(2, GOOD, 2)


def test_absolute_deadband_measures_from_the_last_published_value() -> None:
    f = make(deadband=0.5)
    assert f.offer(10.0, GOOD, 0)
    assert not f.offer(10.3, GOOD, 1)
    assert not f.offer(10.45, GOOD, 2)  # creeping does not accumulate
    assert f.offer(10.5, GOOD, 3)
    assert not f.offer(10.1, GOOD, 4)
    assert f.offer(9.9, GOOD, 5)


def test_percent_deadband() -> None:
    f = make(deadband_percent=10)
    assert f.offer(200.0, GOOD, 0)
    assert not f.offer(215.0, GOOD, 1)
    assert f.offer(220.0, GOOD, 2)


def test_the_point_inherits_module_defaults_unless_it_overrides() -> None:
    inherited = make(default_deadband=5)
    assert inherited.offer(0, GOOD, 0)
    assert not inherited.offer(4, GOOD, 1)
    own = make(default_deadband=5, deadband=1)
    assert own.offer(0, GOOD, 0)
    assert own.offer(4, GOOD, 1)


def test_max_silence_republishes_a_steady_value() -> None:
    f = make(max_silence=10.0)
    assert f.offer(1, GOOD, 0)
    assert not f.offer(1, GOOD, 9.9)
    assert f.offer(1, GOOD, 10.0)
    assert not f.offer(1, GOOD, 15)


def test_non_numeric_values_publish_on_any_difference() -> None:
    f = make(deadband=1000)
    assert f.offer("idle", GOOD, 0)
    assert not f.offer("idle", GOOD, 1)
    assert f.offer("running", GOOD, 2)
    assert f.offer(True, GOOD, 3)
    assert not f.offer(True, GOOD, 4)


def test_nan_is_equal_to_nan_only() -> None:
    f = make(deadband=1)
    assert f.offer(math.nan, GOOD, 0)
    assert not f.offer(math.nan, GOOD, 1)
    assert f.offer(1.0, GOOD, 2)
    assert f.offer(math.nan, GOOD, 3)
