"""Parametrised scenario files: one file, one named scenario per case, and parameters that make
no sense refused with file and line."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hil.scenario import load_scenario, load_scenarios, run_scenario
from plantd.errors import ConfigError

SIM = """\
devices:
  - name: plc
    units:
      - points:
          - {name: speed, table: holding, address: 0, value: 10}
  - name: meter
    units:
      - unit: 1
        points:
          - {name: speed, table: holding, address: 0, value: 20}
      - unit: 2
        points:
          - {name: volts, table: holding, address: 0, value: 230}
"""


def write(tmp_path: Path, text: str, name: str = "each.yaml") -> Path:
    (tmp_path / "sim.yaml").write_text(SIM)
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_scenarios(path)
    return caught.value.problems


def test_a_list_of_cases_makes_one_named_scenario_each(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
simulators: [sim.yaml]
parameters:
  - {device: plc, speed: 10}
  - {device: meter, speed: 20}
steps:
  - set: {point: "{device}.speed", value: "{speed}"}
  - inject: {device: {device}, fault: exception, code: 2}
  - expect: {device: "{device}.speed", value: "{speed}", within: 1s}
""",
    )
    loaded = load_scenarios(path)
    assert [one.name for one in loaded] == ["each[plc-10]", "each[meter-20]"]
    second = loaded[1].scenario
    assert second.parameters == {"device": "meter", "speed": 20}
    assert second.steps[0].set is not None
    assert second.steps[0].set.point == "meter.speed"
    assert second.steps[0].set.value == 20  # a whole placeholder keeps the value's type
    assert second.steps[1].inject is not None
    assert second.steps[1].inject.device == "meter"
    with pytest.raises(ConfigError, match=r"parameters make 2 scenarios \(each\[plc-10\]"):
        load_scenario(path)


def test_a_matrix_makes_every_combination_and_a_name_may_carry_them(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
name: "faults-{fault}-unit-{unit}"
simulators: [sim.yaml]
parameters:
  unit: [1, 2]
  fault: [silent, garbage]
steps:
  - inject: {device: meter, unit: "{unit}", fault: "{fault}"}
""",
    )
    assert [one.name for one in load_scenarios(path)] == [
        "faults-silent-unit-1",
        "faults-garbage-unit-1",
        "faults-silent-unit-2",
        "faults-garbage-unit-2",
    ]


@pytest.mark.parametrize(
    ("parameters", "step", "problem"),
    [
        ("parameters: []", '"{device}.speed"', ":2: parameters: expected at least one case"),
        ("parameters: {device: []}", '"{device}.speed"', ":2: parameters.device: expected at"),
        ("parameters: plc", '"{device}.speed"', ":2: parameters: expected a list of cases"),
        (
            "parameters: [{device: plc}]",
            '"{devcie}.speed"',
            ":5: steps[1].set.point: no parameter 'devcie' for {devcie} "
            "(did you mean 'device'?) (parameters: device)",
        ),
        (
            "parameters: [{device: plc}, {unit: 1}]",
            '"{device}.speed"',
            ":2: parameters[1]: every case gives device: no value for device; "
            "unit not in the first case",
        ),
        (
            "parameters: [{device: plc, unit: 1}]",
            '"{device}.speed"',
            ":2: parameters: parameter 'unit' is not used",
        ),
        (
            "parameters: [{device: [plc]}]",
            '"{device}.speed"',
            ":2: parameters[0].device: expected a value (text, number, true/false), got a list",
        ),
    ],
)
def test_parameters_that_make_no_sense_are_load_errors(
    tmp_path: Path, parameters: str, step: str, problem: str
) -> None:
    path = write(
        tmp_path,
        f"simulators: [sim.yaml]\n{parameters}\nsteps:\n  - wait: 0s\n"
        f"  - set: {{point: {step}, value: 1}}\n",
    )
    found = problems(path)
    assert any(line.startswith(f"{path}{problem}") for line in found), found


def test_a_problem_of_one_case_names_that_case(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
simulators: [sim.yaml]
parameters:
  - {device: plc, unit: 1}
  - {device: meter, unit: 2}
  - {device: plc, unit: 3}
steps:
  - inject: {device: "{device}", unit: "{unit}", fault: silent}
""",
    )
    assert problems(path) == [
        f"{path}:7: steps[0].inject.unit: device 'plc' has no unit 3 (its units: 1) "
        "(with device=plc, unit=3)"
    ]


def test_two_cases_with_one_name_are_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
name: "same-{device}"
simulators: [sim.yaml]
parameters:
  - {device: plc, unit: 1}
  - {device: plc, unit: 1}
steps:
  - inject: {device: "{device}", unit: "{unit}", fault: silent}
""",
    )
    assert problems(path) == [
        f"{path}:5: parameters[1]: cases 1 and 2 are both named 'same-plc' "
        "(put a parameter in name)"
    ]


@pytest.mark.timeout(60)
async def test_each_case_runs_as_a_scenario_of_its_own(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
simulators: [sim.yaml]
parameters: {device: [plc, meter], speed: [5]}
steps:
  - set: {point: "{device}.speed", value: "{speed}"}
  - expect: {device: "{device}.speed", value: 5, within: 1s}
  - expect: {device: "plc.speed", value: 10, within: 0s}
""",
    )
    cases = load_scenarios(path)
    results = [await run_scenario(one, work_dir=tmp_path / one.name) for one in cases]
    assert [(r.name, [s.status for s in r.steps]) for r in results] == [
        ("each[plc-5]", ["passed", "passed", "failed"]),
        ("each[meter-5]", ["passed", "passed", "passed"]),
    ]


@pytest.mark.timeout(120)
def test_plant_hil_runs_each_case_as_a_junit_suite(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
simulators: [sim.yaml]
parameters: {device: [plc, meter]}
steps:
  - expect: {device: "{device}.speed", min: 0, within: 1s}
""",
    )
    checked = plant("hil", "check", "--json", str(path))
    assert checked.returncode == 0, checked.stderr
    assert [case["name"] for case in json.loads(checked.stdout)] == ["each[plc]", "each[meter]"]
    junit = tmp_path / "junit.xml"
    ran = plant("hil", "run", "--junit", str(junit), "--work-dir", str(tmp_path / "w"), str(path))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [(s.get("name"), s.get("tests"), s.get("failures")) for s in suites] == [
        ("each[plc]", "1", "0"),
        ("each[meter]", "1", "0"),
    ]


def plant(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plantd.cli", *args],
        capture_output=True,
        text=True,
        timeout=100,  # a guard against a hung command, not a measurement
        check=False,
    )
