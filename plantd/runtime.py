"""Running asyncio services in a process: one root task, orderly stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from typing import Protocol

__all__ = ["Stoppable", "run_until_signal"]

log = logging.getLogger(__name__)


class Stoppable(Protocol):
    async def run(self) -> None: ...

    def stop(self) -> None: ...


async def run_until_signal(services: Sequence[Stoppable]) -> None:
    """Run every service as a child task until SIGTERM/SIGINT, then stop them in order.

    ``stop()`` asks each service to finish what it has in hand (a worker sends DISCONNECT);
    an exception in any child cancels the others and propagates, as TaskGroup does.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with asyncio.TaskGroup() as group:
            for service in services:
                group.create_task(service.run())
            waiter = group.create_task(stop.wait())
            await waiter
            log.info("stopping")
            for service in services:
                service.stop()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
