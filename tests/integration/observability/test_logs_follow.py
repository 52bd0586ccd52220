"""``plant logs -f`` shows a module's connection error as it happens: a broker and
``plantd-logger`` as real processes, a follower filtered to ``module.meter`` at warning and
above, then a Modbus module whose device refuses connections. The follower prints the
module's record naming the module and the error; how long after the record's own time it
arrived is printed (measured by the benchmark, not bounded here)."""

from __future__ import annotations

import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

import pytest

from tests.conftest import Stack
from tests.integration.observability.conftest import start_logger, start_module, write_module

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

METER = """
driver: modbus
connection:
  host: 127.0.0.1
  port: {port}
  timeout: 500ms
groups:
  - name: main
    interval: 1s
    unit: 1
    table: holding
    points:
      - {{name: energy, address: 0, type: uint32}}
"""

Line = tuple[float, str]  # (when it arrived, wall clock; the line)


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port where connect() is refused: bound (nobody else gets it) but not
    listening, for as long as the test runs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()


def read_lines(stream: IO[str], into: queue.Queue[Line | None]) -> None:
    """Each line of ``stream`` with the time it arrived; None at the end."""
    for line in iter(stream.readline, ""):
        into.put((time.time(), line.rstrip("\n")))
    into.put(None)


def next_record(
    lines: queue.Queue[Line | None], deadline: float, seen: list[str]
) -> tuple[float, dict[str, Any]] | None:
    """The next JSON record the follower prints before ``deadline`` (None: none came)."""
    while (left := deadline - time.monotonic()) > 0:
        try:
            item = lines.get(timeout=left)
        except queue.Empty:
            return None
        if item is None:
            return None  # the follower ended
        arrived, line = item
        seen.append(line)
        return arrived, json.loads(line)
    return None


@pytest.mark.stack(logger={"batch_interval": 0.05, "listen": ""})
def test_the_follower_shows_a_modules_connection_error(stack: Stack, refused_port: int) -> None:
    stack.start_broker()
    start_logger(stack)
    command = [sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir), "logs",
               "-f", "--service", "module.meter", "--level", "warning", "--json"]  # fmt: skip
    errors = stack.log_dir / "follow.err"
    lines: queue.Queue[Line | None] = queue.Queue()
    seen: list[str] = []
    with (
        errors.open("w") as stderr,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True) as follow,
    ):
        assert follow.stdout is not None
        reader = threading.Thread(target=read_lines, args=(follow.stdout, lines), daemon=True)
        reader.start()
        try:
            write_module(stack, "meter", METER.format(port=refused_port))
            module = start_module(stack, "meter")
            deadline = time.monotonic() + 15
            while (got := next_record(lines, deadline, seen)) is not None:
                arrived, record = got
                if "unavailable" in record["message"]:
                    break
            else:
                raise AssertionError(
                    f"no connection error from module.meter within 15 s; the follower printed "
                    f"{seen}, its stderr: {errors.read_text()!r}\n--- module ---\n"
                    f"{module.log_text()[-3000:]}"
                )
        finally:
            follow.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                code = follow.wait(timeout=20)
            finally:
                follow.kill()  # else leaving the `with` would wait for it for ever
            reader.join(timeout=20)
    assert code == 0, errors.read_text()
    assert record["source"] == "module.meter"
    assert record["level"] == "warning"
    assert "module meter" in record["message"]
    assert "refused" in record["message"].lower(), record
    assert record["fields"]["module"] == "meter"  # a field, to filter on, not only prose
    # Every line the follower printed passed its filters.
    assert {(r["source"], r["level"]) for r in map(json.loads, seen)} <= {
        ("module.meter", "warning"), ("module.meter", "error"), ("module.meter", "critical")
    }  # fmt: skip
    latency = arrived - float(record["time"])
    print(f"plant logs -f: {record['message']!r} arrived {latency * 1000:.0f} ms after its time")
