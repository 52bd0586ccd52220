"""The size on disk of the SQLite files a kind of store keeps open in this process.

A size gauge is read when the metrics are collected, on the collector's thread, so it looks at
the file system (``os.stat`` of the database and its WAL) and never at an SQLite connection
(connections belong to their threads). Several stores of one kind may be open in one process
(tests): the gauge is their sum, each store joining with :meth:`OpenDatabases.track` when it
opens and leaving with :meth:`OpenDatabases.untrack` when it closes.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from pathlib import Path
from typing import Protocol

from prometheus_client import Gauge

__all__ = ["OpenDatabases", "database_bytes"]


class HasPath(Protocol):
    path: Path


def database_bytes(path: Path) -> int:
    """The bytes ``path`` and its WAL take (0 for a file that is not there)."""
    total = 0
    for name in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(OSError):
            total += os.stat(name).st_size
    return total


class OpenDatabases:
    """The open stores whose files ``gauge`` adds up (it reads them at collection time)."""

    def __init__(self, gauge: Gauge) -> None:
        self._open: weakref.WeakSet[HasPath] = weakref.WeakSet()
        self._lock = threading.Lock()  # collected on another thread than open and close
        gauge.set_function(self.total_bytes)

    def track(self, store: HasPath) -> None:
        """Count ``store``'s database until :meth:`untrack` (or until it is dropped)."""
        with self._lock:
            self._open.add(store)

    def untrack(self, store: HasPath) -> None:
        with self._lock:
            self._open.discard(store)

    def total_bytes(self) -> float:
        with self._lock:
            paths = [store.path for store in self._open]
        return float(sum(database_bytes(path) for path in paths))
