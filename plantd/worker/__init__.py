"""MDP workers: :class:`AsyncWorker` (asyncio) and :class:`Worker` (blocking, handler thread)."""

from __future__ import annotations

from plantd.worker._async import AsyncHandler, AsyncWorker
from plantd.worker._request import Request
from plantd.worker._sync import SyncHandler, Worker

__all__ = ["AsyncHandler", "AsyncWorker", "Request", "SyncHandler", "Worker"]
