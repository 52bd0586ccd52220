"""The report's rules on results made by hand (no rig): every combination of step outcomes,
setup and teardown problems maps to JUnit XML that holds a failure or an error exactly when the
scenario did not pass; the summary names what failed; one line gives the verdict of a run."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import get_args

import pytest

from hil.scenario import ScenarioResult, StepResult, summary, write_junit
from hil.scenario._report import overall_verdict
from hil.scenario._result import Status

STATUSES: tuple[Status, ...] = get_args(Status)


def make_result(
    name: str,
    steps: list[tuple[str, Status]],
    *,
    setup: str | None = None,
    teardown: list[str] | None = None,
) -> ScenarioResult:
    result = ScenarioResult(name, Path(f"{name}.yaml"), 0.0, setup_error=setup)
    result.teardown_errors = list(teardown or [])
    for index, (action, status) in enumerate(steps, start=1):
        message = "" if status == "passed" else f"{status} because of a test"
        result.steps.append(
            StepResult(
                index, action, f"{action} thing {index}", 0.0, status=status, message=message
            )
        )
    return result


def junit_of(results: list[ScenarioResult], tmp_path: Path) -> ET.Element:
    path = tmp_path / "junit.xml"
    write_junit(results, path)
    return ET.parse(path).getroot()


CASES = [
    (steps, setup, teardown)
    for steps in itertools.product(
        itertools.product(("expect", "write", "wait"), STATUSES), repeat=2
    )
    for setup in (None, "no broker")
    for teardown in ([], ["a stop failed"])
]


@pytest.mark.parametrize(("steps", "setup", "teardown"), CASES)
def test_the_xml_fails_exactly_when_the_scenario_did(
    steps: tuple[tuple[str, Status], ...],
    setup: str | None,
    teardown: list[str],
    tmp_path: Path,
) -> None:
    result = make_result("s", list(steps), setup=setup, teardown=teardown)
    root = junit_of([result], tmp_path)
    cases = list(root.iter("testcase"))
    failing = [c for c in cases if c.find("failure") is not None or c.find("error") is not None]
    assert bool(failing) == (not result.passed)
    assert int(root.get("failures", "")) + int(root.get("errors", "")) == len(failing)
    assert int(root.get("tests", "")) == len(cases)
    names = [c.get("name", "") for c in cases]
    for step in result.steps:  # every step that failed, whatever its action, is a testcase
        if step.status in ("failed", "error"):
            kind = "failure" if step.status == "failed" else "error"
            (case,) = [c for c in cases if c.get("name", "").startswith(f"{step.index:02d} ")]
            assert case.find(kind) is not None
    assert ("setup" in names) == (setup is not None)
    assert ("teardown" in names) == bool(teardown)
    assert summary(result).splitlines()[-1].startswith("PASSED" if result.passed else "FAILED")


def test_the_summary_names_the_step_that_failed() -> None:
    result = make_result(
        "pump",
        [("expect", "passed"), ("expect", "passed"), ("write", "failed"), ("expect", "skipped")],
    )
    assert summary(result).splitlines()[-1] == (
        "FAILED: 2 of 3 expectations met, 1 step failed: 3. write thing 3, 1 skipped, in 0.0 s"
    )
    result = make_result("pump", [("expect", "failed"), ("wait", "error"), ("inject", "error")])
    assert summary(result).splitlines()[-1] == (
        "FAILED: 0 of 1 expectations met, not met: 1. expect thing 1, "
        "2 steps failed: 2. wait thing 2; 3. inject thing 3, in 0.0 s"
    )


def test_setup_and_teardown_problems_are_in_the_summary() -> None:
    result = make_result("pump", [], setup="SimError: no pty\nsecond line", teardown=["x: y"])
    assert summary(result).splitlines()[1:] == [
        "  setup: SimError: no pty",
        "         second line",
        "  teardown: x: y",
        "FAILED: 0 of 0 expectations met, setup failed, teardown failed, in 0.0 s",
    ]


def test_one_verdict_for_a_run_and_totals_on_the_root(tmp_path: Path) -> None:
    results = [
        make_result("a", [("expect", "passed")]),
        make_result("pump-trip", [("expect", "failed"), ("expect", "skipped")]),
        make_result("c", [("write", "passed"), ("expect", "passed")]),
        make_result("d", [], setup="no broker"),
    ]
    assert (
        overall_verdict(results) == "HIL: 4 scenarios, 2 passed, 2 failed (pump-trip, d) — FAILED"
    )
    assert overall_verdict(results[:1]) == "HIL: 1 scenario, 1 passed — PASSED"
    assert overall_verdict([]) == "HIL: 0 scenarios, 0 passed — FAILED"  # nothing ran: no pass
    root = junit_of(results, tmp_path)
    totals = {key: root.get(key) for key in ("tests", "failures", "errors", "skipped")}
    assert totals == {"tests": "5", "failures": "1", "errors": "1", "skipped": "1"}
