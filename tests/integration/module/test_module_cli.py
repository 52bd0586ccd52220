"""``plant module run|status|read|write`` and ``plant bus tail`` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from plantd.testing import ManagedProcess, wait_for_workers
from tests.conftest import Stack
from tests.integration.module.test_runtime import write_module

PUMP = """
driver: fake
description: a pump that exists only in tests
groups:
  - name: main
    interval: 100ms
    points:
      - {name: flow, value: 3.5}
      - {name: speed, value: 0, writable: true, maximum: 1500}
      - {name: pulses, value: 0, pattern: counter}
"""


def plant(stack: Stack, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_module_run_from_the_cli(stack: Stack) -> None:
    stack.start_broker()
    write_module(stack, PUMP, name="pump1")
    module = ManagedProcess.plantd(
        ["plantd.cli", "--config", str(stack.config_dir), "module", "run", "pump1"],
        name="module-pump1",
        log_dir=stack.log_dir,
    ).start()
    stack.processes.append(module)
    wait_for_workers(stack.endpoint, "org.plantd.module.pump1")

    deadline = time.monotonic() + 10
    while True:
        status = plant(stack, "module", "status", "pump1")
        assert status.returncode == 0, status.stderr
        if "connection  connected" in status.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert "connection  connected" in status.stdout

    tail = plant(stack, "bus", "tail", "data.pump1.*s", "--count", "2", "--json")
    lines = [json.loads(line) for line in tail.stdout.splitlines()]
    assert {line["topic"] for line in lines} <= {"data.pump1.pulses"}
    assert len(lines) == 2
    assert lines[1]["seq"] == lines[0]["seq"] + 1

    written = plant(stack, "module", "write", "pump1", "speed", "1200")
    assert (written.returncode, written.stdout.strip()) == (0, "wrote 1200 to pump1.speed")
    refused = plant(stack, "module", "write", "pump1", "speed", "9000")
    assert refused.returncode == 1
    assert "module.bad-value" in refused.stderr
    assert "above the maximum 1500" in refused.stderr

    read = plant(stack, "module", "read", "pump1", "speed", "flow", "--json")
    values = json.loads(read.stdout)
    assert values["speed"]["value"] == 1200
    assert values["flow"] == {**values["flow"], "value": 3.5, "quality": "good"}

    assert module.terminate() == 0  # SIGTERM: orderly stop
    assert "org.plantd.module.pump1" not in plant(stack, "mmi", "services").stdout


def test_a_bad_module_file_is_named(stack: Stack) -> None:
    write_module(stack, "driver: fake\ngroups:\n  - name: g\n    intervall: 1s\n", name="broken")
    result = plant(stack, "module", "run", "broken")
    assert result.returncode == 2  # as the services: systemd will not retry it
    assert "broken.yaml:4: groups[0].intervall: unknown key (did you mean 'interval'?)" in (
        result.stderr
    )
    write_module(stack, "driver: nosuch\n", name="nodriver")
    result = plant(stack, "module", "run", "nodriver")
    assert "no driver named 'nosuch'" in result.stderr


def test_config_check_reads_module_files_with_their_drivers_schema(stack: Stack) -> None:
    write_module(stack, PUMP, name="good")
    assert plant(stack, "config", "check").returncode == 0
    write_module(stack, PUMP.replace("value: 3.5", "value: [3.5]"), name="bad")
    result = plant(stack, "config", "check")
    assert result.returncode == 1
    assert "bad.yaml:8: groups[0].points[0].value: expected a number or an integer" in result.stderr
