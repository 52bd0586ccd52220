"""Interlocks: the state machine alone, then in the engine (writes, tracking, resets)."""

from __future__ import annotations

from typing import Any

import pytest

from plantd.bus import Sample
from plantd.control._interlock import ControlError, Interlock
from plantd.control._loop_config import InterlockConfig, LoopConfig
from plantd.control._loops import LoopEngine, Write
from plantd.errors import ConfigError


def step(eng: LoopEngine, now: float) -> tuple[list[Write], list[dict[str, Any]]]:
    """Step, and report every write as done at once (as the process does)."""
    writes, events = eng.step(now)
    for write in writes:
        events += eng.write_done(write, None, now)
    return writes, events


def transitions(events: list[dict[str, Any]]) -> list[str]:
    return [event["transition"] for event in events]


def test_manual_reset_holds_until_cleared_and_reset() -> None:
    lock = Interlock("high", "station.pump_run", False, "manual")
    assert (lock.state, lock.condition, lock.holding) == ("normal", None, False)
    assert transitions(lock.set_condition(True, 1.0)) == ["tripped"]
    assert lock.set_condition(True, 2.0) == []  # no repeat
    with pytest.raises(ControlError) as info:
        lock.reset("op", 3.0)
    assert info.value.code == "control.still-tripped"
    (cleared,) = lock.set_condition(False, 4.0)
    assert (cleared["transition"], cleared["state"]) == ("cleared", "awaiting-reset")
    assert lock.holding
    assert transitions(lock.set_condition(True, 5.0)) == ["tripped"]  # trips again first
    lock.set_condition(False, 6.0)
    (reset,) = lock.reset("op", 7.0)
    assert (reset["transition"], reset["by"], reset["state"]) == ("reset", "op", "normal")
    assert not lock.holding
    with pytest.raises(ControlError) as info:
        lock.reset("op", 8.0)
    assert info.value.code == "control.not-tripped"


def test_auto_reset_releases_when_the_condition_clears() -> None:
    lock = Interlock("high", "station.pump_run", False, "auto")
    lock.set_condition(True, 1.0)
    (event,) = lock.set_condition(False, 2.0)
    assert (event["transition"], event["by"], lock.state) == ("reset", "auto", "normal")
    assert event == {
        "name": "high",
        "kind": "interlock",
        "transition": "reset",
        "time": 2.0,
        "state": "normal",
        "output": "station.pump_run",
        "safe_value": False,
        "reason": None,
        "by": "auto",
    }


PUMP = InterlockConfig(
    name="pump-stop", when="field.level > 4.7", output="station.pump_run", safe_value=False
)


def test_a_trip_writes_the_safe_value_at_once_and_retries_a_failed_write() -> None:
    eng = LoopEngine([], [PUMP], 0.0, retry_interval=2.0)
    assert eng.next_due() is None
    assert transitions(eng.set_condition("pump-stop", True, 10.0)) == ["tripped"]
    assert eng.next_due() == 10.0
    (write,), _ = eng.step(10.0)
    assert write == Write("pump-stop", "station", "pump_run", False, "interlock")
    assert eng.next_due() is None  # in flight: nothing to do until it returns
    assert eng.step(10.5) == ([], [])
    (event,) = eng.write_done(write, "refused", 10.6)
    assert (event["transition"], event["reason"]) == ("write-failed", "refused")
    assert eng.next_due() == 12.6
    assert eng.step(12.0) == ([], [])
    assert eng.step(12.6)[0] == [write]
    eng.write_done(write, None, 12.7)
    status = eng.status()[0]
    assert status["kind"] == "interlock"
    assert (status["state"], status["condition"], status["safe_value"]) == ("tripped", True, False)
    assert (status["last_write_time"], status["last_write_error"]) == (12.7, None)


def test_reset_while_the_condition_holds_is_refused_by_the_engine() -> None:
    eng = LoopEngine([], [PUMP], 0.0)
    eng.set_condition("pump-stop", True, 1.0)
    with pytest.raises(ControlError) as info:
        eng.reset("pump-stop", "op", 2.0)
    assert info.value.code == "control.still-tripped"
    eng.set_condition("pump-stop", False, 3.0)
    assert transitions(eng.reset("pump-stop", "op", 4.0)) == ["reset"]
    assert step(eng, 5.0)[0] == [Write("pump-stop", "station", "pump_run", False, "interlock")]
    assert step(eng, 6.0) == ([], [])  # releasing writes nothing


