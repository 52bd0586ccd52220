"""MDP workers: :class:`AsyncWorker` (asyncio) and :class:`Worker` (blocking, handler thread).

Their handlers are :data:`AsyncHandler` and :data:`Handler` (``SyncHandler`` is the old name
of the latter, kept as an alias).
"""

from __future__ import annotations

from plantd.worker._async import AsyncHandler, AsyncWorker
from plantd.worker._request import Request
from plantd.worker._sync import Handler, SyncHandler, Worker

__all__ = ["AsyncHandler", "AsyncWorker", "Handler", "Request", "SyncHandler", "Worker"]
