"""calc.d files: CalcFile read from YAML, problems named by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantd.config import parse_dataclass, read_yaml
from plantd.control._calc_config import CalcConfig, CalcFile, name_problem
from plantd.errors import ConfigError


def load(tmp_path: Path, text: str) -> CalcFile:
    path = tmp_path / "calc.yaml"
    path.write_text(text, encoding="utf-8")
    document = read_yaml(path)
    return parse_dataclass(CalcFile, document.data, source=document.source, lines=document.lines)


def test_a_calc_file_is_read(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        """\
calc:
  - name: tank-volume
    expr: 'point("field.tank-level") * 12.5'
    unit: m3
  - name: flow_total
    expr: integral(field.flow, 1h)
    description: Total flow
    period: 10s
""",
    )
    assert loaded == CalcFile(
        calc=(
            CalcConfig(name="tank-volume", expr='point("field.tank-level") * 12.5', unit="m3"),
            CalcConfig(
                name="flow_total",
                expr="integral(field.flow, 1h)",
                description="Total flow",
                period=10.0,
            ),
        )
    )


def test_an_empty_file_has_no_calcs(tmp_path: Path) -> None:
    assert load(tmp_path, "") == CalcFile()


def test_a_bad_expression_is_a_problem_with_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(
            tmp_path,
            """\
calc:
  - name: ok
    expr: field.x + 1
  - name: broken
    expr: avgg(field.x, 60s) / 2
    period: 0s
  - name: -bad
    expr: field.x
""",
        )
    path = tmp_path / "calc.yaml"
    assert caught.value.problems == [
        f"{path}:5: calc[1].expr: invalid expression 'avgg(field.x, 60s) / 2': "
        "at column 1: unknown function 'avgg' (did you mean 'avg_over'?)",
        f"{path}:6: calc[1].period: expected a duration > 0, got '0s'",
        f"{path}:7: calc[2].name: expected 1 to 64 letters, digits, '_' and '-', "
        "starting with a letter or digit, got '-bad'",
    ]


@pytest.mark.parametrize("name", ["a", "tank-level", "flow_2", "9lives", "x" * 64])
def test_good_names(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize("name", ["", "-a", "_a", "a.b", "a b", "x" * 65, "ä"])
def test_bad_names(name: str) -> None:
    assert name_problem(name) is not None
