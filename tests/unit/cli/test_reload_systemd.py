"""The systemd side of ``plant reload``: which systemctl commands each change takes, in which
order, what a failing one leaves, and when systemd is taken to run the stack. systemctl is a
fake that records the commands (and answers ``is-active`` as told); the files, snapshots and
the generator's drop-in are real files in a temporary directory."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from plantd.cli._reload_systemd import (
    AGAIN_FILE,
    HOST_DROP_IN,
    HOST_UNIT,
    apply_systemd,
    systemd_manages,
)
from plantd.config import PathsConfig
from plantd.config._model import PlantdConfig
from plantd.reconfigure import APPLIED_FILE, Snapshot, plan, snapshot

ISOLATED = "isolated: true\n"
MODULE = "driver: sim\n"


class FakeSystemctl:
    """Records every systemctl command but the questions; ``states`` answers ``is-active``
    (default ``inactive``), ``started`` the start time of a unit's process (``show``); a
    command in ``failing`` exits 1; ``on_daemon_reload`` stands for the generator, which runs
    at ``daemon-reload``."""

    def __init__(
        self,
        states: Mapping[str, str] | None = None,
        failing: set[str] | None = None,
        on_daemon_reload: Callable[[], None] | None = None,
        started: Mapping[str, float] | None = None,
    ) -> None:
        self.states = dict(states or {})
        self.started = dict(started or {})
        self.failing = failing or set()
        self.on_daemon_reload = on_daemon_reload
        self.commands: list[str] = []

    def __call__(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert argv[0] == "systemctl"
        assert kwargs.get("check") is False
        line = " ".join(argv[1:])
        if argv[1] == "is-active":
            state = self.states.get(argv[2], "inactive")
            return subprocess.CompletedProcess(argv, 0 if state == "active" else 3, state + "\n")
        if argv[1] == "show":
            assert argv[2:5] == ["--property=ExecMainStartTimestamp", "--timestamp=unix", "--value"]
            started = self.started.get(argv[5])
            return subprocess.CompletedProcess(argv, 0, f"@{started:.0f}\n" if started else "\n")
        self.commands.append(line)
        if argv[1] == "daemon-reload" and self.on_daemon_reload is not None:
            self.on_daemon_reload()
        if line in self.failing:
            return subprocess.CompletedProcess(argv, 1, "", "Job failed. See journal.\n")
        return subprocess.CompletedProcess(argv, 0, "", "")


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.config_dir = tmp_path / "etc"
        self.generator = tmp_path / "generator"
        self.run_dir = tmp_path / "run"
        for folder in ("modules.d", "sinks.d"):
            (self.config_dir / folder).mkdir(parents=True)
        self.config = PlantdConfig(
            paths=PathsConfig(data=tmp_path / "data", run=self.run_dir),
            source_dir=self.config_dir,
        )

    def write(self, relative: str, text: str) -> None:
        (self.config_dir / relative).write_text(text)

    def remove(self, relative: str) -> None:
        (self.config_dir / relative).unlink()

    def drop_in(self, text: str) -> None:
        path = self.generator / HOST_DROP_IN
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def apply(self, old: Snapshot, fake: FakeSystemctl, **kwargs: Any) -> list[str]:
        new = snapshot(self.config_dir)
        return apply_systemd(
            self.config, plan(old, new), new, run=fake, generator_dir=self.generator, **kwargs
        )


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def test_an_isolated_module_added_changed_and_removed(setup: Setup) -> None:
    old = snapshot(setup.config_dir)
    setup.write("modules.d/pump.yaml", MODULE + ISOLATED)
    fake = FakeSystemctl()
    lines = setup.apply(old, fake)
    assert fake.commands == ["daemon-reload", "start plantd-module@pump.service"]
    assert "systemctl start plantd-module@pump.service" in lines

    old = snapshot(setup.config_dir)
    setup.write("modules.d/pump.yaml", MODULE + ISOLATED + "interval: 2s\n")
    fake = FakeSystemctl()
    setup.apply(old, fake)
    assert fake.commands == ["daemon-reload", "restart plantd-module@pump.service"]

    old = snapshot(setup.config_dir)
    setup.remove("modules.d/pump.yaml")
    fake = FakeSystemctl()
    setup.apply(old, fake)
    assert fake.commands == ["daemon-reload", "stop plantd-module@pump.service"]


def test_a_sink_added_changed_and_removed(setup: Setup) -> None:
    old = snapshot(setup.config_dir)
    setup.write("sinks.d/upstream.yaml", "type: mqtt\n")
    fake = FakeSystemctl()
    setup.apply(old, fake)
    assert fake.commands == ["daemon-reload", "start plantd-sink@upstream.service"]

    old = snapshot(setup.config_dir)
    setup.write("sinks.d/upstream.yaml", "type: mqtt\nqos: 1\n")
    fake = FakeSystemctl()
    setup.apply(old, fake)
    # SIGHUP: the sink re-reads its file and keeps its queue (started if it was not running).
    assert fake.commands == ["daemon-reload", "reload-or-restart plantd-sink@upstream.service"]

    old = snapshot(setup.config_dir)
    setup.remove("sinks.d/upstream.yaml")
    fake = FakeSystemctl()
    setup.apply(old, fake)
    assert fake.commands == ["daemon-reload", "stop plantd-sink@upstream.service"]


def test_a_hosted_module_added_to_a_running_host_is_a_reload(setup: Setup) -> None:
    setup.write("modules.d/meter.yaml", MODULE)
    old = snapshot(setup.config_dir)
    setup.write("modules.d/boiler.yaml", MODULE)
    fake = FakeSystemctl({HOST_UNIT: "active"})
    lines = setup.apply(old, fake)
    assert fake.commands == ["daemon-reload", f"reload {HOST_UNIT}"]
    assert f"systemctl reload {HOST_UNIT} (only the modules whose files changed)" in lines


def test_a_changed_or_removed_hosted_module_is_a_reload_too(setup: Setup) -> None:
    setup.write("modules.d/meter.yaml", MODULE)
    setup.write("modules.d/boiler.yaml", MODULE)
    old = snapshot(setup.config_dir)
    setup.write("modules.d/meter.yaml", MODULE + "interval: 5s\n")
    setup.remove("modules.d/boiler.yaml")
    fake = FakeSystemctl({HOST_UNIT: "active"})
    setup.apply(old, fake)
    assert fake.commands == ["daemon-reload", f"reload {HOST_UNIT}"]


def test_a_new_device_grant_restarts_the_host(setup: Setup) -> None:
    setup.write("modules.d/meter.yaml", MODULE)
    setup.drop_in("[Service]\nIPAddressAllow=10.0.0.5\n")
    old = snapshot(setup.config_dir)
    setup.write("modules.d/rtu.yaml", "driver: serial\nconnection: {port: /dev/ttyUSB0}\n")

    def generator() -> None:  # what the generator writes for the new file
        setup.drop_in("[Service]\nDeviceAllow=/dev/ttyUSB0 rw\nIPAddressAllow=10.0.0.5\n")

    fake = FakeSystemctl({HOST_UNIT: "active"}, on_daemon_reload=generator)
    lines = setup.apply(old, fake)
    assert fake.commands == ["daemon-reload", f"restart {HOST_UNIT}"]
    assert any("every hosted module" in line for line in lines)


def test_a_drop_in_that_appears_counts_as_changed(setup: Setup) -> None:
    setup.write("modules.d/meter.yaml", MODULE)
    old = snapshot(setup.config_dir)
    setup.write("modules.d/plc.yaml", "driver: modbus\nconnection: {host: 10.0.0.9}\n")
    fake = FakeSystemctl(
        {HOST_UNIT: "active"},
        on_daemon_reload=lambda: setup.drop_in("[Service]\nIPAddressAllow=10.0.0.9\n"),
    )
    setup.apply(old, fake)
    assert fake.commands == ["daemon-reload", f"restart {HOST_UNIT}"]


def test_the_host_with_no_module_left_is_stopped(setup: Setup) -> None:
    setup.write("modules.d/meter.yaml", MODULE)
    old = snapshot(setup.config_dir)
    setup.remove("modules.d/meter.yaml")
    fake = FakeSystemctl({HOST_UNIT: "active"})
    lines = setup.apply(old, fake)
    assert fake.commands == ["daemon-reload", f"stop {HOST_UNIT}"]
    assert f"systemctl stop {HOST_UNIT} (no module left in it)" in lines


def test_an_emptied_host_that_is_not_running_is_left_alone(setup: Setup) -> None:
    setup.write("modules.d/meter.yaml", MODULE)
    old = snapshot(setup.config_dir)
    setup.remove("modules.d/meter.yaml")
    fake = FakeSystemctl({HOST_UNIT: "inactive"})
    setup.apply(old, fake)
    assert fake.commands == ["daemon-reload"]


@pytest.mark.parametrize("state", ["inactive", "failed"])
def test_a_host_that_was_not_running_is_started(setup: Setup, state: str) -> None:
    old = snapshot(setup.config_dir)
    setup.write("modules.d/meter.yaml", MODULE)
    fake = FakeSystemctl({HOST_UNIT: state})
    setup.apply(old, fake)
    assert fake.commands == ["daemon-reload", f"start {HOST_UNIT}"]


def test_a_host_that_is_starting_is_restarted(setup: Setup) -> None:
    # It may have read modules.d/ before the change: a reload could come too early.
    old = snapshot(setup.config_dir)
    setup.write("modules.d/meter.yaml", MODULE)
    fake = FakeSystemctl({HOST_UNIT: "activating"})
    setup.apply(old, fake)
    assert fake.commands == ["daemon-reload", f"restart {HOST_UNIT}"]


def test_a_module_moving_into_a_process_of_its_own_leaves_the_host_first(setup: Setup) -> None:
    setup.write("modules.d/meter.yaml", MODULE)
    setup.write("modules.d/pump.yaml", MODULE)
    old = snapshot(setup.config_dir)
    setup.write("modules.d/pump.yaml", MODULE + ISOLATED)
    fake = FakeSystemctl({HOST_UNIT: "active"})
    setup.apply(old, fake)
    assert fake.commands == [
        "daemon-reload",
        f"reload {HOST_UNIT}",  # the host lets go of org.plantd.module.pump ...
        "start plantd-module@pump.service",  # ... before its own process takes it
    ]


def test_a_module_moving_into_the_host_stops_its_own_process_first(setup: Setup) -> None:
    setup.write("modules.d/meter.yaml", MODULE)
    setup.write("modules.d/pump.yaml", MODULE + ISOLATED)
    old = snapshot(setup.config_dir)
    setup.write("modules.d/pump.yaml", MODULE)
    fake = FakeSystemctl({HOST_UNIT: "active"})
    setup.apply(old, fake)
    assert fake.commands == [
        "daemon-reload",
        "stop plantd-module@pump.service",
        f"reload {HOST_UNIT}",
    ]


def test_nothing_but_the_changed_units_is_touched(setup: Setup) -> None:
    setup.write("modules.d/meter.yaml", MODULE)
    setup.write("modules.d/pump.yaml", MODULE + ISOLATED)
    setup.write("sinks.d/upstream.yaml", "type: mqtt\n")
    old = snapshot(setup.config_dir)
    setup.write("sinks.d/archive.yaml", "type: postgres\n")
    fake = FakeSystemctl({HOST_UNIT: "active"})
    setup.apply(old, fake)
    assert fake.commands == ["daemon-reload", "start plantd-sink@archive.service"]


def test_a_failing_command_is_reported_and_the_rest_still_applied(setup: Setup) -> None:
    old = snapshot(setup.config_dir)
    setup.write("modules.d/pump.yaml", MODULE + ISOLATED)
    setup.write("sinks.d/upstream.yaml", "type: mqtt\n")
    fake = FakeSystemctl(failing={"start plantd-module@pump.service"})
    lines = setup.apply(old, fake)
    assert fake.commands == [
        "daemon-reload",
        "start plantd-module@pump.service",
        "start plantd-sink@upstream.service",
    ]
    assert (
        "failed: systemctl start plantd-module@pump.service: exit status 1: Job failed. "
        "See journal.; see `systemctl status plantd-module@pump.service`"
    ) in lines
    assert "systemctl start plantd-sink@upstream.service" in lines
    # The files are applied: systemd has them (and restarts the unit); the failure is reported.
    saved = Snapshot.load(setup.run_dir / APPLIED_FILE)
    assert saved is not None
    assert set(saved.entries) == {("module", "pump"), ("sink", "upstream")}


def test_a_failing_daemon_reload_is_reported_and_the_units_still_handled(setup: Setup) -> None:
    old = snapshot(setup.config_dir)
    setup.write("sinks.d/upstream.yaml", "type: mqtt\n")
    fake = FakeSystemctl(failing={"daemon-reload"})
    lines = setup.apply(old, fake)
    assert fake.commands == ["daemon-reload", "start plantd-sink@upstream.service"]
    assert lines[0] == "failed: systemctl daemon-reload: exit status 1: Job failed. See journal."


def test_no_systemctl_at_all_is_a_failure_per_command(setup: Setup) -> None:
    old = snapshot(setup.config_dir)
    setup.write("sinks.d/upstream.yaml", "type: mqtt\n")

    def missing(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(2, "No such file or directory", "systemctl")

    new = snapshot(setup.config_dir)
    lines = apply_systemd(setup.config, plan(old, new), new, run=missing)
    assert [line.split(":")[1].strip() for line in lines] == [
        "systemctl daemon-reload",
        "systemctl start plantd-sink@upstream.service",
    ]
    assert all(line.startswith("failed: ") and "exit status 127" in line for line in lines)


def test_the_applied_snapshot_is_saved(setup: Setup) -> None:
    old = snapshot(setup.config_dir)
    setup.write("modules.d/meter.yaml", MODULE)
    new = snapshot(setup.config_dir)
    apply_systemd(
        setup.config, plan(old, new), new, run=FakeSystemctl(), generator_dir=setup.generator
    )
    saved = Snapshot.load(setup.run_dir / APPLIED_FILE)
    assert saved is not None
    assert {k: e.digest for k, e in saved.entries.items()} == {
        k: e.digest for k, e in new.entries.items()
    }


def test_a_change_that_lands_while_it_runs_asks_for_another_run(setup: Setup) -> None:
    seen = snapshot(setup.config_dir)
    setup.write("sinks.d/upstream.yaml", "type: mqtt\n")
    new = snapshot(setup.config_dir)
    fake = FakeSystemctl(on_daemon_reload=lambda: setup.write("modules.d/late.yaml", MODULE))
    lines = apply_systemd(
        setup.config, plan(seen, new), new, run=fake, seen=new, generator_dir=setup.generator
    )
    assert (setup.run_dir / AGAIN_FILE).exists()  # plantd-reload.path's PathExists=
    assert lines[-1] == "files changed while this ran: applying them next"


def test_a_refused_file_does_not_ask_for_another_run(setup: Setup) -> None:
    # The applied snapshot leaves a refused file out; what was seen on disk has it: no loop.
    old = snapshot(setup.config_dir)
    setup.write("modules.d/broken.yaml", "driver: [\n")
    seen = snapshot(setup.config_dir)
    applied = Snapshot({})
    apply_systemd(
        setup.config,
        plan(old, applied),
        applied,
        run=FakeSystemctl(),
        seen=seen,
        generator_dir=setup.generator,
    )
    assert not (setup.run_dir / AGAIN_FILE).exists()


def test_after_a_boot_a_running_unit_with_an_older_file_is_left_alone(setup: Setup) -> None:
    # No applied snapshot yet (it lives in /run): every file is new to the first reload.
    setup.write("modules.d/pump.yaml", MODULE + ISOLATED)
    setup.write("sinks.d/upstream.yaml", "type: mqtt\n")
    os.utime(setup.config_dir / "modules.d/pump.yaml", (1000, 1000))
    os.utime(setup.config_dir / "sinks.d/upstream.yaml", (1000, 1000))
    pump, sink = "plantd-module@pump.service", "plantd-sink@upstream.service"
    fake = FakeSystemctl({pump: "active", sink: "active"}, started={pump: 2000, sink: 2000})
    lines = setup.apply(Snapshot(), fake)
    assert fake.commands == ["daemon-reload"]
    assert f"{pump}: already running with this file" in lines


def test_after_a_boot_a_running_unit_with_a_newer_file_gets_it(setup: Setup) -> None:
    setup.write("modules.d/pump.yaml", MODULE + ISOLATED)
    setup.write("sinks.d/upstream.yaml", "type: mqtt\n")
    os.utime(setup.config_dir / "modules.d/pump.yaml", (3000, 3000))
    os.utime(setup.config_dir / "sinks.d/upstream.yaml", (3000, 3000))
    pump, sink = "plantd-module@pump.service", "plantd-sink@upstream.service"
    fake = FakeSystemctl({pump: "active", sink: "active"}, started={pump: 2000, sink: 2000})
    setup.apply(Snapshot(), fake)
    assert fake.commands == ["daemon-reload", f"restart {pump}", f"reload-or-restart {sink}"]


def test_after_a_boot_a_unit_that_cannot_say_when_it_started_gets_the_file(setup: Setup) -> None:
    setup.write("sinks.d/upstream.yaml", "type: mqtt\n")
    sink = "plantd-sink@upstream.service"
    fake = FakeSystemctl({sink: "active"})  # `show` prints nothing
    setup.apply(Snapshot(), fake)
    assert fake.commands == ["daemon-reload", f"reload-or-restart {sink}"]


def test_systemd_runs_the_appliance_configuration_when_the_target_is_up(tmp_path: Path) -> None:
    booted = tmp_path / "systemd-system"
    booted.mkdir()
    appliance = PlantdConfig(source_dir=Path("/etc/plantd"))
    for state, manages in [
        ("active", True),
        ("activating", True),
        ("reloading", True),
        ("inactive", False),
        ("deactivating", False),
        ("failed", False),
    ]:
        fake = FakeSystemctl({"plantd.target": state})
        assert systemd_manages(appliance, run=fake, booted=booted) is manages, state


def test_systemd_does_not_run_another_directory_or_without_systemd(tmp_path: Path) -> None:
    booted = tmp_path / "systemd-system"
    booted.mkdir()
    fake = FakeSystemctl({"plantd.target": "active"})
    checkout = PlantdConfig(source_dir=tmp_path / "dev")
    assert systemd_manages(checkout, run=fake, booted=booted) is False
    assert systemd_manages(PlantdConfig(), run=fake, booted=booted) is False  # built-in defaults
    appliance = PlantdConfig(source_dir=Path("/etc/plantd"))
    assert systemd_manages(appliance, run=fake, booted=tmp_path / "absent") is False
