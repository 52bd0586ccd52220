"""The loop engine with an explicit ``now``: schedule, writes, modes, failures, write errors."""

from __future__ import annotations

from typing import Any

import pytest

from plantd.bus import Quality, Sample
from plantd.control._interlock import ControlError
from plantd.control._loop_config import LoopConfig
from plantd.control._loops import LoopEngine, Write
from plantd.errors import ConfigError


def loop(**overrides: Any) -> LoopConfig:
    fields: dict[str, Any] = {
        "name": "level",
        "measurement": "field.level",
        "output": "station.speed",
        "kp": 2.0,
        "setpoint": 3.0,
        "period": 1.0,
        "stale_after": 5.0,
    }
    fields.update(overrides)
    return LoopConfig(**fields)


def engine(*loops: LoopConfig, now: float = 100.0) -> LoopEngine:
    return LoopEngine(loops or (loop(),), (), now)


def feed(eng: LoopEngine, value: object, now: float, quality: Quality = Quality.GOOD) -> None:
    eng.observe("field.level", Sample(value, now, quality))  # type: ignore[arg-type]


def step(eng: LoopEngine, now: float) -> tuple[list[Write], list[dict[str, Any]]]:
    """Step, and report every write as done at once (as the process does)."""
    writes, events = eng.step(now)
    for write in writes:
        events += eng.write_done(write, None, now)
    return writes, events


def transitions(events: list[dict[str, Any]]) -> list[str]:
    return [event["transition"] for event in events]


def test_a_p_loop_writes_its_output_to_the_module_point() -> None:
    eng = engine()
    assert eng.inputs == {"field.level", "station.speed"}
    feed(eng, 2.0, 100.0)
    writes, events = step(eng, 100.0)
    assert writes == [Write("level", "station", "speed", 2.0)]  # 2·(3 - 2)
    assert events == []


def test_the_schedule_does_not_drift_and_late_steps_count_overruns() -> None:
    eng = engine(loop(period=2.0))
    feed(eng, 3.0, 100.0)
    assert eng.next_due() == 100.0
    step(eng, 100.0)
    assert eng.next_due() == 102.0
    assert step(eng, 101.9) == ([], [])  # not due: nothing runs
    step(eng, 102.7)  # a little late: the next tick stays on the grid
    assert eng.next_due() == 104.0
    step(eng, 109.5)  # ticks at 104, 106 and 108 missed: run once, skip two
    status = eng.status()[0]
    assert status["next_due"] == 110.0
    assert status["overruns"] == 2
    assert status["periods"] == 3


def test_writes_only_when_the_output_moves_beyond_the_deadband() -> None:
    eng = engine(loop(write_deadband=0.5))
    feed(eng, 2.0, 100.0)
    assert [w.value for w in step(eng, 100.0)[0]] == [2.0]
    feed(eng, 1.8, 101.0)  # output 2.4: moved 0.4
    assert step(eng, 101.0)[0] == []
    feed(eng, 1.7, 102.0)  # output 2.6: moved 0.6 from the last write
    assert [w.value for w in step(eng, 102.0)[0]] == [2.6]
    eng.set_mode("level", "auto", "op", 102.5)  # a mode change forces the next write
    feed(eng, 1.7, 103.0)
    assert [w.value for w in step(eng, 103.0)[0]] == [2.6]


def test_an_unchanged_output_is_not_written_again() -> None:
    eng = engine()
    for t in (100.0, 101.0, 102.0):
        feed(eng, 2.0, t)
    assert len(step(eng, 100.0)[0]) == 1
    assert step(eng, 101.0)[0] == []


