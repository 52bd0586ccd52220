"""``plant alarms …`` and ``plant control …`` against a real broker and ``plantd-control``.

The tank module is played by the test: it publishes ``data.tank.level`` on the bus as a module
would (nobody serves ``org.plantd.module.tank``: the loop's and interlock's writes fail, which
changes nothing the commands show here). ``plant`` runs in this process (``plantd.cli.main``),
``plant alarms watch`` in a child, as a user runs it.
"""

from __future__ import annotations

import json
import os
import pwd
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from plantd.bus import BusPublisher, Quality
from plantd.cli import NO_WORKER, main
from plantd.client import Client
from plantd.config import load_config
from plantd.errors import RequestTimeout, ServiceError
from plantd.security import Credentials, use_identity, user_identity
from plantd.service import call
from plantd.testing import ManagedProcess, wait_for_workers
from tests.conftest import Stack

ALARMS = """\
alarms:
  - name: tank-high
    point: tank.level
    type: high
    limit: 4.5
    deadband: 0.1
    priority: high
    message: Tank level high
  - name: tank-low
    point: tank.level
    type: low
    limit: 0.5
    priority: low
    message: Tank level low
"""
CALC = """\
calc:
  - name: volume
    expr: "tank.level * 12"
    unit: m3
"""
CONTROL = """\
loops:
  - name: level
    measurement: tank.level
    output: tank.valve
    setpoint: 3.0
    period: 200ms
    kp: 10
    ti: 20s
    action: direct
    output_min: 0
    output_max: 100
    mode: manual
    stale_after: 1h
    on_failure: hold
interlocks:
  - name: overflow
    when: "tank.level > 4.8"
    output: tank.pump
    safe_value: false
    reset: manual
"""
ALARMS_SERVICE = "org.plantd.Alarms"
CONTROL_SERVICE = "org.plantd.Control"

WATCH = ("alarms", "watch", "tank-low", "--count", "2", "--json")
Run = Callable[..., tuple[int, str, str]]


@dataclass
class Tank:
    stack: Stack
    publisher: BusPublisher

    def level(self, value: float) -> None:
        self.publisher.publish_batch("data.tank", [("level", value, time.time(), Quality.GOOD)])

    def ask(self, service: str, operation: str, params: dict[str, Any] | None = None) -> Any:
        with Client(self.stack.endpoint, timeout=3, retries=1) as client:
            return call(client, service, operation, params or {})

    def feed_until(self, value: float, holds: Callable[[], bool], what: str) -> None:
        """Publish ``value`` every 0.1 s until ``holds()`` (the bus's slow joiner: the first
        samples may be dropped before the subscription reaches the publisher)."""
        deadline = time.monotonic() + 15
        while True:
            self.level(value)
            if holds():
                return
            assert time.monotonic() < deadline, f"not within 15 s: {what}"
            time.sleep(0.1)

    def alarm(self, name: str) -> dict[str, Any]:
        alarms = self.ask(ALARMS_SERVICE, "list")
        return next(alarm for alarm in alarms if alarm["alarm"] == name)

    def interlock(self, name: str) -> dict[str, Any]:
        listed = self.ask(CONTROL_SERVICE, "list")
        return next(entry for entry in listed["interlocks"] if entry["name"] == name)


def write_plan(config_dir: Path) -> None:
    for directory, text in (("alarms", ALARMS), ("calc", CALC), ("control", CONTROL)):
        folder = config_dir / f"{directory}.d"
        folder.mkdir(exist_ok=True)
        (folder / "tank.yaml").write_text(textwrap.dedent(text))


def start_control(stack: Stack, credentials: Credentials | None = None) -> Tank:
    write_plan(stack.config_dir)
    control = ManagedProcess.plantd(
        ["plantd.control", "--config", str(stack.config_dir)], name="control", log_dir=stack.log_dir
    ).start()
    stack.processes.append(control)
    for service in (ALARMS_SERVICE, CONTROL_SERVICE):
        wait_for_workers(stack.endpoint, service)
    return Tank(stack, BusPublisher(stack.settings["bus"]["frontend"], credentials=credentials))