LOOP = LoopConfig(
    name="level",
    measurement="field.level",
    output="station.speed",
    kp=2.0,
    ti=4.0,
    setpoint=3.0,
    stale_after=100.0,
)
SPEED = InterlockConfig(
    name="speed-stop", when="field.level > 4.7", output="station.speed", safe_value=0
)


def level(eng: LoopEngine, value: float, now: float) -> None:
    eng.observe("field.level", Sample(value, now))


def test_a_loop_tracks_while_an_interlock_holds_its_output_and_resumes_bumplessly() -> None:
    eng = LoopEngine([LOOP], [SPEED], 0.0)
    level(eng, 2.0, 0.0)
    step(eng, 0.0)
    level(eng, 2.0, 1.0)
    step(eng, 1.0)
    events = eng.set_condition("speed-stop", True, 1.5)
    assert transitions(events) == ["tripped", "tracking"]
    assert (events[1]["mode"], events[1]["reason"], events[1]["output"]) == (
        "tracking",
        "speed-stop",
        0.0,
    )
    writes, _ = step(eng, 1.5)
    assert writes == [Write("speed-stop", "station", "speed", 0, "interlock")]
    for t in (2.0, 3.0, 4.0):
        level(eng, 2.0, t)
        assert step(eng, t) == ([], [])  # the loop writes nothing while tracking
    loop_status = eng.status()[0]
    assert (loop_status["mode"], loop_status["output"], loop_status["interlock"]) == (
        "tracking",
        0.0,
        "speed-stop",
    )
    with pytest.raises(ControlError) as info:
        eng.set_output("level", 10.0, "op", 4.2)
    assert info.value.code == "control.interlocked"
    eng.set_condition("speed-stop", False, 4.5)
    events = eng.reset("speed-stop", "op", 4.6)
    assert transitions(events) == ["reset", "released"]
    assert events[1]["mode"] == "auto"
    level(eng, 2.0, 5.0)
    (write,), _ = step(eng, 5.0)
    assert write == Write("level", "station", "speed", pytest.approx(0.0))  # bumpless: from 0
    level(eng, 2.0, 6.0)
    (write,), _ = step(eng, 6.0)
    assert write.value == pytest.approx(2.0 / 4.0 * 1.0)  # then the integral moves on (Kp/Ti·e·dt)


def test_an_auto_reset_interlock_releases_the_loop_when_its_condition_clears() -> None:
    auto = InterlockConfig(
        name="speed-stop", when="x", output="station.speed", safe_value=5, reset="auto"
    )
    eng = LoopEngine([LOOP], [auto], 0.0)
    eng.set_condition("speed-stop", True, 1.0)
    assert transitions(eng.set_condition("speed-stop", False, 2.0)) == ["reset", "released"]
    assert eng.status()[0]["mode"] == "auto"


def test_a_loop_in_manual_keeps_the_safe_value_after_release() -> None:
    eng = LoopEngine([LOOP], [SPEED], 0.0)
    eng.set_mode("level", "manual", "op", 0.0, output=40.0)
    step(eng, 0.0)
    eng.set_condition("speed-stop", True, 0.5)
    eng.set_condition("speed-stop", False, 0.6)
    eng.reset("speed-stop", "op", 0.7)
    assert eng.status()[0]["mode"] == "manual"
    assert eng.status()[0]["output"] == 0.0


def test_a_text_safe_value_on_a_loop_output_is_refused() -> None:
    bad = InterlockConfig(name="s", when="x", output="station.speed", safe_value="off")
    with pytest.raises(ConfigError, match="safe_value must be a number"):
        LoopEngine([LOOP], [bad], 0.0)


def test_unknown_interlocks_are_control_unknown() -> None:
    eng = LoopEngine([], [PUMP], 0.0)
    with pytest.raises(ControlError) as info:
        eng.set_condition("nope", True, 1.0)
    assert info.value.code == "control.unknown"


def test_a_loop_write_in_flight_at_a_trip_makes_the_safe_value_go_out_again() -> None:
    eng = LoopEngine([LOOP], [SPEED], 0.0)
    level(eng, 2.0, 0.0)
    (loop_write,), _ = eng.step(0.0)
    eng.set_condition("speed-stop", True, 0.1)
    (safe,), _ = eng.step(0.1)
    assert safe.kind == "interlock"
    eng.write_done(safe, None, 0.2)
    eng.write_done(loop_write, None, 0.3)  # may have reached the device after the safe value
    assert eng.next_due() == 0.3
    assert eng.step(0.3)[0] == [safe]
