"""A real appliance stack behind a real ``plantd-proxy``, for the proxy's end-to-end tests.

``proxy_stack`` (one per test module: starting it costs a few seconds) runs, from one CURVE
config directory: the broker; the pump station simulator (``plant sim run``, its Modbus ports
chosen by the system); the state service, the historian and the logger; the ``station``
module (the demo's PLC module, pointed at the simulator's port) in the module host;
``plantd-control`` with the alarms, calculation, loop and interlock of :data:`CONTROL_PLAN`
(on the station's points; the loop starts in manual, so nothing writes the PLC unasked); and
``plantd-proxy`` on port 0, its URL read back from its endpoints file. Three people are
admitted with web passwords: ``user.ada`` (admin), ``user.otto`` (operator) and
``user.vera`` (viewer). Everything is waited for by what it says, never by sleeping.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from plantd.config import load_config
from plantd.proxy._server import read_endpoints
from plantd.security import use_identity, user_identity
from plantd.testing import ManagedProcess, wait_for_workers
from plantd.testing._processes import make_keys
from tests.conftest import Stack, make_stack
from tests.integration.observability.conftest import until

ROOT = Path(__file__).resolve().parents[3]
PLANT = ROOT / "hil" / "plants" / "pump-station.yaml"
STATION = ROOT / "config" / "local" / "modules.d" / "station.yaml"

# plantd-control's files (config dir/<kind>.d/test.yaml), on the station module's points. The
# speed setpoint alarm is raised by `plant sim set pump-station plc.speed_setpoint 90`.
CONTROL_PLAN = {
    "alarms": """\
alarms:
  - name: speed-setpoint-high
    point: station.speed_setpoint
    type: high
    limit: 80
    deadband: 1
    priority: high
    message: Speed setpoint above 80 %
  - name: motor-current-high
    point: station.motor_current
    type: high
    limit: 1000
    priority: urgent
    message: Motor current far too high
""",
    "calc": """\
calc:
  - name: speed_half
    expr: "station.pump_speed / 2"
    unit: "%"
    period: 1s
""",
    "control": """\
loops:
  - name: speed
    measurement: station.pump_speed
    output: station.speed_setpoint
    setpoint: 50
    period: 1s
    kp: 0.5
    ti: 10s
    action: reverse
    output_min: 0
    output_max: 100
    mode: manual
    stale_after: 10s
    on_failure: hold
interlocks:
  - name: speed-limit
    when: "station.speed_setpoint > 99"
    output: station.alarm_reset
    safe_value: false
    reset: manual
""",
}


PEOPLE = {
    "user.ada": ("admin", "ada-correct-horse-1"),
    "user.otto": ("operator", "otto-battery-staple-2"),
    "user.vera": ("viewer", "vera-tr0ub4dor-and-3"),
}


@dataclass
class ProxyStack:
    stack: Stack
    url: str
    sim_control: str  # the simulator's MDP service (org.plantd.sim.pump-station)

    def plant(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``plant --config DIR ARGS`` as the stack's own admin (the test's login)."""
        return subprocess.run(
            [sys.executable, "-m", "plantd.cli", "--config", str(self.stack.config_dir), *args],
            capture_output=True,
            text=True,
            timeout=60,
            input=stdin,
            check=False,
        )

    def client(self, principal: str | None = None) -> httpx.Client:
        """An HTTP client at the proxy, logged in as ``principal`` (None: nobody)."""
        client = httpx.Client(base_url=self.url, timeout=10.0)
        if principal is not None:
            login(client, principal)
        return client

    def sim_value(self, name: str) -> Any:
        """A simulated device's value (``plc.speed_setpoint``), read from the simulator."""
        done = self.plant("sim", "get", "pump-station", name, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)[name]


def login(client: httpx.Client, principal: str) -> dict[str, Any]:
    """Log ``client`` in; keeps the session cookie and sends the CSRF token from then on."""
    _, password = PEOPLE[principal]
    answer = client.post("/api/v1/login", json={"user": principal, "password": password})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    client.headers["X-CSRF-Token"] = body["csrf"]
    return body


