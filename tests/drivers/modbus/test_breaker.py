"""The per-unit circuit breaker, sans-IO: every transition with an explicit clock."""

from __future__ import annotations

from plantd_drivers.modbus._breaker import Breaker, BreakerState


def test_a_failure_opens_and_the_time_up_lets_one_probe_out() -> None:
    b = Breaker(initial=1.0, maximum=8.0)
    assert b.allow(0.0)
    assert b.retries(2) == 2
    assert b.failed(0.0) is True  # tripped: it was answering until now
    assert b.state is BreakerState.OPEN
    assert b.down
    assert not b.allow(0.5)
    assert b.next_probe_in(0.5) == 0.5
    assert b.allow(1.0)  # the probe
    assert b.state is BreakerState.PROBING
    assert b.retries(2) == 0  # probes are not retried
    assert not b.allow(1.0)  # one probe at a time
    assert b.next_probe_in(1.0) is None


def test_backoff_doubles_to_the_maximum_and_resets_on_success() -> None:
    b = Breaker(initial=1.0, maximum=3.0)
    b.failed(0.0)
    now, delays = 0.0, []
    for _ in range(4):
        now = b.until
        assert b.allow(now)
        assert b.failed(now) is False  # still down: not a new trip
        delays.append(b.until - now)
    assert delays == [2.0, 3.0, 3.0, 3.0]
    assert b.trips == 1
    assert b.allow(b.until)
    assert b.succeeded() is True  # recovered
    assert b.state is BreakerState.CLOSED
    assert b.delay == 1.0
    assert b.succeeded() is False


def test_an_abandoned_probe_lets_the_next_request_probe() -> None:
    b = Breaker(initial=1.0, maximum=8.0)
    b.failed(0.0)
    assert b.allow(1.0)
    b.abandoned(1.5)
    assert b.state is BreakerState.OPEN
    assert b.allow(1.5)


def test_reset() -> None:
    b = Breaker(initial=1.0, maximum=8.0)
    b.failed(0.0)
    b.reset()
    assert b.allow(0.0)
    assert not b.down
