"""`plant hil run` never lies: whatever breaks, the exit status and the JUnit XML agree.

Tested by mutation: each case is a scenario broken on purpose (a wrong value, a write that
should be refused and is not, a write refused, a name that does not exist, a device that stops
answering, a scenario out of time, a rig that cannot be set up, a teardown that crashes …), run
through the real command line and the real rig; each must be a ``<failure>`` or an ``<error>``
in the JUnit file AND a non-zero exit status, with no traceback. A passing control shows that
the same checks can pass: 0 failures, 0 errors, exit 0.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from .conftest import LOCAL_MODULES, PLANT

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

STATION = f"""
stack:
  state: false
  modules:
    - {{file: {LOCAL_MODULES / "station.yaml"}, device: plc}}
"""
STATION_UP = "  - expect: {point: station.pump_speed, quality: good, within: 15s}\n"

# A second simulator with a TCP device on any free port: it starts, so a simulator that fails
# after it has to be cleaned up while this one runs (the case that once crashed the rig).
EXTRA_PLANT = """
name: extra
devices:
  - name: spare
    transport: tcp
    port: 0
    units:
      - unit: 1
        points:
          - {name: x, table: holding, address: 0, value: 1}
"""


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    junit: ET.Element

    def cases(self) -> dict[str, ET.Element]:
        """Testcases by name."""
        return {case.get("name", ""): case for case in self.junit.iter("testcase")}

    def outcome(self, name_start: str) -> str:
        """``failure``, ``error``, ``skipped`` or ``passed`` for the testcase named so."""
        matches = [c for n, c in self.cases().items() if n.startswith(name_start)]
        assert len(matches) == 1, f"no single testcase {name_start!r} in {list(self.cases())}"
        kinds = [child.tag for child in matches[0] if child.tag in ("failure", "error", "skipped")]
        return kinds[0] if kinds else "passed"

    def totals(self) -> tuple[int, int, int]:
        root = self.junit
        return tuple(int(root.get(key, "-1")) for key in ("tests", "failures", "errors"))  # type: ignore[return-value]

    @property
    def text(self) -> str:
        return (
            f"exit {self.returncode}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def plant_hil(tmp_path: Path, scenarios: list[Path], *args: str) -> Run:
    junit = tmp_path / "out" / "junit.xml"
    run = subprocess.run(
        [
            *(sys.executable, "-m", "plantd.cli", "hil", "run"),
            *(str(path) for path in scenarios),
            *("--junit", str(junit), *args),
        ],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert junit.is_file(), f"no JUnit file\n{run.stdout}\n{run.stderr}"
    return Run(run.returncode, run.stdout, run.stderr, ET.parse(junit).getroot())


def scenario_file(directory: Path, name: str, body: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(f"name: {name}\n{body}")
    return path


def assert_agrees(run: Run) -> None:
    """The rule under test: exit 0 exactly when the XML holds no failure and no error; the root
    carries the totals of its suites; and nothing ended in a traceback."""
    tests, failures, errors = run.totals()
    suites = run.junit.findall("testsuite")
    for key, total in (("tests", tests), ("failures", failures), ("errors", errors)):
        assert total == sum(int(s.get(key, "0")) for s in suites), run.text
    cases = list(run.junit.iter("testcase"))
    assert tests == len(cases), run.text
    assert failures == sum(len(c.findall("failure")) for c in cases), run.text
    assert errors == sum(len(c.findall("error")) for c in cases), run.text
    assert (run.returncode == 0) == (failures + errors == 0), run.text
    assert "Traceback" not in run.stderr + run.stdout, run.text


@dataclass
class Mutation:
    """A scenario broken one way, and the testcase that must show it."""

    body: str
    testcase: str
    """The start of the testcase's name (``05 write …``, ``setup``, ``teardown``)."""
    kind: str
    """``failure`` (an expectation not met) or ``error`` (something could not be done)."""
    says: str = ""
    """Part of what the run prints about it (stdout or stderr)."""
    prepare: Callable[[Path], list[str]] = field(default=lambda _: [])
    """Breaks the surroundings (given the test's directory); returns extra CLI arguments."""


def _unwritable_run_dir(tmp_path: Path) -> list[str]:
    # The rig's pty links go to WORK/NAME/run; a file there stops the field device starting,
    # after the simulator of extra.yaml is already serving.
    (tmp_path / "extra.yaml").write_text(EXTRA_PLANT)
    (tmp_path / "work" / "device-will-not-start").mkdir(parents=True)
    (tmp_path / "work" / "device-will-not-start" / "run").write_text("in the way")
    return ["--work-dir", str(tmp_path / "work")]


def _trace_dir_is_a_file(tmp_path: Path) -> list[str]:
    (tmp_path / "trace").write_text("in the way")
    return ["--trace", str(tmp_path / "trace")]


