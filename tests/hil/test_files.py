"""Simulator and scenario files: what is wrong is named with its file, line and key, before
anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.scenario import load_scenario
from hil.sim import load_sim_file
from plantd.errors import ConfigError

from .conftest import LOCAL_MODULES, PLANT, SCENARIOS


def problems(path: Path, text: str, loader: object = load_sim_file) -> list[str]:
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        loader(path)  # type: ignore[operator]
    return caught.value.problems


def test_the_shipped_files_are_valid() -> None:
    assert [d.name for d in load_sim_file(PLANT).devices] == ["plc", "field", "meter"]
    for scenario in SCENARIOS.glob("*.yaml"):
        assert load_scenario(scenario).scenario.steps


def test_names_in_expressions_are_checked_with_their_line(tmp_path: Path) -> None:
    found = problems(
        tmp_path / "sim.yaml",
        """\
devices:
  - name: plc
    units:
      - points:
          - {name: pump_speed, table: input, address: 0}
          - {name: flow, table: input, address: 1, expr: "pump_sped * 2"}
          - {name: level, table: input, address: 2, integrate: {rate: "meter.flow"}}
""",
    )
    assert found == [
        f"{tmp_path}/sim.yaml:6: devices[0].units[0].points[1].expr: "
        "no point 'pump_sped' (did you mean 'pump_speed'?)",
        f"{tmp_path}/sim.yaml:7: devices[0].units[0].points[2].integrate.rate: "
        "'meter.flow': no device 'meter'",
    ]


def test_rules_across_points(tmp_path: Path) -> None:
    found = problems(
        tmp_path / "sim.yaml",
        """\
devices:
  - name: line
    transport: rtu
    port: 1502
    units:
      - unit: 0
        points:
          - {name: a, table: holding, address: 0, type: float32}
          - {name: b, table: holding, address: 1}
          - {name: c, table: coil, address: 0, scale: 2}
          - {name: d, sine: {period: 1s}, ramp: {end: 1, period: 1s}}
          - {name: e, expr: "f + 1"}
          - {name: f, expr: "e * 2"}
          - {name: a, table: input, address: 9}
          - {name: g, table: holding, address: 5, bit: 2}
          - {name: h, table: holding, address: 5, bit: 2}
          - {name: dt}
""",
    )
    assert [problem.split(": ", 1)[1] for problem in found] == [
        "devices[0].units[0].points[2].scale: scale and offset are for numbers; this point is bool",
        "devices[0].units[0].points[3].sine: a point has one behaviour; this one has ramp and sine",
        "devices[0].units[0].points[9].name: 'dt' is a variable of expressions "
        "(dt, false, pi, t, true, value)",
    ]
    # the rules across points and devices are checked once each point is valid by itself
    fixed = "\n".join(
        line
        for line in (tmp_path / "sim.yaml").read_text().splitlines()
        if not line.strip().startswith(("- {name: c,", "- {name: d,", "- {name: dt"))
    )
    found = problems(tmp_path / "sim.yaml", fixed)
    assert sorted(problem.split(": ", 1)[1] for problem in found) == [
        "devices[0].port: port is for transports tcp and rtu-over-tcp; this one is rtu",
    ]
    fixed = "\n".join(line for line in fixed.splitlines() if "port: 1502" not in line)
    found = problems(tmp_path / "sim.yaml", fixed)
    assert sorted(problem.split(": ", 1)[1] for problem in found) == [
        "devices[0].units[0].points[1].address: holding 1 is also point 'a''s",
        "devices[0].units[0].points[3].expr: expressions depend on each other: "
        "line.e → line.f → line.e",
        "devices[0].units[0].points[4].name: point 'a' is used twice in 'line'",
        "devices[0].units[0].points[6].address: holding 5 is also point 'g''s",
        "devices[0].units[0].unit: on a serial line unit ids run from 1 to 247, got 0",
    ]


def test_scenario_references_are_checked(tmp_path: Path) -> None:
    text = f"""\
simulators: [{PLANT}]
stack:
  modules:
    - {{file: {LOCAL_MODULES / "field.yaml"}, device: feild}}
steps:
  - inject: {{device: plc, fault: slow}}
  - inject: {{device: plx, fault: silent}}
  - expect: {{point: field.flw, min: 1}}
  - expect: {{device: plc.pump_speed, quality: good}}
  - expect: {{point: station.pump_speed, min: 1}}
  - {{wait: 1s, heal: {{}}}}
"""
    found = problems(tmp_path / "scenario.yaml", text, load_scenario)
    joined = "\n".join(found)
    assert "scenario.yaml:6: steps[0].inject.delay: fault slow needs delay" in joined
    assert "steps[3].expect.device: a simulated value has no quality" in joined
    assert (
        "steps[5]: a step is one of wait, set, inject, heal, write, alarm, control, expect"
    ) in joined
    # the rest is checked once the file itself is valid
    text = "\n".join(
        line
        for line in text.splitlines()
        if "fault: slow" not in line and "quality: good" not in line and "heal" not in line
    )
    joined = "\n".join(problems(tmp_path / "scenario.yaml", text, load_scenario))
    assert (
        ":4: stack.modules[0].device: no simulated device 'feild' (did you mean 'field'?)" in joined
    )
    assert ":6: steps[0].inject.device: no simulated device 'plx' (did you mean 'plc'?)" in joined
    assert (
        "steps[1].expect.point: module 'field' has no point 'flw' (did you mean 'flow'?)" in joined
    )
    assert "steps[2].expect.point: no module 'station' in stack.modules" in joined
