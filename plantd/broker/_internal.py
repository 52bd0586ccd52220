"""A service the broker process serves itself (``org.plantd.Audit``), as an ordinary MDP worker.

It runs on a thread of its own with its own event loop, so that its database reads never
delay routing, and connects to the broker's inproc endpoint: no handshake, and the broker
knows it as its own principal. Every other rule of MDP applies to it as to any worker.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from plantd.config import WorkerConfig
from plantd.service import ServiceDefinition, dispatch
from plantd.worker import AsyncWorker, Request

__all__ = ["InProcessService"]

log = logging.getLogger(__name__)


class InProcessService:
    """Serve ``definition`` from a thread until :meth:`stop`."""

    def __init__(self, definition: ServiceDefinition, endpoint: str, config: WorkerConfig) -> None:
        async def handle(request: Request) -> list[bytes]:
            return await dispatch(definition, request)

        self.definition = definition
        self._worker = AsyncWorker.from_config(endpoint, definition.name, handle, config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"plantd-{definition.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._worker.stop)
        self._thread.join(timeout)

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._worker.run())
        except Exception:  # the supervisor edge: the broker routes on without this service
            log.exception("%s stopped", self.definition.name)
        finally:
            loop.close()
