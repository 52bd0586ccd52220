"""The ``plant`` command against a running stack: human output and ``--json``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def test_a_longer_timeout_also_waits_longer_for_the_broker(stack: Stack) -> None:
    # A slow device's broker may need more than the default second to answer: --timeout is
    # how long the person will wait, for the broker's presence as for the reply.
    stack.without_broker()
    result = plant(stack, "mmi", "services", "--timeout", "1.5", "--retries", "0")
    assert result.returncode == 3
    assert "(nothing answered within 1.5 s" in result.stderr


def _catches_sigint(pid: int) -> bool:
    """Whether process ``pid`` has a handler installed for SIGINT (SigCgt in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return False


def test_an_interrupt_ends_a_follow_started_with_sigint_ignored(stack: Stack) -> None:
    # A non-interactive shell starts `plant bus tail … &` with SIGINT ignored; kill -INT must
    # still end it, as Ctrl-C does in a terminal.
    stack.start_broker()
    command = [sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir)]
    with subprocess.Popen(
        [*command, "bus", "tail", "data."],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # noqa: PLW1509
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as follow:
        deadline = time.monotonic() + 30
        while not _catches_sigint(follow.pid):
            assert follow.poll() is None, follow.stderr.read() if follow.stderr else ""
            assert time.monotonic() < deadline, "plant never took over SIGINT"
            time.sleep(0.05)
        follow.send_signal(signal.SIGINT)
        try:
            # 0 once it follows; if it came while plant was starting up, 130 (interrupted in
            # the command's setup) or killed by the signal (before the command ran).
            assert follow.wait(timeout=30) in (0, 130, -signal.SIGINT)
        finally:
            follow.kill()
