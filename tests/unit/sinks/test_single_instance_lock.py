"""One process per sink queue (plantd/sinks/_lock.py): a second opener is refused with the
holder's pid, and the lock goes with its holder, also when it is killed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from plantd.sinks import ALREADY_RUNNING, DiskQueue, SinkAlreadyRunning


def open_queue(path: Path) -> DiskQueue:
    return DiskQueue(path, max_bytes=10**6, max_age=3600)


def test_a_second_opener_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    first = open_queue(path)
    try:
        with pytest.raises(SinkAlreadyRunning) as refused:
            open_queue(path)
        assert refused.value.exit_status == ALREADY_RUNNING == 75
        assert refused.value.holder == str(os.getpid())
        assert f"pid {os.getpid()} holds {path}.lock" in str(refused.value)
    finally:
        first.close()
    open_queue(path).close()  # released with close()


def test_the_lock_dies_with_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from plantd.sinks import DiskQueue; "
         f"DiskQueue(__import__('pathlib').Path({str(path)!r}), max_bytes=10**6, max_age=60); "
         "print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(SinkAlreadyRunning, match=f"pid {holder.pid} holds"):
            open_queue(path)
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    open_queue(path).close()  # SIGKILL released it: the stale file is no obstacle
