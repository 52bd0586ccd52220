"""One process per sink: an exclusive ``flock`` on ``<queue file>.lock``, held while the queue
is open.

Two copies of one sink would share its queue (each deleting what the other delivered: negative
counts) and its MQTT client id (the broker disconnects one for the other, for ever). The lock
is taken before the queue is opened and released by the kernel when the holder dies, even by
SIGKILL, so a stale lock file is never a problem and is never deleted (deleting it would let a
third copy lock a new file while the second still holds the old one). The holder writes its
pid into the file so that the refusal can name it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from plantd.errors import PlantdError

__all__ = ["ALREADY_RUNNING", "QueueLock", "SinkAlreadyRunning"]

ALREADY_RUNNING = 75
"""Exit status of a second copy (sysexits' EX_TEMPFAIL): not a configuration error (2, which
systemd does not retry), so ``plantd-sink@NAME`` started while a manual ``plant sink run NAME``
holds the queue retries every ``RestartSec`` and takes over once that copy stops."""


class SinkAlreadyRunning(PlantdError):
    """Another process holds the sink's queue (its lock file names the holder's pid)."""

    exit_status = ALREADY_RUNNING

    def __init__(self, lock: Path, holder: str) -> None:
        self.lock = lock
        self.holder = holder
        who = f"pid {holder}" if holder else "another process"
        super().__init__(
            f"this sink is already running ({who} holds {lock}); "
            "stop that copy first (one process per sink)"
        )


class QueueLock:
    """The lock beside the queue file ``queue``; :meth:`release` is idempotent."""

    def __init__(self, queue: Path) -> None:
        self.path = queue.with_name(queue.name + ".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise SinkAlreadyRunning(self.path, holder) from None
        except BaseException:
            os.close(fd)
            raise
        with contextlib.suppress(OSError):  # only for the message; a full disk may refuse it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor releases the flock
