"""The app's insight API: ``config check`` on real config directories (compared with what
``plant config check`` itself says), and HIL results from real JUnit files written by
``hil.scenario.write_junit``, broken ones and hostile names included."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hil.scenario import ScenarioResult, write_junit
from hil.scenario._result import StepResult
from plantd.proxy._insight import (
    MAX_RESULT_BYTES,
    OPENAPI_PATHS,
    _result_file,
    check_config_dir,
    list_results,
    parse_junit,
    read_result,
    split_problem,
)
from plantd.proxy._problems import Problem

ROOT = Path(__file__).resolve().parents[3]


def plant_config_check(config_dir: Path) -> dict[str, object]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PLANTD_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "plantd.cli",
            "--config",
            str(config_dir),
            "config",
            "check",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A copy of the repository's local demo config (plantd.yaml and three modules)."""
    target = tmp_path / "etc"
    shutil.copytree(ROOT / "config" / "local", target)
    return target


# --- config check --------------------------------------------------------------------------


def test_a_valid_config_is_ok_and_names_the_files_checked(config_dir: Path) -> None:
    result = check_config_dir(config_dir)

    assert result["ok"] is True
    assert result["problems"] == []
    assert result["config_dir"] == str(config_dir)
    assert "modules.d/station.yaml" in result["files"]
    assert plant_config_check(config_dir)["ok"] is True


def test_problems_are_those_plant_config_check_reports_split_into_parts(
    config_dir: Path,
) -> None:
    plantd_yaml = config_dir / "plantd.yaml"
    plantd_yaml.write_text(
        plantd_yaml.read_text() + "\nhistorian:\n  batch_size: -3\n  no_such_key: 1\n"
    )
    (config_dir / "modules.d" / "bad name!.yaml").write_text("driver: modbus\n")

    result = check_config_dir(config_dir)
    expected = plant_config_check(config_dir)

    assert result["ok"] is False
    problems = result["problems"]
    assert isinstance(expected["problems"], list)
    assert [p["message"] for p in problems] == [
        split_problem(text)["message"] for text in expected["problems"]
    ]
    size = next(p for p in problems if p["key"] == "historian.batch_size")
    assert size["file"] == str(plantd_yaml)
    lines = plantd_yaml.read_text().splitlines()
    assert lines[size["line"] - 1].strip() == "batch_size: -3"
    assert any(p["key"] == "historian.no_such_key" for p in problems)
    assert any("bad name!" in p["message"] for p in problems)


def test_a_missing_config_directory_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    result = check_config_dir(tmp_path / "nowhere")

    assert result["ok"] is False
    assert result["problems"]
    assert all(isinstance(p["message"], str) and p["message"] for p in result["problems"])


def test_no_config_directory_means_built_in_defaults() -> None:
    assert check_config_dir(None) == {"ok": True, "config_dir": None, "files": [], "problems": []}


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        (
            "/etc/plantd/plantd.yaml:12: historian.batch_size: expected ≥ 1, got -3",
            ("/etc/plantd/plantd.yaml", 12, "historian.batch_size", "expected ≥ 1, got -3"),
        ),
        (
            "/etc/plantd/modules.d/a.yaml:3: groups[0].points[1].address: expected an int",
            ("/etc/plantd/modules.d/a.yaml", 3, "groups[0].points[1].address", "expected an int"),
        ),
        (
            "/etc/plantd/modules.d/x y.yaml: module name 'x y' (the file name) may hold …",
            (
                "/etc/plantd/modules.d/x y.yaml",
                None,
                None,
                "module name 'x y' (the file name) may hold …",
            ),
        ),
        (
            "environment PLANTD_BUS_NOPE: not a plantd setting (bus has no key nope)",
            (
                "environment PLANTD_BUS_NOPE",
                None,
                None,
                "not a plantd setting (bus has no key nope)",
            ),
        ),
        ("something odd", (None, None, None, "something odd")),
    ],
)
def test_split_problem(text: str, parts: tuple[object, ...]) -> None:
    split = split_problem(text)
    assert (split["file"], split["line"], split["key"], split["message"]) == parts


# --- HIL results ---------------------------------------------------------------------------


def scenario(name: str, *, fail: bool) -> ScenarioResult:
    steps = [
        StepResult(1, "set", "set plc.speed_setpoint to 40", 0.0, 0.1),
        StepResult(2, "expect", "pump runs within 2 s", 0.1, 0.5),
        StepResult(
            3,
            "expect",
            "flow above 10 m3/h",
            0.6,
            2.0,
            status="failed" if fail else "passed",
            message="flow stayed at 0.0 for 2 s\nlast sample: 0.0 good" if fail else "",
        ),
    ]
    return ScenarioResult(name, Path(f"{name}.yaml"), 1_700_000_000.0, 2.6, steps)


