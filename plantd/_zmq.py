"""One ZeroMQ context per process, seen by sync and asyncio code alike."""

from __future__ import annotations

import random
from collections.abc import Iterator

import zmq
import zmq.asyncio

__all__ = ["async_context", "backoff_delays", "sync_context"]

_async_context: zmq.asyncio.Context | None = None


def sync_context() -> zmq.Context[zmq.Socket[bytes]]:
    return zmq.Context.instance()


def async_context() -> zmq.asyncio.Context:
    """An asyncio view (shadow) of the process's single context."""
    global _async_context
    base = sync_context()
    if (
        _async_context is None
        or _async_context.closed
        or _async_context.underlying != base.underlying
    ):
        _async_context = zmq.asyncio.Context.shadow(base.underlying)
    return _async_context


def backoff_delays(
    initial: float, maximum: float, rng: random.Random | None = None
) -> Iterator[float]:
    """Capped exponential backoff with full jitter, forever: initial, 2×, 4×, … up to maximum.

    Each delay is drawn uniformly from [d/2, d] so that many peers restarting together spread
    out instead of reconnecting in lockstep.
    """
    rng = rng or random.Random()
    delay = initial
    while True:
        yield rng.uniform(delay / 2, delay)
        delay = min(delay * 2, maximum)