@pytest.fixture
def busy_config(tmp_path: Path) -> Iterator[Path]:
    """A config directory whose broker cannot come up: its endpoints are taken (by sockets
    this test listens on, bound to port 0 and read back)."""
    held = []
    for _ in range(3):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        held.append(sock)
    ports = [sock.getsockname()[1] for sock in held]
    config = tmp_path / "etc"
    config.mkdir()
    settings = {
        "broker": {"endpoint": f"tcp://127.0.0.1:{ports[0]}"},
        "bus": {
            "frontend": f"tcp://127.0.0.1:{ports[1]}",
            "backend": f"tcp://127.0.0.1:{ports[2]}",
        },
        "paths": {"data": str(tmp_path / "data"), "run": str(tmp_path / "run")},
        "security": {"mode": "none"},
    }
    (config / "plantd.yaml").write_text(yaml.safe_dump(settings))
    try:
        yield config
    finally:
        for sock in held:
            sock.close()


MUTATIONS = {
    "wrong-expected-value": Mutation(
        f"simulators: [{PLANT}]\nsteps:\n"
        "  - expect: {device: plc.speed_setpoint, value: 99, within: 0s}\n",
        "01 expect device plc.speed_setpoint = 99",
        "failure",
    ),
    "write-expected-to-fail-succeeds": Mutation(
        f"simulators: [{PLANT}]\n{STATION}steps:\n{STATION_UP}"
        "  - write: {point: station.speed_setpoint, value: 50, error: module.bad-value}\n",
        "02 write station.speed_setpoint = 50",
        "failure",
        says="accepted ({'point': 'speed_setpoint', 'value': 50.0}), expected module.bad-value",
    ),
    "write-refused": Mutation(
        f"simulators: [{PLANT}]\n{STATION}steps:\n{STATION_UP}"
        "  - write: {point: station.speed_setpoint, value: 150}\n",
        "02 write station.speed_setpoint = 150",
        "error",
        says="write refused: module.bad-value: 150 is above the maximum",
    ),
    "unknown-point": Mutation(
        f"simulators: [{PLANT}]\n{STATION}steps:\n"
        "  - expect: {point: station.no_such_point, min: 1}\n",
        "setup",
        "error",
        says="module 'station' has no point 'no_such_point'",
    ),
    "device-never-answers": Mutation(
        f"simulators: [{PLANT}]\n{STATION}steps:\n{STATION_UP}"
        "  - inject: {device: plc, fault: silent}\n"
        "  - expect: {point: station.pump_speed, quality: good, fresh: true, within: 3s}\n",
        "03 expect station.pump_speed",
        "failure",
    ),
    "scenario-out-of-time": Mutation(
        f"simulators: [{PLANT}]\ntimeout: 1s\nsteps:\n"
        "  - expect: {device: plc.pump_run, value: true, within: 0s}\n"
        "  - wait: 30s\n"
        "  - expect: {device: plc.pump_run, value: true, within: 0s}\n",
        "02 wait",
        "error",
        says="the scenario ran out of time (1 s) during this step",
    ),
    "setup-out-of-time": Mutation(
        f"simulators: [{PLANT}]\ntimeout: 0.5s\n{STATION}steps:\n{STATION_UP}",
        "setup",
        "error",
        says="the scenario ran out of time (0.5 s) while the rig was set up",
    ),
    "device-will-not-start": Mutation(
        f"simulators: [extra.yaml, {PLANT}]\nsteps:\n"
        "  - expect: {device: plc.pump_run, value: true, within: 0s}\n",
        "setup",
        "error",
        "device 'field' cannot make its pty link",
        _unwritable_run_dir,
    ),
    "trace-cannot-be-written": Mutation(
        f"simulators: [{PLANT}]\nsteps:\n"
        "  - expect: {device: plc.pump_run, value: true, within: 0s}\n",
        "teardown",
        "error",
        "writing the trace to",
        _trace_dir_is_a_file,
    ),
}


@pytest.mark.parametrize("name", MUTATIONS)
def test_a_broken_scenario_fails_in_junit_and_in_the_exit_status(name: str, tmp_path: Path) -> None:
    mutation = MUTATIONS[name]
    extra = mutation.prepare(tmp_path)
    path = scenario_file(tmp_path, name, mutation.body)
    run = plant_hil(tmp_path, [path], *extra)
    assert_agrees(run)
    assert run.returncode != 0, run.text
    assert run.outcome(mutation.testcase) == mutation.kind, run.text
    assert "FAILED" in run.stdout, run.text
    assert mutation.says in run.stdout + run.stderr, run.text


def test_the_control_passes_with_no_failure_and_exit_0(tmp_path: Path) -> None:
    body = (
        f"simulators: [{PLANT}]\n{STATION}steps:\n{STATION_UP}"
        "  - write: {point: station.speed_setpoint, value: 150, error: module.bad-value}\n"
        "  - write: {point: station.speed_setpoint, value: 60}\n"
        "  - expect: {device: plc.speed_setpoint, value: 60, tolerance: 0.05, within: 2s}\n"
    )
    run = plant_hil(tmp_path, [scenario_file(tmp_path, "control", body)])
    assert_agrees(run)
    assert run.returncode == 0, run.text
    assert run.totals() == (2, 0, 0), run.text
    assert "PASSED: 2 of 2 expectations met" in run.stdout, run.text
    assert run.stdout.rstrip().endswith("HIL: 1 scenario, 1 passed — PASSED"), run.text


