"""The scenario language for plantd-control, checked before anything runs: ``stack.control``
files (placed by their top-level key, refused with their own file and line), alarm and control
steps, alarm expectations and ``calc.NAME`` points — every unknown name with the step's line."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.scenario import load_scenario
from hil.scenario._control_files import control_kind
from hil.scenario._expect import Observation, unmet
from hil.scenario._schema import Expect
from plantd.errors import ConfigError

from .conftest import LOCAL_MODULES, PLANT, SCENARIOS

CONTROL = SCENARIOS / "control"


def scenario(tmp_path: Path, steps: str, control: str = "") -> Path:
    path = tmp_path / "s.yaml"
    files = control or f"[{CONTROL / 'alarms.yaml'}, {CONTROL / 'calc.yaml'}, " + (
        f"{CONTROL / 'level-loop.yaml'}, {CONTROL / 'interlock.yaml'}]"
    )
    path.write_text(
        f"""\
simulators: [{PLANT}]
stack:
  modules:
    - {{file: {LOCAL_MODULES / "station.yaml"}, device: plc}}
    - {{file: {LOCAL_MODULES / "field.yaml"}, device: field}}
  control: {files}
steps:
{steps}"""
    )
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_scenario(path)
    return caught.value.problems


def test_the_files_are_placed_by_their_top_level_key(tmp_path: Path) -> None:
    loaded = load_scenario(scenario(tmp_path, "  - wait: 1s\n"))
    assert loaded.control is not None
    assert [name for _, name in loaded.control.placed] == [
        "alarms.d/00-alarms.yaml",
        "calc.d/01-calc.yaml",
        "control.d/02-level-loop.yaml",
        "control.d/03-interlock.yaml",
    ]
    assert loaded.control.alarms == {"tank-level-high", "pump-no-flow"}
    assert loaded.control.loops == {"tank-level"}
    assert loaded.control.interlocks == {"pump-stop-high-level"}
    assert loaded.control.calcs == {"tank_volume"}


def test_unknown_names_are_refused_with_the_line_of_the_step(tmp_path: Path) -> None:
    path = scenario(
        tmp_path,
        """\
  - expect: {alarm: tank-level-hgh, state: normal}
  - alarm: {ack: no-such-alarm}
  - control: {mode: {loop: tank-levl, mode: auto}}
  - control: {reset: pump-stop}
  - expect: {point: calc.tank_volme, min: 1}
  - expect: {point: calc.tank_volume, min: 1}