def start(stack: Stack, name: str, *argv: str) -> ManagedProcess:
    process = ManagedProcess.plantd(list(argv), name=name, log_dir=stack.log_dir).start()
    stack.processes.append(process)
    return process


def start_proxy(stack: Stack) -> tuple[ManagedProcess, str]:
    """``plantd-proxy`` from the stack's config, and the URL it recorded once serving."""
    process = start(stack, "proxy", "plantd.proxy", "--config", str(stack.config_dir))
    config = load_config(stack.config_dir)

    def serving() -> str | None:
        if not process.running():
            raise AssertionError(f"plantd-proxy exited:\n{process.log_text()[-3000:]}")
        record = config.paths.run / "proxy-endpoints.json"
        try:
            pid = json.loads(record.read_text()).get("pid")
        except (OSError, ValueError):
            return None
        return read_endpoints(config) if pid == process.pid else None

    return process, until(serving, "plantd-proxy records its URL", 30.0)


def start_sim(stack: Stack, run_dir: Path) -> dict[str, Any]:
    """The pump station simulator on ports the system picks; its announcement (JSON)."""
    sim = start(
        stack,
        "sim",
        *("plantd.cli", "--config", str(stack.config_dir), "sim", "run", str(PLANT)),
        *("--free-ports", "--json", "--run-dir", str(run_dir)),
    )
    wait_for_workers(stack.endpoint, "org.plantd.sim.pump-station")
    line = until(
        lambda: next((ln for ln in sim.log_text().splitlines() if ln[:1] == "{"), None),
        "the simulator announces its devices",
    )
    announced: dict[str, Any] = json.loads(line)
    return announced


def write_station(stack: Stack, port: int) -> None:
    """The demo's PLC module, pointed at the simulator's PLC port, polling every 200 ms."""
    text = STATION.read_text()
    text = re.sub(r"port: 15020", f"port: {port}", text)
    text = text.replace("interval: 500ms", "interval: 200ms")
    modules = stack.config_dir / "modules.d"
    modules.mkdir(exist_ok=True)
    (modules / "station.yaml").write_text(text)


def write_control_plan(stack: Stack) -> None:
    for kind, text in CONTROL_PLAN.items():
        folder = stack.config_dir / f"{kind}.d"
        folder.mkdir(exist_ok=True)
        (folder / "test.yaml").write_text(text)


def set_passwords(stack: Stack) -> None:
    for principal, (role, password) in PEOPLE.items():
        stack.credentials(principal, (role,))
        done = subprocess.run(
            [
                *(sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir)),
                *("proxy", "passwd", principal, "--password-stdin"),
            ],
            input=password + "\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def proxy_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyStack]:
    base = tmp_path_factory.mktemp("proxy")
    stack = make_stack(
        base,
        security={"mode": "curve"},
        proxy={"listen": "127.0.0.1:0"},
        historian={"batch_interval": "100ms"},
    )
    config = load_config(stack.config_dir)
    use_identity(user_identity(config, {}))
    try:
        stack.start_broker()
        announced = start_sim(stack, base / "sim-run")
        plc = next(d for d in announced["simulators"]["pump-station"] if d["name"] == "plc")
        write_station(stack, int(plc["port"]))
        make_keys(stack.config_dir)  # module.station's key, now that its file is there
        config_dir = str(stack.config_dir)
        start(stack, "state", "plantd.state", "--config", config_dir)
        start(stack, "historian", "plantd.historian", "--config", config_dir)
        start(stack, "logger", "plantd.logger", "--config", config_dir)
        start(stack, "modules", "plantd.cli", "--config", config_dir, "module", "host")
        write_control_plan(stack)
        start(stack, "control", "plantd.control", "--config", config_dir)
        services = ("org.plantd.State", "org.plantd.Historian", "org.plantd.Logger")
        for service in (*services, "org.plantd.Alarms", "org.plantd.Control"):
            wait_for_workers(stack.endpoint, service)
        wait_for_workers(stack.endpoint, "org.plantd.module.station")
        set_passwords(stack)
        _, url = start_proxy(stack)
        yield ProxyStack(stack, url, "org.plantd.sim.pump-station")
    except BaseException:
        print(stack.logs())
        raise
    finally:
        use_identity(None)
        for process in stack.processes:
            process.kill()