def test_a_failed_write_gives_an_event_and_is_sent_again_next_period() -> None:
    eng = engine()
    feed(eng, 2.0, 100.0)
    (write,), _ = eng.step(100.0)
    events = eng.write_done(write, "module station: no worker", 100.2)
    assert transitions(events) == ["write-failed"]
    assert events[0]["reason"] == "module station: no worker"
    assert events[0]["kind"] == "loop"
    assert eng.status()[0]["last_write_error"] == "module station: no worker"
    feed(eng, 2.0, 101.0)
    (again,), _ = eng.step(101.0)
    assert again == write
    assert eng.write_done(again, None, 101.1) == []
    status = eng.status()[0]
    assert (status["last_write_error"], status["last_write_time"]) == (None, 101.1)


def test_manual_mode_writes_the_operator_output_at_once_and_only_then() -> None:
    eng = engine()
    feed(eng, 2.0, 100.0)
    step(eng, 100.0)
    with pytest.raises(ControlError) as info:
        eng.set_output("level", 50.0, "op", 100.2)
    assert info.value.code == "control.not-manual"
    events = eng.set_mode("level", "manual", "op", 100.3, output=40.0)
    assert events[0]["mode"] == "manual"
    assert events[0]["by"] == "op"
    assert eng.next_due() == 100.3  # due at once, not at the next tick
    assert [w.value for w in step(eng, 100.3)[0]] == [40.0]
    assert eng.next_due() == 101.0
    feed(eng, 1.0, 101.0)
    assert step(eng, 101.0)[0] == []  # manual ignores the measurement
    eng.set_output("level", 40.05, "op", 101.5)
    assert [w.value for w in step(eng, 101.5)[0]] == [40.05]
    with pytest.raises(ControlError) as info:
        eng.set_output("level", 101.0, "op", 101.6)
    assert info.value.code == "control.out-of-range"


def test_manual_to_auto_is_bumpless_through_the_engine() -> None:
    eng = engine(loop(ti=10.0))
    eng.set_mode("level", "manual", "op", 100.0, output=30.0)
    feed(eng, 2.0, 100.0)
    step(eng, 100.0)
    eng.set_mode("level", "auto", "op", 100.5)
    feed(eng, 2.0, 101.0)
    (write,), _ = step(eng, 101.0)
    assert write.value == pytest.approx(30.0)


def test_auto_starts_bumplessly_from_the_output_points_last_value() -> None:
    eng = engine(loop(ti=10.0))
    eng.observe("station.speed", Sample(55.0, 99.0))
    feed(eng, 2.0, 100.0)
    (write,), _ = step(eng, 100.0)
    assert write.value == pytest.approx(55.0)


def test_hold_on_failure_stops_writing_and_recovers_to_auto_bumplessly() -> None:
    eng = engine(loop(ti=10.0))
    feed(eng, 2.0, 100.0)
    step(eng, 100.0)
    feed(eng, 2.0, 101.0)
    (held,), _ = step(eng, 101.0)
    feed(eng, 2.0, 102.0, Quality.BAD)
    writes, events = step(eng, 102.0)
    assert writes == []
    assert transitions(events) == ["failed"]
    assert events[0]["reason"] == "quality is bad"
    assert eng.status()[0]["mode"] == "failed"
    assert step(eng, 103.0) == ([], [])
    feed(eng, 2.0, 104.0)
    writes, events = step(eng, 104.0)
    assert transitions(events) == ["recovered"]
    assert eng.status()[0]["mode"] == "auto"
    assert writes[0].value == pytest.approx(held.value)  # resumes from the held output


def test_a_stale_measurement_is_a_failure() -> None:
    eng = engine(loop(stale_after=3.0))
    feed(eng, 2.0, 100.0)
    step(eng, 100.0)
    assert step(eng, 103.0) == ([], [])  # 3 s old: still fresh enough
    writes, events = step(eng, 104.0)
    assert (writes, transitions(events)) == ([], ["failed"])
    assert events[0]["reason"] == "stale: 4 s old"


