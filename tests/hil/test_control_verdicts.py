"""The rig's plantd-control forms report what goes wrong, as every step does: an alarm state
that never comes, a calculated point that is wrong, an audit record nobody wrote, a control
call expected to be refused that is accepted (each a ``<failure>``), and a call refused that
should not have been, or refused with another code (each an ``<error>``) — in the JUnit XML,
the summary and the exit status, from one run of the real command line against the real stack
(plantd-control included)."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .conftest import LOCAL_MODULES, PLANT, SCENARIOS

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

CONTROL = SCENARIOS / "control"
SCENARIO = f"""
name: control-mutations
simulators: [{PLANT}]
keep_going: true
stack:
  state: false
  modules:
    - {{file: {LOCAL_MODULES / "station.yaml"}, device: plc}}
    - {{file: {LOCAL_MODULES / "field.yaml"}, device: field}}
  control: [{CONTROL / "alarms.yaml"}, {CONTROL / "calc.yaml"}, {CONTROL / "level-loop.yaml"},
            {CONTROL / "interlock.yaml"}]
steps:
  - expect: {{point: field.tank_level, quality: good, within: 15s}}
  - set: {{point: field.tank_level, value: 2.45}}   # a level sample plantd-control sees
  - name: an alarm state that never comes
    expect: {{alarm: tank-level-high, state: unacknowledged, within: 2s}}
  - name: a reset refused with another code than expected
    control: {{reset: pump-stop-high-level, error: control.still-tripped}}
  - name: a mode change expected to be refused is accepted
    control: {{mode: {{loop: tank-level, mode: auto}}, error: control.not-manual}}
  - name: an acknowledgement refused
    alarm: {{ack: tank-level-high}}
  - name: the alarm is normal (this one passes)
    expect: {{alarm: tank-level-high, state: normal, active: false, within: 2s}}
  - name: a calculated point that is wrong
    expect: {{point: calc.tank_volume, min: 1000, within: 1s}}
  - name: an audit record nobody wrote
    expect:
      audit: {{principal: user.nobody, target: org.plantd.module.station write}}
      within: 1s
"""


def test_control_forms_fail_as_failures_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "control-mutations.yaml"
    path.write_text(SCENARIO)
    junit = tmp_path / "junit.xml"
    run = subprocess.run(
        [sys.executable, "-m", "plantd.cli", "hil", "run", str(path), "--junit", str(junit)],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    text = run.stdout + run.stderr
    assert run.returncode == 1, text
    assert "Traceback" not in text, text
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    outcomes = {}
    for case in suite.iter("testcase"):
        kinds = [child for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[case.get("name", "")[:2]] = (
            (kinds[0].tag, kinds[0].get("type"), kinds[0].get("message", ""))
            if kinds
            else ("passed", None, "")
        )
    assert set(outcomes) == {"01", "03", "04", "05", "06", "07", "08", "09"}, outcomes
    assert outcomes["01"][0] == "passed"
    assert outcomes["03"][:2] == ("failure", "ExpectationNotMet")
    assert outcomes["03"][2].startswith("alarm tank-level-high: not met within 2 s; state 'normal'")
    assert outcomes["04"][:2] == ("error", "StepError")
    assert outcomes["04"][2].startswith("reset refused: control.not-tripped: ")
    assert outcomes["04"][2].endswith("(expected control.still-tripped)")
    assert outcomes["05"] == ("failure", "StepFailed", "mode accepted, expected control.not-manual")
    assert outcomes["06"][:2] == ("error", "StepError")
    assert outcomes["06"][2].startswith("ack refused: alarm.not-acknowledgeable")
    assert outcomes["07"][0] == "passed"
    assert outcomes["08"][:2] == ("failure", "ExpectationNotMet")
    assert outcomes["08"][2].startswith("data.calc.tank_volume: not met within 1 s; value 29.")
    assert "below 1000" in outcomes["08"][2]
    assert outcomes["09"][:2] == ("failure", "ExpectationNotMet")
    assert outcomes["09"][2].startswith("the audit trail: not met within 1 s; principal '")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("8", "4", "2")
    assert "FAILED: 2 of 5 expectations met" in run.stdout, run.stdout
