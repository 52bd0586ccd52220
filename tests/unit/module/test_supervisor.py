"""The module supervisor alone (rules R1–R8 of plantd.module._supervisor): events with explicit
times in, actions out. No event loop, no clock, no sockets."""

from __future__ import annotations

import logging
import random

import pytest

from plantd.errors import DeviceFault, DeviceUnavailable
from plantd.module import Reading
from plantd.module._connection import Connection, ConnectionState
from plantd.module._supervisor import (
    Action,
    Disconnect,
    DriverFailure,
    FailureKind,
    Log,
    MarkBad,
    Reconnect,
    RecordDelivery,
    RecordGroup,
    RetryStream,
    Supervisor,
)
from plantd.testing import FakeGroup, FakeModule, FakePoint

FAST = FakeGroup(
    name="fast", interval=1.0, points=(FakePoint(name="flow"), FakePoint(name="level"))
)
QUICK = FakeGroup(name="quick", interval=0.2, points=(FakePoint(name="edge"),))
SLOW = FakeGroup(name="slow", interval=5.0, points=(FakePoint(name="temp"),))
MODULE = FakeModule(driver="fake", name="pump", groups=(FAST, QUICK, SLOW))
EVERY_POINT = ("flow", "level", "edge", "temp")


def supervisor(
    *, pushed: tuple[str, ...] = (), initial: float = 1.0, maximum: float = 8.0
) -> Supervisor:
    """A started supervisor (at monotonic 0) with a seeded connection backoff."""
    connection = Connection("module pump", initial=initial, maximum=maximum, rng=random.Random(7))
    started = Supervisor(MODULE, connection)
    started.start(0.0, pushed)
    return started


def connected(*, pushed: tuple[str, ...] = ()) -> Supervisor:
    opened = supervisor(pushed=pushed)
    assert opened.opened(0.0) == []
    return opened


def only(actions: list[Action], kind: type) -> list[Action]:
    return [action for action in actions if isinstance(action, kind)]


def logged(actions: list[Action]) -> list[tuple[int, str]]:
    return [(a.level, a.message % a.args) for a in actions if isinstance(a, Log)]


# -- the connection (R1–R3) ----------------------------------------------------------------------


def test_a_failed_open_marks_every_point_bad_and_backs_off_doubling_to_the_maximum() -> None:
    sup = supervisor()
    delays = []
    for attempt in range(6):
        now = 10.0 * attempt
        sup.opening(now)
        actions = sup.open_failed(now, "ConnectionRefusedError: refused")
        assert actions[0] == MarkBad(EVERY_POINT, "unavailable: ConnectionRefusedError: refused")
        (reconnect,) = only(actions, Reconnect)
        assert isinstance(reconnect, Reconnect)
        delays.append(reconnect.after)
    for delay, limit in zip(delays, [1.0, 2.0, 4.0, 8.0, 8.0, 8.0], strict=True):
        assert limit / 2 <= delay <= limit
    assert sup.connection.state is ConnectionState.BACKOFF
    assert sup.connection.attempts == 6
    assert not sup.connected


def test_opening_restarts_every_schedule_on_a_grid_of_its_own() -> None:
    sup = supervisor()
    sup.open_failed(0.0, "refused")
    sup.opening(0.7)
    sup.opened(1.25)
    assert sup.connected
    assert sup.connection.attempts == 0
    assert sup.poll_wait(FAST, 1.25) == 0.0  # the first poll at once
    sup.polled(FAST, 1.25, 1.3, wall=1000.3)
    assert sup.poll_wait(FAST, 1.3) == pytest.approx(0.95)  # due at 2.25, not 2.3


