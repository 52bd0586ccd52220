"""A scenario that must fail does, through the command line, with a message that says what was
expected, what was seen instead, and where; and the JUnit XML and the trace say so too."""

from __future__ import annotations

import csv
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .conftest import LOCAL_MODULES, PLANT

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

SCENARIO = f"""
name: impossible-flow
simulators: [{PLANT}]
stack:
  modules:
    - {{file: {LOCAL_MODULES / "field.yaml"}, device: field}}
steps:
  - expect: {{point: field.flow, quality: good, within: 15s}}
  - name: the inlet delivers 500 m³/h (the pump cannot)
    expect: {{point: field.flow, min: 500, within: 1s}}
  - expect: {{point: field.tank_level, quality: good, within: 1s}}
"""


def test_a_failing_scenario_fails_clearly(tmp_path: Path) -> None:
    scenario = tmp_path / "impossible-flow.yaml"
    scenario.write_text(SCENARIO)
    junit, trace = tmp_path / "out" / "junit.xml", tmp_path / "out" / "trace"
    run = subprocess.run(
        [
            *(sys.executable, "-m", "plantd.cli", "hil", "run", str(scenario)),
            *("--junit", str(junit), "--trace", str(trace)),
        ],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    out = run.stdout
    assert "FAIL   2. the inlet delivers 500 m³/h (the pump cannot)" in out, out
    assert "data.field.flow: not met within 1 s; value " in out, out
    assert "below 500" in out, out
    assert "skip   3." in out, out
    assert (
        "FAILED: 1 of 3 expectations met, not met: 2. the inlet delivers 500 m³/h (the pump "
        "cannot), 1 skipped, in "
    ) in out, out
    assert out.rstrip().endswith("HIL: 1 scenario, 0 passed, 1 failed (impossible-flow) — FAILED")

    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    failures = suite.findall("testcase/failure")
    assert len(failures) == 1
    assert failures[0].get("message", "").startswith("data.field.flow: not met within 1 s")
    assert suite.find("system-err") is not None  # process logs, to see why

    with (trace / "impossible-flow.csv").open() as source:
        points = {row["point"] for row in csv.DictReader(source)}
    assert {"field.flow", "field.tank_level"} <= points
    ET.parse(trace / "impossible-flow.html")  # well-formed
