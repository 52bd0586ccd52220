"""How a write's outcome reaches whoever waits for it.

A :class:`Job` is a queued write and its waiter: a thread (a ``concurrent.futures.Future``) or an
event loop (an ``asyncio.Future``). The writer thread collects a commit group's outcomes in
:class:`Outcomes` and delivers them once the group is decided: thread futures directly, asyncio
futures through *one* ``call_soon_threadsafe`` per loop and group, so a group of 20 writes wakes
the event loop once, not 20 times.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections import defaultdict

from plantd.service import Json
from plantd.state._writes import Write

__all__ = ["Job", "Outcomes"]


class Job:
    """``write``, waited for by a thread (``future``) or by ``loop`` (``loop_future``)."""

    __slots__ = ("future", "loop", "loop_future", "write")

    def __init__(self, write: Write, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.write = write
        self.loop = loop
        self.future: concurrent.futures.Future[Json] | None = None
        self.loop_future: asyncio.Future[Json] | None = None
        if loop is None:
            self.future = concurrent.futures.Future()
        else:
            self.loop_future = loop.create_future()

    def start(self) -> bool:
        """False if a thread's caller cancelled before the write was applied (skip it).

        A loop's caller may give up at any time; its write is applied all the same (the
        documented rule for a write that was not answered: it may or may not be applied).
        """
        return self.future is None or self.future.set_running_or_notify_cancel()


def _settle(items: list[tuple[asyncio.Future[Json], Json, BaseException | None]]) -> None:
    """On the loop: resolve every future of one group (skipping callers that gave up)."""
    for future, result, error in items:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class Outcomes:
    """A group's results and errors, delivered together by :meth:`deliver`."""

    def __init__(self) -> None:
        self._decided: set[int] = set()
        self._by_loop: dict[
            asyncio.AbstractEventLoop,
            list[tuple[asyncio.Future[Json], Json, BaseException | None]],
        ] = defaultdict(list)
        self._threads: list[tuple[concurrent.futures.Future[Json], Json, BaseException | None]] = []

    def ok(self, job: Job, result: Json) -> None:
        self._add(job, result, None)

    def fail(self, job: Job, error: BaseException) -> None:
        self._add(job, None, error)

    def decided(self, job: Job) -> bool:
        return id(job) in self._decided

    def _add(self, job: Job, result: Json, error: BaseException | None) -> None:
        self._decided.add(id(job))
        if job.loop is not None and job.loop_future is not None:
            self._by_loop[job.loop].append((job.loop_future, result, error))
        elif job.future is not None:
            self._threads.append((job.future, result, error))

    def deliver(self) -> None:
        for future, result, error in self._threads:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
        for loop, items in self._by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, items)
