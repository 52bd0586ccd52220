"""The ``plant`` command against a running stack: human output and ``--json``."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import Stack


def plant(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_echo_call_and_mmi(stack: Stack) -> None:
    stack.start_broker()
    stack.start_echo()
    result = plant(stack, "echo", "hello plant")
    assert (result.returncode, result.stdout) == (0, "hello plant\n")

    result = plant(stack, "call", "org.plantd.module.Echo", "echo", '{"a": [1, 2]}', "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"ok": True, "result": {"a": [1, 2]}}

    result = plant(stack, "call", "org.plantd.module.Echo", "stream", '{"count": 2}')
    assert result.returncode == 0
    assert '"index": 1' in result.stdout
    assert '"count": 2' in result.stdout

    result = plant(stack, "mmi", "services")
    assert result.stdout.split() == ["org.plantd.module.Echo"]
    result = plant(stack, "mmi", "workers", "--json")
    assert json.loads(result.stdout)["org.plantd.module.Echo"] == {
        "idle": 1,
        "busy": 0,
        "queued": 0,
    }
    result = plant(stack, "--json", "mmi", "broker")
    assert json.loads(result.stdout)["workers"] == 1
    assert plant(stack, "mmi", "service", "org.plantd.module.Echo").returncode == 0
    missing = plant(stack, "mmi", "service", "nobody")
    assert (missing.returncode, missing.stdout.strip()) == (1, "404 not found: nobody")


def test_errors_are_clear_and_exit_nonzero(stack: Stack) -> None:
    stack.start_broker()
    stack.start_echo()
    result = plant(stack, "call", "org.plantd.module.Echo", "nope")
    assert result.returncode == 1
    assert "unknown-operation" in result.stderr
    result = plant(stack, "call", "org.plantd.module.Echo", "echo", "[1]")
    assert result.returncode == 1
    assert "params must be a JSON object" in result.stderr
    result = plant(
        stack, "call", "org.plantd.module.Echo", "echo", "{}", "--json", "--retries", "0"
    )
    assert json.loads(result.stdout)["ok"] is True


def test_no_broker_is_a_timeout_not_a_hang(stack: Stack) -> None:
    stack.without_broker()
    result = plant(stack, "mmi", "broker", "--timeout", "0.2", "--retries", "1")
    assert result.returncode == 3  # NoBroker: docs/errors.md
    assert f"no broker at {stack.endpoint} (nothing answered within 0.2 s" in result.stderr