def test_a_junit_file_from_the_hil_writer_is_parsed_into_suites_and_cases(tmp_path: Path) -> None:
    path = tmp_path / "nightly.xml"
    write_junit([scenario("pump-start", fail=False), scenario("pump-flow", fail=True)], path)

    result = parse_junit(path.read_bytes())

    assert result["ok"] is False
    assert (result["tests"], result["failures"], result["errors"]) == (4, 1, 0)
    first, second = result["suites"]
    assert first["name"] == "pump-start"
    assert [case["status"] for case in first["cases"]] == ["passed", "passed"]
    assert first["properties"] == {"scenario": "pump-start.yaml"}
    failed = second["cases"][1]
    assert failed["status"] == "failed"
    assert failed["name"] == "03 flow above 10 m3/h"
    assert failed["message"] == "flow stayed at 0.0 for 2 s"
    assert failed["type"] == "ExpectationNotMet"
    assert "last sample" in failed["text"]
    assert "pump-flow" in (second["system_out"] or "")


def test_listing_newest_first_with_a_broken_file_reported(tmp_path: Path) -> None:
    write_junit([scenario("old", fail=False)], tmp_path / "old.xml")
    write_junit([scenario("new", fail=True)], tmp_path / "new.xml")
    (tmp_path / "broken.xml").write_text("<testsuites><testsuite name='x'>")
    (tmp_path / "notes.txt").write_text("not a result")
    for age, name in enumerate(("broken", "new", "old")):
        os.utime(tmp_path / f"{name}.xml", (1_700_000_000 - age, 1_700_000_000 - age))

    listing = list_results(tmp_path)

    assert [r["name"] for r in listing["results"]] == ["broken", "new", "old"]
    broken, new, old = listing["results"]
    assert broken["ok"] is False
    assert "not well-formed" in broken["error"]
    assert (new["ok"], new["failures"], new["error"]) == (False, 1, None)
    assert (old["ok"], old["tests"]) == (True, 2)
    assert "suites" not in old


def test_an_empty_or_missing_directory_lists_nothing(tmp_path: Path) -> None:
    assert list_results(tmp_path / "none")["results"] == []


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b'<?xml version="1.0"?><report/>', "root element is <report>"),
        (
            b'<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><testsuites>&b;</testsuites>',
            "document type declaration",
        ),
        (b"\x00\x01garbage", "not well-formed"),
    ],
)
def test_a_file_that_is_not_junit_is_reported(tmp_path: Path, content: bytes, error: str) -> None:
    path = tmp_path / "bad.xml"
    path.write_bytes(content)

    result = read_result(path, details=True)

    assert result["ok"] is False
    assert error in result["error"]


def test_a_file_too_large_is_not_parsed(tmp_path: Path) -> None:
    path = tmp_path / "huge.xml"
    with path.open("wb") as out:
        out.truncate(MAX_RESULT_BYTES + 1)

    result = read_result(path, details=False)

    assert result["ok"] is False
    assert "larger than" in result["error"]


def test_a_single_testsuite_root_is_accepted(tmp_path: Path) -> None:
    data = b"""<testsuite name="s" tests="9"><testcase name="a"/>
      <testcase name="b"><error message="boom" type="E">trace</error></testcase>
      <testcase name="c"><skipped message="later"/></testcase></testsuite>"""
    result = parse_junit(data)
    # counted from the cases, not taken from the (wrong) tests attribute
    assert (result["tests"], result["errors"], result["skipped"], result["ok"]) == (3, 1, 1, False)


@pytest.mark.parametrize(
    "name", ["../secret", "..", "a/b", ".hidden", "x" * 200, "a\x00b", "%2e%2e", "..xml"]
)
def test_result_names_that_are_not_plain_are_refused(tmp_path: Path, name: str) -> None:
    results = tmp_path / "hil"
    results.mkdir()
    (tmp_path / "secret.xml").write_text("<testsuites/>")

    with pytest.raises(Problem) as refused:
        _result_file(results, name)
    assert refused.value.status == 404


def test_a_plain_name_finds_its_file_with_or_without_xml(tmp_path: Path) -> None:
    write_junit([scenario("run", fail=False)], tmp_path / "run-1.xml")
    assert _result_file(tmp_path, "run-1") == tmp_path / "run-1.xml"
    assert _result_file(tmp_path, "run-1.xml") == tmp_path / "run-1.xml"
    with pytest.raises(Problem):
        _result_file(tmp_path, "run-2")


def test_a_symlink_out_of_the_directory_is_refused(tmp_path: Path) -> None:
    results = tmp_path / "hil"
    results.mkdir()
    write_junit([scenario("run", fail=False)], tmp_path / "outside.xml")
    (results / "link.xml").symlink_to(tmp_path / "outside.xml")

    with pytest.raises(Problem):
        _result_file(results, "link")


def test_openapi_paths_cover_the_routes_with_read_access() -> None:
    assert set(OPENAPI_PATHS) == {
        "/api/v1/config/check",
        "/api/v1/hil/results",
        "/api/v1/hil/results/{name}",
    }
    for item in OPENAPI_PATHS.values():
        operation = item["get"]
        assert operation["x-plantd-access"] == "read"
        assert {"200", "401", "403"} <= set(operation["responses"])
