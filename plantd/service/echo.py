"""``org.plantd.module.Echo``: answers what it is sent — the first user of the service layer,
and a handy probe of a running stack.

Operations (also listed by the ``operations`` operation):

``echo``    params are returned as they came; ``delay`` (seconds, 0–60) waits first.
``stream``  sends ``count`` PARTIALs ``{"index": i}`` (``interval`` seconds apart), then a FINAL
            ``{"count": count}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from plantd.service import Json, OperationError, Params, ServiceDefinition, param

__all__ = ["ECHO", "SERVICE_NAME"]

SERVICE_NAME = "org.plantd.module.Echo"
ECHO = ServiceDefinition(SERVICE_NAME, "Answers what it is sent.")

_MAX_DELAY = 60.0
_MAX_STREAM = 10_000


def _seconds(params: Params, key: str) -> float:
    value = float(param(params, key, (int, float), 0))
    if not 0 <= value <= _MAX_DELAY:
        raise OperationError("bad-request", f"params.{key} must be 0-{_MAX_DELAY:g} seconds")
    return value


@ECHO.operation("echo", access="read")
async def _echo(params: Params) -> Json:
    """Return the params as they came; ``delay`` (seconds, up to 60) waits first."""
    delay = _seconds(params, "delay")
    if delay:
        await asyncio.sleep(delay)
    return params


@ECHO.operation("stream", access="read")
async def _stream(params: Params) -> AsyncIterator[Json]:
    """Send ``count`` PARTIALs {"index": i}, ``interval`` s apart, then {"count": count}."""
    count = param(params, "count", int, 3)
    if not 0 <= count <= _MAX_STREAM:
        raise OperationError("bad-request", f"params.count must be 0-{_MAX_STREAM}")
    interval = _seconds(params, "interval")
    for index in range(count):
        yield {"index": index}
        if interval:
            await asyncio.sleep(interval)
    yield {"count": count}
