"""Two copies of one sink (issue 12, item 8): the second, through either door (``plant sink
run`` or ``plantd-sink``), exits 75 with a message naming the running one, which goes on
serving undisturbed; once the first is killed with SIGKILL, a new copy starts."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import Stack
from tests.integration.sinks._helpers import plant_json, start_sink, wait_until, write_file

SINK = """
type: mqtt
reconnect_max: 1s
repair: {enabled: false}
mqtt: {host: 127.0.0.1, port: 9, connect_timeout: 1s}
"""


def second_copy(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv], capture_output=True, text=True, timeout=60, check=False
    )


def test_a_second_copy_of_a_sink_is_refused(stack: Stack) -> None:
    stack.start_broker()
    write_file(stack, "sinks.d", "edge", SINK)
    first = start_sink(stack, "edge")
    lock = stack.settings["paths"]["data"] + "/sinks/edge.queue.db.lock"
    config = str(stack.config_dir)
    for argv in (
        ("plantd.cli", "--config", config, "sink", "run", "edge"),
        ("plantd.sinks", "--config", config, "edge"),
    ):
        done = second_copy(*argv)
        assert done.returncode == 75, done.stderr
        assert f"sink edge: this sink is already running (pid {first.pid} holds {lock})" in (
            done.stderr
        )
        assert "Traceback" not in done.stderr
    assert first.running()
    status = plant_json(stack, "sink", "status", "edge")
    assert status["queue"]["entries"] >= 0
    first.kill()  # SIGKILL: the kernel releases the lock
    again = start_sink(stack, "edge")
    assert wait_until(lambda: plant_json(stack, "sink", "status", "edge")["sink"] == "edge", 10)
    assert again.terminate() == 0