""",
    )
    found = problems(path)
    assert found == [
        f"{path}:8: steps[0].expect.alarm: no alarm 'tank-level-hgh' in stack.control "
        "(did you mean 'tank-level-high'?) (the alarms: pump-no-flow, tank-level-high)",
        f"{path}:9: steps[1].alarm.ack: no alarm 'no-such-alarm' in stack.control "
        "(the alarms: pump-no-flow, tank-level-high)",
        f"{path}:10: steps[2].control.mode.loop: no loop 'tank-levl' in stack.control "
        "(did you mean 'tank-level'?) (the loops: tank-level)",
        f"{path}:11: steps[3].control.reset: no interlock 'pump-stop' in stack.control "
        "(did you mean 'pump-stop-high-level'?) (the interlocks: pump-stop-high-level)",
        f"{path}:12: steps[4].expect.point: no calculation 'tank_volme' in stack.control's "
        "calc files (did you mean 'tank_volume'?)",
    ]


def test_alarm_steps_without_control_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        f"simulators: [{PLANT}]\nstack:\n  modules: []\nsteps:\n  - alarm: {{ack: x}}\n"
    )
    assert problems(path) == [
        f"{path}:5: steps[0].alarm.ack: no alarm 'x': the scenario has no stack.control files"
    ]


def test_a_wrong_control_file_is_named_with_its_own_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "alarms.yaml"
    bad.write_text(
        "alarms:\n  - name: hi\n    point: field.tank_level\n    type: hihg\n    limit: 4\n"
        "  - name: lo\n    point: field.no_such_point\n    type: low\n    limit: 1\n"
    )
    found = problems(scenario(tmp_path, "  - wait: 1s\n", f"[{bad}]"))
    assert len(found) == 1, found
    assert found[0].startswith(f"{bad}:4: alarms[0].type: "), found
    bad.write_text(
        "alarms:\n  - name: lo\n    point: field.no_such_point\n    type: low\n    limit: 1\n"
    )
    found = problems(scenario(tmp_path, "  - wait: 1s\n", f"[{bad}]"))
    assert any(
        "alarm 'lo' reads 'field.no_such_point', but module 'field' has no point" in problem
        for problem in found
    ), found
    assert not any("plantd-hil-control-" in problem for problem in found), found


def test_a_file_of_no_kind_or_of_two_kinds_is_refused(tmp_path: Path) -> None:
    mixed, other = tmp_path / "mixed.yaml", tmp_path / "other.yaml"
    mixed.write_text("alarms: []\nloops: []\n")
    other.write_text("points: []\n")
    assert control_kind(mixed)[1] == [
        f"{mixed}: holds keys of alarms.d and control.d files; put each kind in a file of its own"
    ]
    assert control_kind(other)[1] == [
        f"{other}: not a plantd-control file: expected a top-level alarms, calc, loops or "
        "interlocks key (found: points)"
    ]
    found = problems(scenario(tmp_path, "  - wait: 1s\n", f"[{mixed}, {tmp_path / 'none.yaml'}]"))
    assert found[1] == f"{tmp_path / 'none.yaml'}: no such file"


def test_forms_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    path = scenario(
        tmp_path,
        """\
  - expect: {alarm: tank-level-high, value: 3}
  - expect: {alarm: tank-level-high}
  - expect: {point: field.tank_level, state: normal}
  - expect: {alarm: tank-level-high, state: raised}
  - alarm: {shelve: tank-level-high}
  - alarm: {ack: tank-level-high, duration: 5s}
  - alarm: {ack: tank-level-high, error: alarm.nope}
  - control: {reset: pump-stop-high-level, setpoint: {loop: tank-level, value: 3}}
  - expect: {audit: {}}
  - expect: {audit: {principal: service.control}, min: 1}
""",
    )
    found = "\n".join(problems(path))
    for expected in (
        ":8: steps[0].expect.value: value does not apply to an alarm",
        ":9: steps[1].expect.alarm: an alarm expectation needs state, active, shelved or",
        ":10: steps[2].expect.state: state is a condition on an alarm (alarm: NAME)",
        ":11: steps[3].expect.state: expected one of 'normal', 'unacknowledged', 'acknowledged', "
        "'returned'",
        ":12: steps[4].alarm.shelve: a shelving needs a duration (e.g. duration: 30s)",
        ":13: steps[5].alarm.duration: duration goes with shelve only",
        ":14: steps[6].alarm.error: no alarm/control error 'alarm.nope'",
        ":15: steps[7].control: a control step is one of mode, setpoint, output, reset "
        "(found: setpoint, reset)",
        ":16: steps[8].expect.audit: an audit expectation needs principal, target, result or",
        ":17: steps[9].expect.min: min does not apply to an audit record",
    ):
        assert expected in found, found


def test_an_alarm_record_meets_or_says_what_differs() -> None:
    record = {"alarm": "a", "state": "acknowledged", "active": True, "shelved": False}
    record |= {"suppressed": False, "transition": "acknowledged", "value": 4.3}
    obs = Observation(1.0, record)
    assert unmet(Expect(alarm="a", state="acknowledged", active=True), obs) is None
    assert unmet(Expect(alarm="a", state="normal", shelved=True), obs) == (
        "state 'acknowledged', shelved false"
    )
    assert unmet(Expect(alarm="a", active=True), Observation(1.0, None)) == "no alarm record"