def test_safe_on_failure_writes_the_failure_output_once() -> None:
    eng = engine(loop(on_failure="safe", failure_output=5.0))
    feed(eng, "broken", 100.0)
    writes, events = eng.step(100.0)  # a sample that is no number fails at once
    assert [w.value for w in writes] == [5.0]
    assert (transitions(events), events[0]["mode"]) == (["failed"], "failed")
    assert events[0]["reason"] == "not a number: 'broken'"
    assert eng.step(101.0) == ([], [])
    eng.write_done(writes[0], "timeout", 101.5)
    assert [w.value for w in step(eng, 102.0)[0]] == [5.0]  # retried after a failed write
    assert step(eng, 103.0) == ([], [])


def test_manual_on_failure_switches_to_manual_and_stays_there() -> None:
    eng = engine(loop(on_failure="manual"))
    feed(eng, 2.0, 100.0)
    step(eng, 100.0)
    feed(eng, 2.0, 101.0, Quality.UNCERTAIN)
    writes, events = step(eng, 101.0)
    assert writes == []
    assert (transitions(events), events[0]["mode"]) == (["failed"], "manual")
    feed(eng, 2.0, 102.0)
    assert step(eng, 102.0) == ([], [])
    assert eng.status()[0]["mode"] == "manual"
    assert eng.status()[0]["output"] == 2.0


def test_no_first_sample_becomes_a_failure_after_stale_after() -> None:
    eng = engine(loop(stale_after=2.0))
    assert step(eng, 100.0) == ([], [])
    assert step(eng, 101.0) == ([], [])
    _, events = step(eng, 102.0)
    assert events[0]["reason"] == "no value yet"


def test_a_setpoint_from_a_point_is_followed_and_cannot_be_set_by_hand() -> None:
    eng = engine(loop(setpoint="calc.level_sp"))
    assert "calc.level_sp" in eng.inputs
    feed(eng, 2.0, 100.0)
    assert step(eng, 100.0)[0] == []  # no setpoint yet
    eng.observe("calc.level_sp", Sample(4.0, 100.5))
    feed(eng, 2.0, 101.0)
    assert [w.value for w in step(eng, 101.0)[0]] == [4.0]
    with pytest.raises(ControlError) as info:
        eng.set_setpoint("level", 1.0, "op", 101.5)
    assert info.value.code == "control.remote-setpoint"


def test_setpoint_changes_ramp_and_are_reported() -> None:
    eng = engine(loop(setpoint_ramp=0.5))
    feed(eng, 3.0, 100.0)
    step(eng, 100.0)
    (event,) = eng.set_setpoint("level", 5.0, "op", 100.5)
    assert (event["transition"], event["setpoint"], event["by"]) == ("setpoint", 5.0, "op")
    feed(eng, 3.0, 102.0)
    step(eng, 102.0)
    status = eng.status()[0]
    assert (status["setpoint"], status["working_setpoint"]) == (5.0, 4.0)


def test_operator_requests_are_checked() -> None:
    eng = engine()
    codes = []
    for call in (
        lambda: eng.set_mode("nope", "auto", "op", 1.0),
        lambda: eng.set_mode("level", "tracking", "op", 1.0),
        lambda: eng.set_setpoint("level", float("nan"), "op", 1.0),
        lambda: eng.set_mode("level", "manual", "op", 1.0, output=-1.0),
        lambda: eng.reset("nope", "op", 1.0),
    ):
        with pytest.raises(ControlError) as info:
            call()
        codes.append(info.value.code)
    assert codes == [
        "control.unknown",
        "control.bad-mode",
        "control.bad-value",
        "control.out-of-range",
        "control.unknown",
    ]


def test_two_loops_writing_one_output_are_refused() -> None:
    with pytest.raises(ConfigError, match="written by more than one loop"):
        LoopEngine([loop(), loop(name="other")], [], 0.0)


