"""A module's read answer as a start sample (plantd/control/_priming.py)."""

from __future__ import annotations

import math

import pytest

from plantd.bus import Quality, Sample
from plantd.control._priming import sample_of


def test_a_reading_is_a_sample_with_its_own_time_and_quality() -> None:
    reading = {"value": 2.5, "quality": "uncertain", "timestamp": 1000.0}
    assert sample_of(reading) == Sample(2.5, 1000.0, Quality.UNCERTAIN)


def test_non_finite_numbers_come_back_from_their_text() -> None:
    sample = sample_of({"value": "nan", "quality": "bad", "timestamp": 5})
    assert sample is not None
    assert math.isnan(sample.value)  # type: ignore[arg-type]
    assert sample_of({"value": "-inf", "quality": "good", "timestamp": 5}) == Sample(
        -math.inf, 5.0, Quality.GOOD
    )


@pytest.mark.parametrize(
    "reading",
    [
        None,
        [],
        {"quality": "good", "timestamp": 1.0},  # no value
        {"value": 1, "quality": "excellent", "timestamp": 1.0},
        {"value": 1, "quality": "good"},
        {"value": 1, "quality": "good", "timestamp": True},
        {"value": 1, "quality": "good", "timestamp": "now"},
    ],
)
def test_anything_else_is_no_sample(reading: object) -> None:
    assert sample_of(reading) is None
