"""`plant sim …` from a shell: serve a file, read where it listens, inject faults through its
control service at the broker; and `plant up` starts a config directory's simulated plant."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from plantd.cli import _up_cmd
from plantd.reconfigure import snapshot
from plantd.testing import ManagedProcess, wait_for_workers
from tests.conftest import Stack

from .conftest import PLANT, ROOT

pytestmark = [pytest.mark.timeout(60)]


def plant(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.slow
def test_sim_run_is_controlled_through_the_broker(stack: Stack, tmp_path: Path) -> None:
    stack.start_broker()
    sim = ManagedProcess.plantd(
        [
            *("plantd.cli", "--config", str(stack.config_dir), "sim", "run", str(PLANT)),
            *("--free-ports", "--json", "--run-dir", str(tmp_path / "run")),
        ],
        name="sim",
        log_dir=stack.log_dir,
    ).start()
    stack.processes.append(sim)
    wait_for_workers(stack.endpoint, "org.plantd.sim.pump-station")
    announced = json.loads(next(line for line in sim.log_text().splitlines() if line[:1] == "{"))
    devices = {d["name"]: d for d in announced["simulators"]["pump-station"]}
    assert devices["field"]["device"] == str(tmp_path / "run" / "ttyFIELD")
    assert Path(devices["field"]["device"]).resolve() == Path(devices["field"]["pty"])
    assert devices["plc"]["port"] not in (0, 15020)  # --free-ports

    listed = plant(stack, "sim", "list")
    assert "pump-station" in listed.stdout
    assert "plc, field, meter" in listed.stdout
    injected = plant(stack, "sim", "inject", "pump-station", "field", "silent", "--unit", "2")
    assert injected.stdout.strip() == "injected silent on field unit 2", injected.stderr
    status = json.loads(plant(stack, "sim", "status", "pump-station", "--json").stdout)
    field = next(d for d in status["devices"] if d["name"] == "field")
    assert field["faults"] == {"2": "silent"}
    assert status["active"] == ["silent on field unit 2"]
    assert plant(stack, "sim", "set", "pump-station", "plc.pump_run", "false").returncode == 0
    values = json.loads(plant(stack, "sim", "get", "pump-station", "plc.pump_run", "--json").stdout)
    assert values == {"plc.pump_run": False}
    refused = plant(stack, "sim", "inject", "pump-station", "plc", "bad-crc")
    assert refused.returncode == 1
    assert "sim.refused" in refused.stderr
    assert "bad-crc needs an RTU framing" in refused.stderr
    assert plant(stack, "sim", "heal", "pump-station").stdout.strip() == "healed every device"

    assert sim.process is not None
    sim.process.send_signal(signal.SIGTERM)
    assert sim.process.wait(timeout=10) == 0
    assert not (tmp_path / "run" / "ttyFIELD").exists()  # the link goes with the simulator


def test_sim_check_names_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "devices:\n  - name: d\n    units:\n      - points:\n          - {name: x, tabel: input}\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "plantd.cli", "sim", "check", str(bad), str(PLANT)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 1
    assert f"{bad}:5: devices[0].units[0].points[0].tabel: unknown key (did you mean 'table'?)" in (
        run.stderr
    )


def test_plant_up_starts_the_demo_plant_and_its_modules() -> None:
    config = ROOT / "config" / "local"
    children = list(_up_cmd._stack(["--config", str(config)], config, snapshot(config)).values())
    names = [child.name for child in children]
    assert names == [
        "broker",
        "sim pump-station",
        "state",
        "logger",
        "historian",
        "echo",
        "modules field meter station",  # one module host for all three
        "control",
        "proxy",
    ]
    sim = children[1].argv
    assert sim[-3:] == ["sim", "run", str(config / "sim.d" / "pump-station.yaml")]
    assert children[-3].argv[-2:] == ["module", "host"]
    hints = _up_cmd._demo_hints(children, ["--config", str(config)])
    assert "module write station speed_setpoint 90" in hints
