"""``control.d`` files: read with ``parse_dataclass``; every problem names file:line."""

from __future__ import annotations

import textwrap

import pytest

from plantd.config import parse_dataclass, parse_yaml
from plantd.control._loop_config import ControlFile, LoopConfig
from plantd.errors import ConfigError

GOOD = """\
loops:
  - name: tank-level
    measurement: field.tank_level
    output: station.speed_setpoint
    setpoint: 3
    period: 500ms
    kp: 20
    ti: 30s
    td: 0s
    action: reverse
    output_min: 0
    output_max: 100
    setpoint_ramp: 0.05
    mode: auto
    stale_after: 5s
    on_failure: safe
    failure_output: 0
    write_deadband: 0.5
interlocks:
  - name: pump-stop-high-level
    when: "field.tank_level > 4.7"
    output: station.pump_run
    safe_value: false
    reset: auto
"""


def parse(text: str) -> ControlFile:
    doc = parse_yaml(textwrap.dedent(text), source="control.d/tank.yaml")
    return parse_dataclass(ControlFile, doc.data, source=doc.source, lines=doc.lines)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return info.value.problems


def test_a_full_file_reads_into_typed_values() -> None:
    control = parse(GOOD)
    (loop,) = control.loops
    assert (loop.period, loop.ti, loop.setpoint, loop.setpoint_ramp) == (0.5, 30.0, 3.0, 0.05)
    assert isinstance(loop.setpoint, float)
    assert loop.setpoint_point is None
    (interlock,) = control.interlocks
    assert (interlock.safe_value, interlock.reset) == (False, "auto")


def test_a_setpoint_may_be_a_point() -> None:
    text = GOOD.replace("setpoint: 3", "setpoint: calc.level_sp")
    assert parse(text).loops[0].setpoint_point == "calc.level_sp"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("output_min: 0", "output_min: 100", ":12: loops[0].output_max: must be above"),
        ("failure_output: 0", "failure_output: 150", ":17: loops[0].failure_output: must be"),
        ("ti: 30s", "ti: -1", ":8: loops[0].ti: expected a duration >= 0"),
        ("kp: 20", "kp: 0", ":7: loops[0].kp: expected a number > 0"),
        ("output: station.speed_setpoint", "output: speed", "expected a point name MODULE.POINT"),
        ("output: station.speed_setpoint", "output: calc.x", "calculated points cannot be written"),
        ("measurement: field.tank_level", "measurement: x y", "loops[0].measurement: expected"),
        ("setpoint: 3", "setpoint: not a point", "loops[0].setpoint: expected a number or"),
        ("name: tank-level", "name: tank level", "loops[0].name: expected 1 to 64 letters"),
        ("action: reverse", "action: revers", "did you mean 'reverse'?"),
        ('when: "field.tank_level > 4.7"', 'when: "  "', "interlocks[0].when: expected an"),
        ("safe_value: false", "safe_value: [1]", "interlocks[0].safe_value: expected"),
        ('when: "field.tank_level > 4.7"', 'when: "field.tank_level >"', ":21: interlocks[0].when"),
    ],
)
def test_problems_name_the_file_line_and_key(old: str, new: str, expected: str) -> None:
    assert old in GOOD
    found = problems(GOOD.replace(old, new))
    assert len(found) == 1, found
    assert found[0].startswith("control.d/tank.yaml")
    assert expected in found[0]


def test_safe_on_failure_needs_a_failure_output() -> None:
    (problem,) = problems(GOOD.replace("    failure_output: 0\n", ""))
    assert "loops[0].failure_output: required when on_failure is 'safe'" in problem


def test_two_loops_in_one_file_may_not_write_one_output() -> None:
    second = GOOD.partition("interlocks:")[0].replace("  - name: tank-level", "  - name: other")
    text = GOOD.replace("interlocks:", second.replace("loops:\n", "") + "interlocks:")
    (problem,) = problems(text)
    assert "loops[1].output: 'station.speed_setpoint' is written by loop 'tank-level'" in problem


def test_the_measurement_cannot_be_the_output() -> None:
    text = GOOD.replace("output: station.speed_setpoint", "output: field.tank_level")
    assert "is the measurement too" in problems(text)[0]


def test_defaults() -> None:
    loop = LoopConfig(name="x", measurement="a.b", output="c.d", kp=1.0)
    assert (loop.mode, loop.on_failure, loop.action) == ("auto", "hold", "reverse")
    assert (loop.period, loop.stale_after, loop.write_deadband) == (1.0, 5.0, 0.0)
    assert (loop.ti, loop.td, loop.derivative_filter, loop.setpoint_ramp) == (0.0, 0.0, 10.0, None)
