"""``plant … | head``: when the reader of plant's stdout goes away, plant ends quietly with the
status a shell expects of a process SIGPIPE ended (141), not with a BrokenPipeError traceback.

The reader is gone before plant writes (the pipe's read end is closed at the start), which is
what ``head`` does after its lines, without depending on who is faster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Stack

ROOT = Path(__file__).resolve().parents[2]
SIGPIPE_STATUS = 141


def run_into_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "plantd.cli", *args],
            check=False,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [
        ("sim", "check", "hil/plants/pump-station.yaml"),
        ("sim", "from-module", "examples/modules.d/energy-meter.yaml"),
        ("--json", "sim", "check", "hil/plants/pump-station.yaml"),
    ],
)
def test_a_reader_gone_ends_plant_quietly(args: tuple[str, ...]) -> None:
    run = run_into_closed_pipe(*args)
    assert "Traceback" not in run.stderr  # before: BrokenPipeError: [Errno 32] Broken pipe
    assert run.stderr == ""
    assert run.returncode == SIGPIPE_STATUS


def test_a_request_command_into_a_closed_pipe(stack: Stack) -> None:
    stack.start_broker()
    run = run_into_closed_pipe("--config", str(stack.config_dir), "mmi", "services")
    assert "Traceback" not in run.stderr
    assert run.returncode == SIGPIPE_STATUS


def test_output_to_a_reader_is_unchanged() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "plantd.cli", "sim", "check", "hil/plants/pump-station.yaml"],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert run.returncode == 0
    assert run.stdout.startswith("hil/plants/pump-station.yaml: ok")


def test_a_service_logging_into_a_closed_pipe_stops_in_order(stack: Stack) -> None:
    """``plant serve echo | head -1``: its log records go to stdout. Once the reader is gone it
    stops as if told to (SIGTERM: an orderly stop), instead of running on with a "Logging
    error" traceback for every record (before: it never ended, and the run timed out)."""
    stack.start_broker()
    run = run_into_closed_pipe("--config", str(stack.config_dir), "serve", "echo")
    assert "Logging error" not in run.stderr
    assert "Traceback" not in run.stderr
    assert run.returncode in (0, -15, 143)  # stopped in order, or by the signal itself
