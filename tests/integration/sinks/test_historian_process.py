"""The historian process: kill -9 in the middle of batching loses at most the documented
window (``batch_interval`` plus one commit); ``plant history`` reads what is stored."""

from __future__ import annotations

import csv
import io
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plantd.testing import wait_for_workers
from tests.conftest import Stack
from tests.integration.sinks._helpers import (
    BusRecorder,
    counter_module,
    plant_json,
    plant_process,
    start_historian,
    write_file,
)

BATCH_INTERVAL = 1.0
COMMIT_SLACK = 0.5  # one commit (an fsync) on a busy 2-core machine, generously


def stored(path: Path) -> set[tuple[str, int]]:
    conn = sqlite3.connect(path)
    try:
        return {
            (str(name), int(seq))
            for name, seq in conn.execute(
                "SELECT p.name, s.seq FROM every_sample s JOIN points p ON p.id = s.point"
            )
        }
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.stack(historian={"batch_interval": BATCH_INTERVAL, "status_interval": 0.5})
def test_kill_9_loses_at_most_one_batch_interval(stack: Stack) -> None:
    stack.start_broker()
    recorder = BusRecorder(stack.settings["bus"]["backend"])
    try:
        historian = start_historian(stack)
        write_file(stack, "modules.d", "flow", counter_module(10))
        plant_process(stack, "module-flow", "module", "run", "flow")
        wait_for_workers(stack.endpoint, "org.plantd.module.flow")
        time.sleep(3 + random.random() * BATCH_INTERVAL)  # anywhere in a batch
        killed_at = time.time()
        historian.kill()
        database = Path(stack.settings["paths"]["data"]) / "history.db"
        lost = {key: recorder.arrived[key] for key in recorder.keys() - stored(database)}
        arrived_before = {k: t for k, t in recorder.arrived.items() if t < killed_at}
        assert len(arrived_before) > 250
        window = BATCH_INTERVAL + COMMIT_SLACK
        too_old = {k: killed_at - t for k, t in lost.items() if t < killed_at - window}
        print(f"{len(arrived_before)} samples before the kill, {len(lost)} not stored")
        assert too_old == {}, f"lost samples older than the window: {sorted(too_old.items())[:5]}"

        # The historian comes back on the same file and goes on storing.
        start_historian(stack)
        before = len(stored(database))
        time.sleep(2 * BATCH_INTERVAL + 0.5)
        assert len(stored(database)) > before
        status = plant_json(stack, "historian", "status")
        assert status["stored"] > 0
        assert status["points"] == 10
        done = subprocess.run(
            [sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir),
             "history", "flow.p0*", "--since", "1m", "--csv"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        table = list(csv.reader(io.StringIO(done.stdout)))
        assert table[0] == ["point", "timestamp", "value", "quality", "epoch", "seq"]
        assert {row[0] for row in table[1:]} == {f"flow.p{i:02d}" for i in range(10)}
        rollups = subprocess.run(
            [sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir),
             "history", "flow.p00", "--since", "1h", "--resolution", "minute", "--json"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert rollups.returncode == 0, rollups.stderr
        assert '"columns"' in rollups.stdout
    finally:
        recorder.close()
