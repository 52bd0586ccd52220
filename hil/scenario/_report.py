"""Scenario results for people (a summary) and for CI systems (JUnit XML).

JUnit mapping, as Jenkins, GitLab and GitHub's test reporters read it: one ``<testsuite>`` per
scenario, one ``<testcase>`` per expectation (``classname`` ``hil.<scenario>``, ``name`` the step
number and what it expects), ``<failure>`` for an expectation not met, ``<error>`` for an action
that could not be done (or a rig that could not be set up: a ``setup`` testcase), ``<skipped>``
for steps not run after a failure. Each suite's ``<system-out>`` is the human summary; on a
failure, ``<system-err>`` carries the end of every plantd process's log.
"""

from __future__ import annotations

import re
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from hil.scenario._result import ScenarioResult, StepResult

__all__ = ["format_step", "summary", "write_junit"]

# XML 1.0 forbids most control characters, even escaped; process logs may hold some.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MARK = {"passed": "ok  ", "failed": "FAIL", "error": "ERR ", "skipped": "skip"}


def format_step(step: StepResult) -> str:
    head = f"{step.t:7.2f} s  {_MARK[step.status]}  {step.index:>2}. {step.description}"
    if step.message and (step.status != "passed" or step.action in ("expect", "write")):
        indent = " " * 17
        head += "\n" + "\n".join(indent + line for line in step.message.splitlines())
    return head


def summary(result: ScenarioResult) -> str:
    where = f" ({result.source})" if result.source else ""
    lines = [f"scenario {result.name}{where}"]
    lines += [format_step(step) for step in result.steps]
    if result.setup_error:
        lines.append(f"  setup: {result.setup_error}")
    expectations = result.expectations
    met = sum(step.status == "passed" for step in expectations)
    verdict = "PASSED" if result.passed else "FAILED"
    lines.append(
        f"{verdict}: {met} of {len(expectations)} expectations met, "
        f"{len(result.failures())} failure(s), in {result.duration:.1f} s"
    )
    return "\n".join(lines)


def write_junit(results: Sequence[ScenarioResult], path: Path) -> None:
    """Write ``results`` as one JUnit XML file (``<testsuites>``)."""
    root = ET.Element("testsuites", name="plantd-hil")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for result in results:
        suite = _suite(result)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        total_time += result.duration
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _suite(result: ScenarioResult) -> ET.Element:
    classname = f"hil.{result.name}"
    suite = ET.Element("testsuite", name=result.name)
    suite.set("timestamp", time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(result.started)))
    suite.set("hostname", socket.gethostname())
    suite.set("time", f"{result.duration:.3f}")
    if result.source is not None:
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="scenario", value=str(result.source))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    if result.setup_error:
        case = ET.SubElement(suite, "testcase", classname=classname, name="setup", time="0")
        text = _xml(result.setup_error)
        error = ET.SubElement(case, "error", message=_first_line(text), type="SetupError")
        error.text = text
        counts["tests"] += 1
        counts["errors"] += 1
    for step in result.steps:
        if step.action != "expect" and step.status != "error":
            continue
        name = _xml(f"{step.index:02d} {step.description}")
        case = ET.SubElement(
            suite, "testcase", classname=classname, name=name, time=f"{step.duration:.3f}"
        )
        counts["tests"] += 1
        if step.status == "failed":
            failure = ET.SubElement(case, "failure", message=_first_line(step.message))
            failure.set("type", "ExpectationNotMet")
            failure.text = _xml(step.message)
            counts["failures"] += 1
        elif step.status == "error":
            error = ET.SubElement(case, "error", message=_first_line(step.message))
            error.set("type", "StepError")
            error.text = _xml(step.message)
            counts["errors"] += 1
        elif step.status == "skipped":
            ET.SubElement(case, "skipped", message="not run: an earlier step failed")
            counts["skipped"] += 1
    for key, value in counts.items():
        suite.set(key, str(value))
    ET.SubElement(suite, "system-out").text = _xml(summary(result))
    if not result.passed and result.logs:
        logs = "\n".join(f"--- {name} ---\n{text}" for name, text in result.logs.items())
        ET.SubElement(suite, "system-err").text = _xml(logs)
    return suite


def _first_line(text: str) -> str:
    return _xml(text.splitlines()[0]) if text else ""


def _xml(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)
