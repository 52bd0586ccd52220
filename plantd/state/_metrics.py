"""The state service's metrics, in :data:`plantd.telemetry.REGISTRY` (docs/observability.md).

What is observed is what costs: a request (one count per request, by operation) and a group
commit (one observation of its duration and of its size per commit, not per write). The
database's size is read at collection time over every open store
(:class:`plantd.telemetry.OpenDatabases`; a store calls :func:`track` when it opens and
:func:`untrack` when it closes).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

from prometheus_client import Counter, Gauge, Histogram

from plantd.service import Json, Params
from plantd.telemetry import REGISTRY, OpenDatabases, database_bytes

__all__ = [
    "COMMIT_SECONDS",
    "DATABASE_BYTES",
    "GROUP_COMMIT_SIZE",
    "OPERATIONS",
    "counted",
    "database_bytes",
    "track",
    "untrack",
]

OPERATIONS = Counter(
    "plantd_state_operations",
    "Requests to org.plantd.State, by operation (refused ones too).",
    ["operation"],
    registry=REGISTRY,
)
# From a tmpfs (tens of microseconds) to an SD card's worst fsyncs (seconds).
COMMIT_SECONDS = Histogram(
    "plantd_state_commit_seconds",
    "Duration of one group commit: its transaction, the fsync, and the generation marker.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
GROUP_COMMIT_SIZE = Histogram(
    "plantd_state_group_commit_size",
    "Writes acknowledged by one group commit.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
    registry=REGISTRY,
)
DATABASE_BYTES = Gauge(
    "plantd_state_database_bytes",
    "Size of the state database on disk: the file and its WAL (every open store).",
    registry=REGISTRY,
)


# Read at collection time, summed over every open store (plantd.telemetry's OpenDatabases).
_databases = OpenDatabases(DATABASE_BYTES)
track = _databases.track  # when a store opens
untrack = _databases.untrack  # when it closes


def counted(operation: str, func: Callable[[Params], Any]) -> Callable[[Params], Any]:
    """``func`` (an operation's handler, plain or streaming) counting its calls in
    :data:`OPERATIONS` under ``operation``: one increment of a series looked up once, here
    (which also shows the series, at 0, before the first call). Only the service's declared
    operations are wrapped, so the label's values are those names and no others."""
    increment = OPERATIONS.labels(operation).inc
    if inspect.isasyncgenfunction(func):
        stream = cast(Callable[[Params], AsyncIterator[Json]], func)

        @functools.wraps(func)
        async def streaming(params: Params) -> AsyncIterator[Json]:
            increment()
            async for item in stream(params):
                yield item

        return streaming
    call = cast(Callable[[Params], Awaitable[Json]], func)

    @functools.wraps(func)
    async def plain(params: Params) -> Json:
        increment()
        return await call(params)

    return plain
