"""Failed-login throttling (plantd.proxy._throttle) on a manual clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantd.proxy._throttle import LoginThrottle, address_key
from plantd.testing import ManualClock
from tests.unit.security._keys import write_config

WINDOW = 300.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def throttle(clock: ManualClock) -> LoginThrottle:
    return LoginThrottle(clock, attempts=5, window=WINDOW)


async def test_a_person_gets_the_attempts_then_waits_for_the_window(
    throttle: LoginThrottle, clock: ManualClock
) -> None:
    for n in range(5):
        assert throttle.attempt("user.alice", f"192.0.2.{n}") is None
        await clock.advance(10)
    assert throttle.failures(person="user.alice") == 5
    # The first failure was 50 s ago: it leaves the window in 250 s.
    assert throttle.attempt("user.alice", "198.51.100.1") == 250
    await clock.advance(249.5)
    assert throttle.attempt("user.alice", "198.51.100.1") == 1  # rounded up, never 0
    await clock.advance(0.5)
    assert throttle.attempt("user.alice", "198.51.100.1") is None  # one slot freed
    assert throttle.attempt("user.alice", "198.51.100.1") == 10  # the next leaves in 10 s


async def test_refused_attempts_do_not_prolong_the_wait(
    throttle: LoginThrottle, clock: ManualClock
) -> None:
    for _ in range(5):
        assert throttle.attempt("user.alice", "192.0.2.1") is None
    for _ in range(100):
        assert throttle.attempt("user.alice", "192.0.2.1") == 300
    await clock.advance(WINDOW)
    assert throttle.attempt("user.alice", "192.0.2.1") is None


def test_an_address_is_refused_whichever_person_it_tries(throttle: LoginThrottle) -> None:
    for name in "abcde":
        assert throttle.attempt(f"user.{name}", "192.0.2.7") is None
    assert throttle.attempt("user.f", "192.0.2.7") == 300
    assert throttle.attempt("user.f", "192.0.2.8") is None  # another address may
    assert throttle.failures(address="192.0.2.7") == 5


def test_ipv6_clients_are_counted_by_their_64(throttle: LoginThrottle) -> None:
    for n in range(5):
        assert throttle.attempt(f"user.{n}", f"2001:db8:1:2::{n + 1}") is None
    assert throttle.attempt("user.x", "2001:db8:1:2:ffff::1") == 300
    assert throttle.attempt("user.x", "2001:db8:1:3::1") is None
    assert address_key("::ffff:192.0.2.1") == address_key("192.0.2.1")
    assert address_key(None) == address_key("") == "address:unknown"
    assert address_key("not an address") == "address:not an address"


def test_success_forgets_the_person_but_not_the_address(throttle: LoginThrottle) -> None:
    for _ in range(4):
        assert throttle.attempt("user.alice", "192.0.2.1") is None
    assert throttle.attempt("user.alice", "192.0.2.1") is None
    throttle.succeeded("user.alice", "192.0.2.1")
    assert throttle.failures(person="user.alice") == 0
    assert throttle.failures(address="192.0.2.1") == 4  # the right attempt taken back only
    assert throttle.attempt("user.bob", "192.0.2.1") is None
    assert throttle.attempt("user.bob", "192.0.2.1") == 300


def test_success_of_nobody_known_changes_nothing(throttle: LoginThrottle) -> None:
    throttle.succeeded("user.alice", "192.0.2.1")
    assert len(throttle) == 0


async def test_memory_is_bounded(clock: ManualClock) -> None:
    throttle = LoginThrottle(clock, attempts=3, window=WINDOW, capacity=10)
    for n in range(100):
        assert throttle.attempt(f"user.{n}", f"10.0.0.{n}") is None
        assert len(throttle) <= 10
    assert throttle.failures(person="user.99") == 1  # the newest are kept
    assert throttle.failures(address="10.0.0.99") == 1
    assert throttle.failures(person="user.0") == 0  # the least recently failed went
    # A key that keeps failing stays while newcomers push others out.
    for n in range(100, 110):
        throttle.attempt("user.guess", f"10.0.0.{n}")
    assert throttle.failures(person="user.guess") == 3
    assert throttle.attempt("user.guess", "10.0.1.1") is not None
    # Keys whose failures all left the window go first when room is needed.
    await clock.advance(WINDOW)
    assert throttle.attempt("user.other", "10.0.2.1") is None
    assert len(throttle) == 2


async def test_keys_whose_failures_left_the_window_are_forgotten(
    throttle: LoginThrottle, clock: ManualClock
) -> None:
    throttle.attempt("user.alice", "192.0.2.1")
    await clock.advance(WINDOW)
    assert throttle.attempt("user.alice", "192.0.2.1") is None
    assert throttle.failures(person="user.alice") == 1


def test_from_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, proxy={"login_attempts": 2, "login_window": "1m"})
    throttle = LoginThrottle.from_config(config, ManualClock())
    assert (throttle.attempts, throttle.window) == (2, 60.0)


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="attempts"):
        LoginThrottle(ManualClock(), attempts=0, window=1)
    with pytest.raises(ValueError, match="window"):
        LoginThrottle(ManualClock(), attempts=1, window=0)
