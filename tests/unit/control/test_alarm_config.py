"""``alarms.d/*.yaml``: a good file parses; each mistake is one problem naming file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantd.config import parse_dataclass, read_yaml
from plantd.control._alarm_config import AlarmConfig, AlarmsFile, suppress_problem
from plantd.errors import ConfigError

GOOD = """\
alarms:
  - name: tank-level-high
    point: field.tank_level
    type: high
    limit: 4.5
    deadband: 0.1
    on_delay: 2s
    off_delay: 500ms
    priority: high
    message: "Tank level high"
    suppress_when: "not station.pump_running"
    latch: true
  - name: flow-deviation
    point: field.flow
    type: deviation
    limit: 2
    setpoint: station.flow_sp
  - name: pump-fault
    point: station.pump_state
    type: discrete
    state: FAULT
  - name: level-bad
    point: field.tank_level
    type: bad-quality
"""


def load(tmp_path: Path, text: str) -> AlarmsFile:
    path = tmp_path / "plant.yaml"
    path.write_text(text, encoding="utf-8")
    doc = read_yaml(path)
    return parse_dataclass(AlarmsFile, doc.data, source=doc.source, lines=doc.lines)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return caught.value.problems


def test_a_good_file(tmp_path: Path) -> None:
    high, deviation, discrete, bad = load(tmp_path, GOOD).alarms
    assert high == AlarmConfig(
        name="tank-level-high", point="field.tank_level", type="high", limit=4.5,
        deadband=0.1, on_delay=2.0, off_delay=0.5, priority="high", message="Tank level high",
        suppress_when="not station.pump_running", latch=True,
    )  # fmt: skip
    assert deviation.limit == 2.0
    assert (deviation.setpoint, deviation.priority) == ("station.flow_sp", "medium")
    assert discrete.state == "FAULT"
    assert bad.type == "bad-quality"
    assert load(tmp_path, "") == AlarmsFile()


def test_a_bad_key_and_a_bad_type_name_file_and_line(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "alarms:\n"
        "  - name: a\n"
        "    point: field.x\n"
        "    type: high\n"
        "    limit: high\n"
        "    dedband: 0.1\n",
    )
    path = tmp_path / "plant.yaml"
    assert len(found) == 2
    assert found[0].startswith(f"{path}:6: alarms[0].dedband: unknown key")
    assert "did you mean 'deadband'" in found[0]
    assert found[1].startswith(f"{path}:5: alarms[0].limit: expected a number")


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("type: high", 2, ["limit", "required"]),
        ("type: rate\n    limit: 0", 3, ["limit", "> 0"]),
        ("type: rate\n    limit: 1\n    deadband: 1", 4, ["deadband", "less than limit"]),
        ("type: deviation\n    limit: 1", 2, ["setpoint", "required"]),
        ("type: deviation\n    limit: 1\n    setpoint: nope", 4, ["setpoint", "MODULE.POINT"]),
        ("type: high\n    limit: 1\n    setpoint: 3", 4, ["setpoint", "only for type deviation"]),
        ("type: discrete", 2, ["state", "required"]),
        ("type: high\n    limit: 1\n    state: true", 4, ["state", "only for type discrete"]),
        ("type: bad-quality\n    limit: 1", 3, ["limit", "not for type bad-quality"]),
        ("type: discrete\n    state: 1\n    deadband: 1", 4, ["deadband", "not for type"]),
        ("type: high\n    limit: .inf", 3, ["limit", "expected a number"]),
        ("type: deviation\n    limit: 1\n    setpoint: .nan", 4, ["setpoint", "finite"]),
        ("type: high\n    limit: 1\n    deadband: -1", 4, ["deadband", ">= 0"]),
        ("type: high\n    limit: 1\n    on_delay: soon", 4, ["on_delay", "duration"]),
        ("type: hihg\n    limit: 1", 2, ["type", "did you mean 'high'"]),
        ("type: high\n    limit: 1\n    priority: huge", 4, ["priority", "urgent"]),
        ("type: high\n    limit: 1\n    suppress_when: ' '", 4, ["suppress_when", "empty"]),
    ],
)
def test_rules_across_fields(tmp_path: Path, body: str, line: int, words: list[str]) -> None:
    (problem,) = problems(tmp_path, f"alarms:\n  - {body}\n    name: a\n    point: field.x\n")
    assert problem.startswith(f"{tmp_path / 'plant.yaml'}:{line}"), problem
    for word in words:
        assert word in problem, problem


def test_names_and_points_are_checked_and_names_unique(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "alarms:\n"
        "  - {name: 'bad name', point: field.x, type: bad-quality}\n"
        "  - {name: ok, point: nodot, type: bad-quality}\n",
    )
    assert len(found) == 2
    assert found[0].startswith(f"{tmp_path / 'plant.yaml'}:2: alarms[0].name:")
    assert found[1].startswith(f"{tmp_path / 'plant.yaml'}:3: alarms[1].point:")
    assert "MODULE.POINT" in found[1]
    (twice,) = problems(
        tmp_path,
        "alarms:\n"
        "  - {name: twice, point: field.x, type: bad-quality}\n"
        "  - {name: twice, point: field.y, type: bad-quality}\n",
    )
    assert twice.startswith(f"{tmp_path / 'plant.yaml'}:3: alarms[1].name:")
    assert "defined twice" in twice


def test_suppress_when_uses_the_expression_language_when_it_is_there() -> None:
    assert suppress_problem("") is not None
    assert suppress_problem("not station.pump_running") is None
