"""A sink whose queue disk is full keeps a bounded intake in memory, drops (and counts) the
oldest beyond ``queue.max_pending``, stays up, and once space returns commits again and clears
its ``last_error`` (issue 12, item 7; docs/sinks.md "Errors").

The full disk is made as in ``tests/integration/state/test_disk_full.py``: a small tmpfs (root
may mount one here) or ``RLIMIT_FSIZE`` on the sink process (which ignores SIGXFSZ, so the
kernel answers its writes with EFBIG instead of killing it).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from plantd.testing import ManagedProcess, wait_for_workers
from tests.conftest import Stack
from tests.integration.sinks._helpers import (
    Mosquitto,
    counter_module,
    plant_json,
    plant_process,
    start_sink,
    wait_until,
    write_file,
)
from tests.integration.state.test_disk_full import file_limit, small_tmpfs

MAX_PENDING = 500


def sink_file(port: int, queue: Path) -> str:
    return f"""
type: mqtt
reconnect_initial: 200ms
reconnect_max: 500ms
repair: {{enabled: false}}
queue: {{path: {queue}, max_pending: {MAX_PENDING}, commit_interval: 100ms}}
mqtt: {{host: 127.0.0.1, port: {port}, connect_timeout: 2s, ack_timeout: 5s}}
"""


@contextlib.contextmanager
def full_disk(kind: str, disk: Path) -> Iterator[Callable[[ManagedProcess], Callable[[], None]]]:
    """Yields ``arm(sink) -> make_room``: after ``arm``, the queue's next growth fails."""
    if kind == "tmpfs":
        with small_tmpfs(disk) as grow:
            yield lambda sink: grow
    else:
        disk.mkdir(parents=True)
        yield lambda sink: file_limit(sink, disk / "queue.db")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", ["tmpfs", "rlimit"])
def test_a_full_queue_disk_bounds_memory_and_recovers(
    stack: Stack, tmp_path: Path, kind: str
) -> None:
    disk = tmp_path / "disk"
    queue = disk / "queue.db"
    stack.start_broker()
    upstream = Mosquitto(stack.log_dir / "mosquitto")  # down until the disk is full:
    upstream.start()  # it takes its port once, and comes back on it (a restart)
    upstream.stop()
    stack.processes.append(upstream.process)
    with full_disk(kind, disk) as arm:
        write_file(stack, "sinks.d", "edge", sink_file(upstream.port, queue))
        sink = start_sink(stack, "edge")
        make_room = arm(sink)
        write_file(stack, "modules.d", "flow", counter_module(40, "50ms"))
        plant_process(stack, "module-flow", "module", "run", "flow")
        wait_for_workers(stack.endpoint, "org.plantd.module.flow")

        def status() -> Any:
            return plant_json(stack, "sink", "status", "edge")

        # The disk fills: commits fail, the oldest pending samples are dropped and counted.
        # Without a bound nothing is ever dropped and the intake grows for as long as it lasts.
        assert wait_until(lambda: status()["counters"]["dropped"] >= 4 * MAX_PENDING, 90, 1.0)
        failing = status()
        assert failing["last_error"].startswith("queue commit failed (will retry): ")
        assert failing["queue"]["max_pending"] == MAX_PENDING
        # At most max_pending kept, plus what arrived since the last failed commit.
        assert failing["queue"]["pending_commit"] < 2 * MAX_PENDING
        assert sink.running()

        # Space returns and the upstream comes up: commits succeed, the error is gone.
        make_room()
        upstream.start()
        assert wait_until(lambda: status()["last_error"] is None, 30, 0.5)
        assert wait_until(lambda: status()["counters"]["delivered"] > 0, 30, 0.5)
        recovered = status()
        assert recovered["connected"]
        assert "queue commits succeed again" in sink.log_text()
        # A transition, logged once (and named again in the recovery line).
        assert sink.log_text().count("sink edge: queue commit failed") == 1
        assert sink.terminate() == 0
        # The drops reached the persistent counter.
        with sqlite3.connect(f"file:{queue}?mode=ro", uri=True) as db:
            (dropped,) = db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        assert dropped >= recovered["counters"]["dropped"] >= 4 * MAX_PENDING
