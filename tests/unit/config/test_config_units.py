"""Durations and sizes as text: plantd.config._units."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantd.config._units import parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("2.5s", 2.5),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("7d", 604800.0),
        ("2.5", 2.5),
        (" 3 s ", 3.0),
        (".5s", 0.5),
        ("1e3ms", 1.0),
        ("-1s", -1.0),
        ("0", 0.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "fast", "1 sec", "1w", "1.5.5s", "s", "1e400", "1e99999h"])
def test_not_durations(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4096", 4096),
        ("1B", 1),
        ("512KiB", 524_288),
        ("1MiB", 1_048_576),
        ("1GiB", 2**30),
        ("1kB", 1000),
        ("1KB", 1000),
        ("1MB", 1_000_000),
        ("1GB", 10**9),
        ("1.5kB", 1500),
        ("2 MiB", 2_097_152),
        ("1e3", 1000),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "big", "1.5B", "1.5", "0.1KiB", "1TB", "1 K", "1 MiBs"])
def test_not_sizes(text: str) -> None:
    assert parse_size(text) is None


@given(st.integers(min_value=0, max_value=10**12))
def test_milliseconds_are_exact(n: int) -> None:
    assert parse_duration(f"{n}ms") == n / 1000


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False))
def test_seconds_round_trip_through_repr(seconds: float) -> None:
    assert parse_duration(repr(seconds)) == seconds
    assert parse_duration(f"{seconds!r}s") == seconds


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["KiB", "MiB", "kB", "MB"]))
def test_whole_multiples(n: int, unit: str) -> None:
    factor = {"KiB": 1024, "MiB": 1024**2, "kB": 1000, "MB": 1000**2}[unit]
    assert parse_size(f"{n}{unit}") == n * factor
