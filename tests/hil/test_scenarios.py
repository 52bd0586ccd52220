"""The scenarios shipped in hil/scenarios/, each against real processes: simulators in this
process, a broker, the state service and module processes on loopback. Each result is also
written as JUnit XML and a trace, and those are parsed back: CI systems and browsers must be
able to read them."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from hil.scenario import ScenarioResult, write_junit

from .conftest import SCENARIOS

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

SHIPPED = sorted(path.stem for path in SCENARIOS.glob("*.yaml"))


def test_the_six_scenarios_are_shipped() -> None:
    assert set(SHIPPED) >= {
        "normal-operation",
        "device-restart",
        "dead-unit",
        "slow-device",
        "corrupted-frames",
        "closed-loop",
    }


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_passes(
    name: str, hil_scenario: Callable[..., ScenarioResult], tmp_path: Path
) -> None:
    result = hil_scenario(SCENARIOS / f"{name}.yaml")
    assert result.passed, result.report()
    assert result.expectations, "a scenario that expects nothing proves nothing"
    junit = tmp_path / "junit.xml"
    write_junit([result], junit)
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("tests") == str(len(result.expectations))
    assert suite.get("failures") == "0"
    csv_path, html_path = (path for path in result.artifacts if path.suffix in (".csv", ".html"))
    with csv_path.open() as source:
        rows = list(csv.DictReader(source))
    assert rows, "the trace records what plantd published"
    assert set(rows[0]) == {"t", "source", "point", "value", "quality"}
    assert all(float(row["t"]) >= 0 for row in rows)
    page = ET.parse(html_path).getroot()  # the page is well-formed (XHTML syntax)
    assert page.find(".//{http://www.w3.org/2000/svg}svg") is not None