def test_a_broker_that_does_not_come_up_is_a_setup_error(tmp_path: Path, busy_config: Path) -> None:
    body = "stack: {state: false}\nsteps:\n  - wait: 0s\n"
    path = scenario_file(tmp_path, "no-broker", body)
    run = plant_hil(tmp_path, [path], "--config", str(busy_config))
    assert_agrees(run)
    assert run.returncode == 1, run.text
    assert run.outcome("setup") == "error", run.text
    assert "broker exited" in run.stderr, run.text


def test_a_crash_in_teardown_is_a_teardown_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stack stops, then its stop raises (as a process that would not die might): the
    scenario's steps all passed, yet the run fails, and says why."""
    from hil.scenario._stack import RigStack
    from plantd.cli import main

    real_stop = RigStack.stop

    async def stop_then_crash(self: RigStack) -> None:
        await real_stop(self)
        raise RuntimeError("module-station would not stop (a crash put here by the test)")

    monkeypatch.setattr(RigStack, "stop", stop_then_crash)
    body = f"simulators: [{PLANT}]\n{STATION}steps:\n{STATION_UP}"
    path = scenario_file(tmp_path, "teardown-crash", body)
    junit = tmp_path / "junit.xml"
    code = main(["hil", "run", str(path), "--junit", str(junit)])
    out = capsys.readouterr()
    run = Run(code, out.out, out.err, ET.parse(junit).getroot())
    assert_agrees(run)
    assert code == 1, run.text
    assert run.outcome("01 expect station.pump_speed") == "passed", run.text
    assert run.outcome("teardown") == "error", run.text
    error = run.cases()["teardown"].find("error")
    assert error is not None
    assert "module-station would not stop" in error.get("message", ""), run.text
    assert "teardown failed" in run.stdout, run.text


def test_several_scenarios_get_one_verdict_and_a_crash_keeps_the_others(tmp_path: Path) -> None:
    """A rig that cannot be set up in the second of three scenarios: the first and third still
    count, the JUnit file holds all three, and one last line gives the verdict."""
    passing = f"simulators: [{PLANT}]\nsteps:\n" + (
        "  - expect: {device: plc.pump_run, value: true, within: 0s}\n"
    )
    extra = _unwritable_run_dir(tmp_path)
    paths = [
        scenario_file(tmp_path, "first", passing),
        scenario_file(tmp_path, "device-will-not-start", MUTATIONS["device-will-not-start"].body),
        scenario_file(tmp_path, "third", passing),
    ]
    run = plant_hil(tmp_path, paths, *extra)
    assert_agrees(run)
    assert run.returncode == 1, run.text
    assert [s.get("name") for s in run.junit.findall("testsuite")] == [
        "first",
        "device-will-not-start",
        "third",
    ]
    assert run.totals() == (4, 0, 1), run.text  # the second's expectation: skipped
    second = run.junit.findall("testsuite")[1]
    assert [(c.get("name"), [e.tag for e in c]) for c in second.iter("testcase")] == [
        ("setup", ["error"]),
        ("01 expect device plc.pump_run = true within 0 s", ["skipped"]),
    ], run.text
    assert "FAILED: 0 of 1 expectations met, 1 skipped, setup failed" in run.stdout, run.text
    last = run.stdout.rstrip().splitlines()[-1]
    assert last == "HIL: 3 scenarios, 2 passed, 1 failed (device-will-not-start) — FAILED", run.text
    assert "cannot make its pty link" in run.stderr, run.text


def test_a_rig_that_breaks_during_a_step_fails_that_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Something the rig runs beside the steps crashes (here the simulated-value sampler, made
    to by the test): the step running is an error, those after it are skipped, the simulators
    are stopped, and the result comes back instead of an exception."""
    from hil.scenario import load_scenario, run_scenario_sync, write_junit
    from hil.scenario._runner import _Rig

    async def crash(self: _Rig) -> None:
        raise KeyError("a sampler bug (put here by the test)")

    monkeypatch.setattr(_Rig, "_sample_sims", crash)
    body = f"simulators: [{PLANT}]\nsteps:\n  - wait: 30s\n  - wait: 1s\n"
    result = run_scenario_sync(load_scenario(scenario_file(tmp_path, "rig-breaks", body)))
    assert [(step.status, step.message) for step in result.steps] == [
        ("error", "KeyError: 'a sampler bug (put here by the test)'"),
        ("skipped", "not run: the scenario was cut short"),
    ]
    assert result.setup_error is None
    assert not result.teardown_errors
    write_junit([result], tmp_path / "junit.xml")
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert (root.get("tests"), root.get("errors"), root.get("failures")) == ("1", "1", "0")
