"""Scenario results for people (a summary) and for CI systems (JUnit XML).

JUnit mapping, as Jenkins, GitLab and GitHub's test reporters read it: one ``<testsuite>`` per
scenario, one ``<testcase>`` per expectation (``classname`` ``hil.<scenario>``, ``name`` the step
number and what it expects), and one for every other step that did not pass (a write refused,
a write expected to be refused that was not, a fault that could not be injected).
``<failure>`` marks what was checked and found wrong (an expectation not met, a write accepted
that should have been refused); ``<error>`` an action that could not be done (a write refused,
the scenario out of time during the step). A rig that could not be set up is an ``<error>`` in
a testcase named ``setup``, a problem after the steps (stopping the stack, writing the trace) one
in a testcase named ``teardown``. ``<skipped>``: expectations not run after a failure. The
``<testsuites>`` root carries the totals. So the XML holds a failure or an error exactly when
:attr:`ScenarioResult.passed` is false, which is what ``plant hil run``'s exit status says.
Each suite's ``<system-out>`` is the human summary; on a failure, ``<system-err>`` carries the
end of every plantd process's log.
"""

from __future__ import annotations

import re
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from hil.scenario._result import ScenarioResult, StepResult

__all__ = ["format_step", "overall_verdict", "summary", "verdict_lines", "write_junit"]

# XML 1.0 forbids most control characters, even escaped; process logs may hold some.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MARK = {"passed": "ok  ", "failed": "FAIL", "error": "ERR ", "skipped": "skip"}


def format_step(step: StepResult) -> str:
    head = f"{step.t:7.2f} s  {_MARK[step.status]}  {step.index:>2}. {step.description}"
    shown = step.status in ("failed", "error") or step.action in ("expect", "write")
    if step.message and step.status != "skipped" and shown:
        indent = " " * 17
        head += "\n" + "\n".join(indent + line for line in step.message.splitlines())
    return head


def summary(result: ScenarioResult) -> str:
    where = f" ({result.source})" if result.source else ""
    lines = [f"scenario {result.name}{where}"]
    lines += [format_step(step) for step in result.steps]
    lines += verdict_lines(result)
    return "\n".join(lines)


def verdict_lines(result: ScenarioResult) -> list[str]:
    """The end of the summary: setup and teardown problems, then the verdict, which names
    every step that failed (an action's failure is not counted among the expectations)."""
    lines = []
    if result.setup_error is not None:
        lines.append(_indented("setup: ", result.setup_error))
    lines += [_indented("teardown: ", error) for error in result.teardown_errors]
    expectations = result.expectations
    met = sum(step.status == "passed" for step in expectations)
    parts = [f"{met} of {len(expectations)} expectations met"]
    unmet = [step for step in result.failures() if step.action == "expect"]
    if unmet:
        parts.append("not met: " + "; ".join(_named(step) for step in unmet))
    actions = [step for step in result.failures() if step.action != "expect"]
    if actions:
        parts.append(f"{_count(len(actions), 'step')} failed: " + "; ".join(map(_named, actions)))
    skipped = sum(step.status == "skipped" for step in result.steps)
    if skipped:
        parts.append(f"{skipped} skipped")
    if result.setup_error is not None:
        parts.append("setup failed")
    if result.teardown_errors:
        parts.append("teardown failed")
    verdict = "PASSED" if result.passed else "FAILED"
    lines.append(f"{verdict}: {', '.join(parts)}, in {result.duration:.1f} s")
    return lines


def overall_verdict(results: Sequence[ScenarioResult]) -> str:
    """One line for a whole run: ``HIL: 3 scenarios, 2 passed, 1 failed (pump-trip) — FAILED``."""
    failed = [result.name for result in results if not result.passed]
    text = f"HIL: {_count(len(results), 'scenario')}, {len(results) - len(failed)} passed"
    if failed:
        text += f", {len(failed)} failed ({', '.join(failed)})"
    return text + (" — FAILED" if failed or not results else " — PASSED")


def _named(step: StepResult) -> str:
    return f"{step.index}. {step.description}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _indented(head: str, text: str) -> str:
    """``  head: text``, a text of several lines indented under its first."""
    pad = "\n" + " " * (2 + len(head))
    return "  " + head + pad.join(text.splitlines() or [""])


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

    def case(name: str, seconds: float) -> ET.Element:
        counts["tests"] += 1
        attributes = {"classname": classname, "name": _xml(name), "time": f"{seconds:.3f}"}
        return ET.SubElement(suite, "testcase", attributes)

    def fail(parent: ET.Element, tag: str, kind: str, text: str) -> None:
        counts["failures" if tag == "failure" else "errors"] += 1
        element = ET.SubElement(parent, tag, message=_first_line(text), type=kind)
        element.text = _xml(text)

    if result.setup_error is not None:
        fail(case("setup", 0.0), "error", "SetupError", result.setup_error)
    for step in result.steps:
        if step.action != "expect" and step.status not in ("failed", "error"):
            continue  # an action that was done is not a test; one that failed must show
        testcase = case(f"{step.index:02d} {step.description}", step.duration)
        if step.status == "failed":
            kind = "ExpectationNotMet" if step.action == "expect" else "StepFailed"
            fail(testcase, "failure", kind, step.message)
        elif step.status == "error":
            fail(testcase, "error", "StepError", step.message)
        elif step.status == "skipped":
            why = step.message or "not run: an earlier step failed"
            ET.SubElement(testcase, "skipped", message=_first_line(why))
            counts["skipped"] += 1
    if result.teardown_errors:
        text = "\n".join(result.teardown_errors)
        fail(case("teardown", 0.0), "error", "TeardownError", text)
    if not result.passed and counts["failures"] + counts["errors"] == 0:
        # Not reachable by the rules above; here so that no result can contradict its XML.
        fail(case("verdict", 0.0), "error", "Failed", verdict_lines(result)[-1])
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