def test_a_lost_connection_is_dropped_once_however_many_groups_say_so() -> None:
    sup = connected()
    first = sup.read_failed(FAST, DeviceUnavailable("cable cut"))
    assert first == [
        Log(
            logging.WARNING,
            "module %s: group %s failing: %s",
            ("pump", "fast", "DeviceUnavailable: cable cut"),
        ),
        MarkBad(("flow", "level"), "DeviceUnavailable: cable cut"),
        Disconnect("DeviceUnavailable: cable cut"),
        MarkBad(EVERY_POINT, "unavailable: DeviceUnavailable: cable cut"),
    ]
    assert not sup.connected
    second = sup.read_failed(SLOW, DeviceUnavailable("no route"))
    assert only(second, Disconnect) == []  # the connection was dropped already
    assert only(second, MarkBad) == [MarkBad(("temp",), "DeviceUnavailable: no route")]
    # the driver closed, the wait before the next attempt follows the connection's backoff
    (reconnect,) = sup.closed(3.0)
    assert isinstance(reconnect, Reconnect)
    assert 0.5 <= reconnect.after <= 1.0
    assert sup.connection.last_error == "DeviceUnavailable: cable cut"


def test_a_write_that_finds_the_connection_gone_drops_it() -> None:
    sup = connected()
    actions = sup.lost("DeviceUnavailable: broken pipe")
    assert actions == [
        Disconnect("DeviceUnavailable: broken pipe"),
        MarkBad(EVERY_POINT, "unavailable: DeviceUnavailable: broken pipe"),
    ]
    assert sup.lost("DeviceUnavailable: again") == []


def test_nothing_is_lost_once_the_module_stops() -> None:
    sup = connected()
    sup.stopping()
    actions = sup.read_failed(FAST, DeviceUnavailable("closed"))
    assert only(actions, Disconnect) == []
    assert only(actions, MarkBad) == [MarkBad(("flow", "level"), "DeviceUnavailable: closed")]


def test_recovery_resets_the_backoff_and_the_next_loss_starts_short_again() -> None:
    sup = connected()
    sup.lost("DeviceUnavailable: cut")
    sup.closed(1.0)
    for now in (3.0, 7.0, 15.0):  # three more attempts fail: the backoff has grown
        sup.opening(now)
        sup.open_failed(now, "refused")
    assert sup.connection.attempts == 4
    sup.opening(19.5)
    sup.opened(20.0)
    assert sup.connection.attempts == 0
    assert sup.connection.state is ConnectionState.CONNECTED
    sup.lost("DeviceUnavailable: cut again")
    (reconnect,) = sup.closed(21.0)
    assert isinstance(reconnect, Reconnect)
    assert reconnect.after <= 1.0


# -- polled groups (R4–R6, R8) -------------------------------------------------------------------


def test_a_good_read_is_recorded_whole() -> None:
    sup = connected()
    readings = {"flow": Reading(12.5)}
    assert sup.read(FAST, readings) == [RecordGroup(FAST, readings)]


def test_a_device_fault_fails_the_group_only_logged_once_until_it_recovers() -> None:
    sup = connected()
    first = sup.read_failed(FAST, DeviceFault("illegal address"))
    assert logged(first) == [
        (logging.WARNING, "module pump: group fast failing: device fault: illegal address")
    ]
    assert only(first, MarkBad) == [MarkBad(("flow", "level"), "device fault: illegal address")]
    assert only(first, Disconnect) == []
    again = sup.read_failed(FAST, DeviceFault("illegal address"))
    assert logged(again) == []  # a repeat is not logged
    stats = sup.stats["fast"]
    assert (stats.failures, stats.error) == (2, "device fault: illegal address")
    assert sup.connected
    readings = {"flow": Reading(1.0), "level": Reading(2.0)}
    recovered = sup.read(FAST, readings)
    assert recovered == [
        RecordGroup(FAST, readings),
        Log(logging.WARNING, "module %s: group %s recovered", ("pump", "fast")),
    ]
    assert stats.error is None
    assert stats.failures == 2
    assert logged(sup.read(FAST, readings)) == []  # recovered once