@pytest.fixture
def plant(stack: Stack, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``plant --config DIR ARGS`` in this process; returns (status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        status = main(["--config", str(stack.config_dir), *args])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


@pytest.fixture
def tank(stack: Stack) -> Iterator[Tank]:
    stack.start_broker()
    the_tank = start_control(stack)
    try:
        yield the_tank
    finally:
        the_tank.publisher.close()


def test_alarms_list_ack_shelve_unshelve_and_history(tank: Tank, plant: Run) -> None:
    tank.feed_until(
        4.7, lambda: tank.alarm("tank-high")["active"], "tank-high raised by a level of 4.7"
    )

    status, out, _ = plant("alarms")
    assert status == 0
    header, *rows = out.splitlines()
    assert header.split() == [
        "PRIORITY", "STATE", "ALARM", "POINT", "VALUE", "LIMIT", "SINCE", "MESSAGE",
    ]  # fmt: skip
    first = ["high", "unacknowledged", "tank-high", "tank.level", "4.7", "4.5"]
    assert rows[0].split()[:6] == first
    assert rows[0].endswith("Tank level high")
    assert rows[1].split()[:3] == ["low", "normal", "tank-low"]  # most urgent first

    status, out, _ = plant("alarms", "--active", "--json")
    assert [alarm["alarm"] for alarm in json.loads(out)] == ["tank-high"]
    status, out, _ = plant("alarms", "list", "--priority", "low", "--json")
    assert [alarm["alarm"] for alarm in json.loads(out)] == ["tank-low"]

    # An unknown alarm is named; the others named with it are still acknowledged.
    status, out, err = plant("alarms", "ack", "tank-hihg", "tank-high", "--comment", "seen")
    assert status == 1
    assert "plant: alarm.unknown: no alarm named 'tank-hihg'" in err
    assert out == "acknowledged tank-high: now acknowledged (by local)\n"
    acked = tank.alarm("tank-high")
    assert (acked["state"], acked["by"], acked["comment"]) == ("acknowledged", "local", "seen")
    status, out, _ = plant("alarms", "--unacknowledged", "--json")
    assert (status, json.loads(out)) == (0, [])
    status, out, err = plant("alarms", "ack", "tank-high", "--json")
    assert status == 1
    answer = json.loads(out)
    assert answer["errors"][0]["code"] == "alarm.not-acknowledgeable"

    # Shelving: bad durations never reach the service.
    for bad in ("soon", "0s", "31d"):
        status, _, err = plant("alarms", "shelve", "tank-high", "--for", bad)
        assert status == 1
        assert "--for" in err
    before = time.time()
    status, out, _ = plant("alarms", "shelve", "tank-high", "--for", "30m", "--reason", "work")
    assert status == 0
    assert out.startswith("shelved tank-high until ")
    shelved = tank.alarm("tank-high")
    assert shelved["shelved"] is True
    assert before + 1800 <= shelved["shelved_until"] <= time.time() + 1800
    status, out, _ = plant("alarms", "list", "--json")
    assert json.loads(out)[0]["shelved"] is True
    status, out, _ = plant("alarms")
    assert out.splitlines()[1].split()[1] == "acknowledged,shelved"
    # Back from the shelf with its condition still active: it must be seen again.
    status, out, _ = plant("alarms", "unshelve", "tank-high")
    assert (status, out) == (0, "unshelved tank-high: now unacknowledged\n")
    status, _, err = plant("alarms", "unshelve", "tank-high")
    assert status == 1
    assert "plant: alarm.not-shelved:" in err

    status, out, _ = plant("alarms", "ack", "--all")
    assert (status, out) == (0, "acknowledged tank-high: now acknowledged (by local)\n")
    status, _, err = plant("alarms", "ack", "--all")
    assert (status, err) == (0, "nothing to acknowledge\n")

    status, out, _ = plant("alarms", "history", "tank-high", "--since", "10m", "--json")
    transitions = [event["transition"] for event in json.loads(out)]
    assert transitions == ["raised", "acknowledged", "shelved", "unshelved", "acknowledged"]
    status, out, _ = plant("alarms", "history", "--limit", "2")
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["TIME", "ALARM", "TRANSITION", "STATE"]
    assert [row.split()[1:3] for row in rows] == [
        ["tank-high", "unshelved"],
        ["tank-high", "acknowledged"],
    ]
    status, _, err = plant("alarms", "history", "--since", "yesterday-ish")
    assert status == 1
    assert "--since" in err


def test_alarms_watch_prints_each_transition(tank: Tank, stack: Stack) -> None:
    watch = subprocess.Popen(
        [sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir), *WATCH],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Shelve and unshelve until the watcher (subscribed at some point) has seen two.
        deadline = time.monotonic() + 20
        while watch.poll() is None:
            assert time.monotonic() < deadline, "plant alarms watch saw no transitions"
            tank.ask(ALARMS_SERVICE, "shelve", {"alarm": "tank-low", "duration": 60})
            tank.ask(ALARMS_SERVICE, "unshelve", {"alarm": "tank-low"})
        out, err = watch.communicate(timeout=10)
    finally:
        watch.kill()
    assert watch.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 2
    assert {record["alarm"] for record in records} == {"tank-low"}
    assert {record["transition"] for record in records} <= {"shelved", "unshelved"}
    assert records[1]["seq"] == records[0]["seq"] + 1


def test_ctrl_c_ends_a_watch_with_status_0(tank: Tank, stack: Stack) -> None:
    watch = subprocess.Popen(
        [sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir), "alarms", "watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stdout is not None
        deadline = time.monotonic() + 20
        while not select.select([watch.stdout], [], [], 0)[0]:
            assert time.monotonic() < deadline, "plant alarms watch printed nothing"
            assert watch.poll() is None, watch.stderr.read() if watch.stderr else ""
            tank.ask(ALARMS_SERVICE, "shelve", {"alarm": "tank-low", "duration": 60})
            tank.ask(ALARMS_SERVICE, "unshelve", {"alarm": "tank-low"})
        line = watch.stdout.readline()
        watch.send_signal(signal.SIGINT)
        _, err = watch.communicate(timeout=10)
    finally:
        watch.kill()
    assert watch.returncode == 0, err
    assert "Traceback" not in err
    assert line.split()[1:4] in (
        ["LOW", "tank-low", "shelved"],
        ["LOW", "tank-low", "unshelved"],
    )
    assert "by local" in line


def test_control_list_mode_setpoint_output_and_reset(tank: Tank, plant: Run) -> None:
    status, out, _ = plant("control")
    assert status == 0
    loops, interlocks, calcs = out.split("\n\n")
    header, row = loops.splitlines()
    assert header.split()[:5] == ["LOOP", "MODE", "PV", "SETPOINT", "OUTPUT"]
    assert row.split()[:2] == ["level", "manual"]
    header, row = interlocks.splitlines()
    assert header.split()[:4] == ["INTERLOCK", "STATE", "OUTPUT", "SAFE"]
    assert row.split()[:4] == ["overflow", "normal", "tank.pump", "false"]
    header, row = calcs.splitlines()
    assert row.split()[0] == "calc.volume"
    assert row.endswith("tank.level * 12")

    status, out, _ = plant("control", "mode", "level", "auto")
    assert (status, out.split()[:4]) == (0, ["loop", "level:", "mode", "(mode"])
    assert out.rstrip().endswith("by local")
    status, out, err = plant("control", "output", "level", "40")
    assert status == 1
    assert "plant: control.not-manual: loop 'level' is in auto" in err
    status, out, _ = plant("control", "mode", "level", "manual", "--output", "25")
    assert status == 0
    assert plant("control", "output", "level", "40")[0] == 0
    status, out, err = plant("control", "output", "level", "400")
    assert (status, "control.out-of-range" in err) == (1, True)
    assert plant("control", "setpoint", "level", "2.5")[0] == 0
    status, out, _ = plant("control", "list", "--json")
    (loop,) = json.loads(out)["loops"]
    assert (loop["mode"], loop["output"], loop["setpoint"]) == ("manual", 40.0, 2.5)
    status, _, err = plant("control", "setpoint", "nosuch", "1")
    assert status == 1
    assert "plant: control.unknown: no loop named 'nosuch'" in err
    with pytest.raises(SystemExit):  # argparse: not a finite number
        plant("control", "setpoint", "level", "nan")

    status, _, err = plant("control", "reset", "overflow")
    assert (status, "control.not-tripped" in err) == (1, True)
    tank.feed_until(
        4.9, lambda: tank.interlock("overflow")["state"] == "tripped", "overflow tripped"
    )
    status, out, _ = plant("control", "reset", "overflow", "--json")
    assert status == 1
    assert json.loads(out)["error"]["code"] == "control.still-tripped"
    status, out, _ = plant("control")
    assert "tripped since" in out
    assert "(overflow)" not in out  # the interlock holds tank.pump, not the loop's tank.valve
    tank.feed_until(
        4.0,
        lambda: tank.interlock("overflow")["state"] == "awaiting-reset",
        "overflow's condition gone",
    )
    status, out, _ = plant("control", "reset", "overflow")
    assert (status, out) == (0, "interlock overflow: reset (state normal) by local\n")
    status, out, _ = plant("control", "--json")
    listed = json.loads(out)
    assert listed["interlocks"][0]["state"] == "normal"
    assert [calc["name"] for calc in listed["calc"]] == ["volume"]


def test_without_plantd_control_the_commands_say_no_worker(stack: Stack, plant: Run) -> None:
    stack.start_broker()
    status, _, err = plant("alarms")
    assert status == NO_WORKER
    assert "no worker serves org.plantd.Alarms" in err
    status, _, err = plant("control", "reset", "overflow")
    assert status == NO_WORKER
    assert "no worker serves org.plantd.Control" in err


@pytest.mark.stack(security={"mode": "curve"})
def test_a_viewer_may_list_but_not_acknowledge(stack: Stack, plant: Run) -> None:
    stack.start_broker()
    tank = start_control(stack, credentials=stack.credentials("module.tank"))
    try:
        tank.feed_until(4.7, lambda: tank.alarm("tank-high")["active"], "tank-high raised")
    finally:
        tank.publisher.close()
    stack.credentials("user.viewer", ("viewer",))
    as_viewer = ("--identity", str(stack.keyset().secret_path("user.viewer")))

    status, out, _ = plant(*as_viewer, "alarms", "--json")
    assert status == 0
    assert json.loads(out)[0]["state"] == "unacknowledged"
    status, _, err = plant(*as_viewer, "alarms", "ack", "tank-high")
    assert status == 1
    assert "plant: broker.denied:" in err
    assert tank.alarm("tank-high")["state"] == "unacknowledged"

    # The refusal is in the audit trail; an admin's ack goes through, by its name. (`plant
    # --identity` made this process the viewer: back to the test's user.)
    use_identity(user_identity(load_config(stack.config_dir), {}))

    def denied() -> list[dict[str, Any]]:
        try:
            result = tank.ask("org.plantd.Audit", "query", {"principal": "user.viewer"})
        except (ServiceError, RequestTimeout):
            return []
        return [r for r in result["records"] if r["target"] == "org.plantd.Alarms ack"]

    deadline = time.monotonic() + 15
    while not denied():
        assert time.monotonic() < deadline, "the viewer's refused ack is not audited"
        time.sleep(0.05)
    assert {record["result"] for record in denied()} == {"denied"}
    status, out, _ = plant("alarms", "ack", "tank-high")
    login = pwd.getpwuid(os.geteuid()).pw_name
    assert (status, out) == (0, f"acknowledged tank-high: now acknowledged (by user.{login})\n")
