"""One thread that owns one SQLite connection (docs/architecture.md, "Storage": "one thread
owns each SQLite connection"); every use of the connection is a job run on that thread, in
submission order.

    db = DatabaseThread("plantd-historian-writer", lambda: connect(path))
    rows = await db.run(lambda conn: conn.execute("SELECT …").fetchall())   # from asyncio
    db.call(lambda conn: conn.execute("…"))                                  # blocking
    db.close()

The connection is opened on the thread itself, so sqlite3's same-thread check guards it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["DatabaseThread"]

T = TypeVar("T")


class DatabaseThread:
    def __init__(self, name: str, opener: Callable[[], sqlite3.Connection]) -> None:
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._closed = False
        try:
            self._conn = self._executor.submit(opener).result()
        except BaseException:
            self._executor.shutdown(wait=True)
            raise

    def submit(self, job: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """Queue ``job(connection)`` on the owning thread."""
        if self._closed:
            raise RuntimeError(f"{self.name}: the database is closed")
        conn = self._conn
        return self._executor.submit(job, conn)

    def call(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``job`` on the owning thread and wait for its result (blocks the caller)."""
        return self.submit(job).result()

    async def run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``job`` on the owning thread without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(job))

    def close(self) -> None:
        """Finish the queued jobs, close the connection, end the thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._executor.submit(self._conn.close).result()
        self._executor.shutdown(wait=True)
