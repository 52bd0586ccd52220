"""Drift-free schedules and the connection state machine (both sans-IO)."""

from __future__ import annotations

import random

import pytest

from plantd.module._connection import Connection, ConnectionState
from plantd.module._schedule import Schedule


def test_deadlines_do_not_drift() -> None:
    schedule = Schedule(0.1, start=100.0)
    assert schedule.deadline == 100.0
    # Each poll takes a varying time, well within the interval: deadlines stay on the grid.
    for n, duration in enumerate([0.003, 0.05, 0.001, 0.07] * 25, start=1):
        finished = schedule.deadline + duration
        assert schedule.polled(finished) == pytest.approx(100.0 + n * 0.1)
    assert schedule.overruns == 0
    assert schedule.polls == 100


def test_overruns_skip_missed_deadlines_and_are_counted() -> None:
    schedule = Schedule(1.0, start=0.0)
    assert schedule.polled(0.5) == 1.0
    assert schedule.polled(3.2) == 4.0  # deadlines 2 and 3 were missed
    assert schedule.overruns == 2
    assert schedule.polled(5.0) == 6.0  # finishing exactly on the next deadline misses it
    assert schedule.overruns == 3


def test_restart_keeps_counters() -> None:
    schedule = Schedule(1.0, start=0.0)
    schedule.polled(0.1)
    schedule.restart(50.0)
    assert schedule.deadline == 50.0
    assert schedule.polls == 1


def test_backoff_grows_capped_with_jitter_and_resets_on_success() -> None:
    connection = Connection("t", initial=1.0, maximum=8.0, rng=random.Random(1))
    delays = [connection.failed(float(i), "refused") for i in range(8)]
    ceilings = [1, 2, 4, 8, 8, 8, 8, 8]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert connection.state is ConnectionState.BACKOFF
    assert connection.attempts == 8
    connection.connected(20.0)
    assert connection.state is ConnectionState.CONNECTED
    assert connection.attempts == 0
    assert connection.failed(21.0, "again") <= 1.0


def test_transitions_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    connection = Connection("module m", initial=0.1, maximum=1.0)
    with caplog.at_level("INFO", logger="plantd.module._connection"):
        connection.connected(0.0)
        for i in range(5):
            connection.failed(1.0 + i, "timeout")
        connection.connected(10.0)
    messages = [r.getMessage() for r in caplog.records if r.levelname != "DEBUG"]
    assert messages == [
        "module m: connected",
        "module m: unavailable: timeout (retrying with backoff)",
        "module m: connected again after 5 attempt(s), 9.0 s unavailable",
    ]