def test_a_read_past_the_hard_timeout_is_a_lost_connection() -> None:
    sup = connected()
    actions = sup.read_failed(SLOW, TimeoutError())
    reason = "the driver did not answer within 50 s"  # ten intervals of 5 s, above the 30 s floor
    assert only(actions, MarkBad)[0] == MarkBad(("temp",), reason)
    assert only(actions, Disconnect) == [Disconnect(reason)]
    assert sup.read_timeout(FAST) == 30.0


def test_a_driver_bug_is_logged_with_its_traceback_once() -> None:
    sup = connected()
    bug = KeyError("register")
    actions = sup.read_failed(FAST, bug)
    logs = [action for action in actions if isinstance(action, Log)]
    assert [(log.level, log.error) for log in logs] == [
        (logging.ERROR, bug),
        (logging.WARNING, None),
    ]
    assert sup.stats["fast"].error == "driver error: KeyError: 'register'"
    assert only(sup.read_failed(FAST, bug), Log) == []
    assert sup.connected  # a bug does not drop the connection


def test_a_late_poll_skips_the_deadlines_it_missed_and_counts_them() -> None:
    sup = connected()
    sup.polled(FAST, 0.0, 0.1, wall=100.1)  # due at 1
    assert sup.poll_wait(FAST, 0.1) == pytest.approx(0.9)
    sup.polled(FAST, 1.0, 3.4, wall=103.4)  # ran past the deadlines at 2 and 3
    schedule = sup.stats["fast"].schedule
    assert (schedule.polls, schedule.overruns) == (2, 2)
    assert sup.poll_wait(FAST, 3.4) == pytest.approx(0.6)  # the grid holds: next at 4
    status = sup.stats["fast"].as_status()
    assert (status["last_poll"], status["last_duration"]) == (103.4, pytest.approx(2.4))


# -- pushed groups (R3–R7) -----------------------------------------------------------------------


def test_a_delivery_records_only_the_groups_points_as_one_batch() -> None:
    sup = connected(pushed=("fast",))
    assert sup.stats["fast"].pushed
    assert not sup.stats["slow"].pushed
    readings = {"flow": Reading(3.0), "temp": Reading(20.0), "level": Reading(1.0)}
    actions = sup.delivered(FAST, readings, 500.0)
    assert actions == [RecordDelivery((("flow", Reading(3.0)), ("level", Reading(1.0))), 500.0)]
    stats = sup.stats["fast"]
    assert (stats.deliveries, stats.last_delivery) == (1, 500.0)


@pytest.mark.parametrize(("group", "retry"), [(QUICK, 1.0), (FAST, 1.0), (SLOW, 5.0)])
def test_a_stream_that_fails_by_itself_is_opened_again_after_its_interval_at_least_1_s(
    group: FakeGroup, retry: float
) -> None:
    sup = connected(pushed=(group.name,))
    actions = sup.stream_failed(group, DeviceFault("bad node"))
    assert only(actions, RetryStream) == [RetryStream(group.name, retry)]
    assert only(actions, Disconnect) == []
    bug = sup.stream_failed(group, RuntimeError("oops"))
    assert only(bug, RetryStream) == [RetryStream(group.name, retry)]


def test_a_stream_that_ends_loses_the_connection_and_is_not_retried() -> None:
    sup = connected(pushed=("fast",))
    actions = sup.stream_ended(FAST)
    reason = "DeviceUnavailable: the driver's stream ended"
    assert only(actions, Disconnect) == [Disconnect(reason)]
    assert only(actions, RetryStream) == []
    # a stream that reads again after the reconnect has recovered
    sup.closed(1.0)
    sup.opened(2.0)
    assert logged(sup.delivered(FAST, {"flow": Reading(1.0)}, 2.0)) == [
        (logging.WARNING, "module pump: group fast recovered")
    ]


def test_a_timeout_from_a_stream_is_a_driver_error_not_a_lost_connection() -> None:
    # Only a read runs under the hard timeout; a stream's own TimeoutError is the driver's.
    assert DriverFailure.of(TimeoutError()).kind is FailureKind.BUG
    assert DriverFailure.of(TimeoutError(), hard_timeout=30.0).kind is FailureKind.UNAVAILABLE
