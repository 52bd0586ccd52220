"""Reading calc.d/, alarms.d/ and control.d/ together: the rules that span files."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantd.control import ControlPlan, check_plan, load_plan
from plantd.errors import ConfigError

ALARM = """\
alarms:
  - {name: high, point: tank.level, type: high, limit: 4.5}
"""
CALC = """\
calc:
  - {name: volume, expr: "tank.level * 12"}
  - {name: litres, expr: "calc.volume * 1000"}
"""
CONTROL = """\
loops:
  - {name: level, measurement: calc.volume, output: tank.valve, setpoint: 30, period: 1s,
     kp: 2, stale_after: 5s}
interlocks:
  - {name: overflow, when: "tank.level > 4.8", output: tank.pump, safe_value: false}
"""
MODULES = {"tank": ["level", "valve", "pump"]}


def write(config_dir: Path, directory: str, text: str, name: str = "plant.yaml") -> Path:
    folder = config_dir / directory
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def problems(config_dir: Path, modules: dict[str, list[str]] | None = MODULES) -> list[str]:
    return check_plan(config_dir, modules=modules)[1]


def test_no_directory_no_files_is_an_empty_plan(tmp_path: Path) -> None:
    assert load_plan(None).empty
    assert load_plan(tmp_path) == ControlPlan()


def test_a_whole_plan_is_read_from_its_three_directories(tmp_path: Path) -> None:
    write(tmp_path, "alarms.d", ALARM)
    write(tmp_path, "calc.d", CALC)
    write(tmp_path, "control.d", CONTROL)
    plan = load_plan(tmp_path, modules=MODULES)
    assert [c.name for c in plan.calcs] == ["volume", "litres"]
    assert [a.name for a in plan.alarms] == ["high"]
    assert ([loop.name for loop in plan.loops], [i.name for i in plan.interlocks]) == (
        ["level"],
        ["overflow"],
    )
    assert sorted(p.parent.name for p in plan.files) == ["alarms.d", "calc.d", "control.d"]


def test_a_name_defined_in_two_files_names_both(tmp_path: Path) -> None:
    first = write(tmp_path, "alarms.d", ALARM, "a.yaml")
    second = write(tmp_path, "alarms.d", ALARM, "b.yaml")
    assert problems(tmp_path) == [f"{second}: alarm 'high' is defined twice (also in {first})"]


def test_every_point_named_must_be_a_point_of_a_module(tmp_path: Path) -> None:
    path = write(tmp_path, "alarms.d", ALARM.replace("tank.level", "tank.levle"))
    write(
        tmp_path,
        "control.d",
        CONTROL.replace("tank.pump", "pumps.run").replace("calc.volume", "tank.level"),
    )
    assert problems(tmp_path) == [
        f"{path}: alarm 'high' reads 'tank.levle', but module 'tank' has no point 'levle'"
        " (did you mean 'level'?)",
        f"{tmp_path / 'control.d/plant.yaml'}: interlock 'overflow' writes 'pumps.run', "
        "but there is no module 'pumps' in modules.d/",
    ]
    # The process does not know the modules (a HIL rig runs them from elsewhere): no check.
    assert problems(tmp_path, modules=None) == []


def test_a_calculation_read_must_exist(tmp_path: Path) -> None:
    path = write(tmp_path, "alarms.d", ALARM.replace("tank.level", "calc.volum"))
    write(tmp_path, "calc.d", CALC)
    assert problems(tmp_path, modules=None) == [
        f"{path}: alarm 'high' reads 'calc.volum', but there is no calculation 'volum' in calc.d/"
    ]


def test_a_calculated_point_cannot_be_written(tmp_path: Path) -> None:
    write(tmp_path, "control.d", CONTROL.replace("tank.valve", "calc.volume"))
    (problem,) = problems(tmp_path, modules=None)
    assert "control.d/plant.yaml:2: loops[0].output" in problem
    assert "calculated points cannot be written" in problem


def test_a_yml_file_is_refused_and_hidden_files_are_ignored(tmp_path: Path) -> None:
    stray = write(tmp_path, "alarms.d", ALARM, "extra.yml")
    write(tmp_path, "alarms.d", "not: [valid", ".#editing.yaml")
    assert problems(tmp_path) == [f"{stray}: ignored: files in alarms.d/ must end in .yaml"]


def test_every_problem_of_every_file_is_raised_at_once(tmp_path: Path) -> None:
    write(tmp_path, "alarms.d", ALARM.replace("limit: 4.5", "limit: high"))
    write(tmp_path, "calc.d", CALC.replace("tank.level * 12", "tank.level *"))
    with pytest.raises(ConfigError) as raised:
        load_plan(tmp_path)
    text = "\n".join(raised.value.problems)
    assert "alarms.d/plant.yaml:2: alarms[0].limit" in text
    assert "calc.d/plant.yaml:2: calc[0].expr" in text