def test_one_write_at_a_time_then_the_latest_value() -> None:
    eng = engine()
    feed(eng, 2.0, 100.0)
    (first,), _ = eng.step(100.0)
    feed(eng, 1.0, 101.0)
    assert eng.step(101.0) == ([], [])  # the first is still in flight
    eng.write_done(first, None, 101.5)
    feed(eng, 1.5, 102.0)
    assert [w.value for w in eng.step(102.0)[0]] == [3.0]  # 2·(3 - 1.5), not the stale 4.0


def test_a_manual_value_set_while_a_write_is_in_flight_goes_out_when_it_returns() -> None:
    eng = engine()
    eng.set_mode("level", "manual", "op", 100.0, output=10.0)
    (first,), _ = eng.step(100.0)
    eng.set_output("level", 20.0, "op", 100.2)
    assert eng.step(100.2) == ([], [])
    eng.write_done(first, None, 100.4)
    assert eng.next_due() == 100.4
    assert [w.value for w in eng.step(100.4)[0]] == [20.0]


def test_a_remote_setpoints_first_value_is_not_ramped_to() -> None:
    eng = engine(loop(setpoint="calc.level_sp", setpoint_ramp=0.1))
    eng.observe("calc.level_sp", Sample(4.0, 100.0))
    feed(eng, 2.0, 100.0)
    step(eng, 100.0)
    assert eng.status()[0]["working_setpoint"] == 4.0
    eng.observe("calc.level_sp", Sample(5.0, 100.5))
    feed(eng, 2.0, 101.0)
    step(eng, 101.0)
    status = eng.status()[0]
    assert (status["setpoint"], status["working_setpoint"]) == (5.0, pytest.approx(4.1))


def test_hold_keeps_the_value_last_written_not_one_the_deadband_kept_back() -> None:
    eng = engine(loop(write_deadband=1.0))
    feed(eng, 2.0, 100.0)
    step(eng, 100.0)  # writes 2.0
    feed(eng, 1.8, 101.0)
    assert step(eng, 101.0)[0] == []  # 2.4 kept back
    feed(eng, 1.8, 102.0, Quality.BAD)
    _, events = step(eng, 102.0)
    assert events[0]["output"] == 2.0


@pytest.mark.parametrize(
    "value", [None, "text", {"a": 1}, [1], float("nan"), float("inf"), 10**400]
)
def test_a_measurement_that_is_no_finite_number_is_a_failure_not_a_crash(value: object) -> None:
    eng = engine()
    feed(eng, value, 100.0)
    writes, events = step(eng, 100.0)
    assert (writes, transitions(events)) == ([], ["failed"])
    assert events[0]["reason"].startswith("not a number")
    assert eng.status()[0]["pv"] is None


def test_a_sample_without_a_usable_timestamp_counts_as_stale() -> None:
    eng = engine()
    eng.observe("field.level", Sample(2.0, float("nan")))
    _, events = step(eng, 100.0)
    assert events[0]["reason"].startswith("stale")


def test_ticks_stay_on_the_grid_over_many_periods() -> None:
    eng = engine(loop(period=0.1), now=1000.0)
    for _ in range(10_000):
        due = eng.next_due()
        assert due is not None
        feed(eng, 3.0, due)
        step(eng, due + 0.05)  # every step a little late, never a whole period
    status = eng.status()[0]
    assert status["next_due"] == 1000.0 + 10_000 * 0.1
    assert (status["periods"], status["overruns"]) == (10_000, 0)


def test_a_manual_loop_at_start_takes_its_output_from_the_device_and_writes_nothing() -> None:
    eng = engine(loop(mode="manual"))
    eng.observe("station.speed", Sample(45.0, 100.0))  # what the module has (primed at start)
    feed(eng, 2.0, 100.0)
    for now in (100.0, 101.0, 102.0):
        assert step(eng, now)[0] == []
    (status,) = eng.status()
    assert (status["mode"], status["output"]) == ("manual", 45.0)
    eng.set_output("level", 50.0, "user.otto", 102.5)
    assert step(eng, 102.5)[0] == [Write("level", "station", "speed", 50.0)]
