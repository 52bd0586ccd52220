"""The historian's MDP service, ``org.plantd.Historian``: its operations.

``status``   intake and writer counters, the database's size, retention figures.
``query``    ``{"points": GLOB, "since": T, "until": T, "resolution": "raw"|"minute"|"hour",
             "limit": N, "after": NEXT}``: one page of rows (see ``_query.query``); times are
             Unix seconds, ``until`` defaults to now, ``limit`` to 1000 (at most 10,000).
``samples``  ``{"point": NAME, "since": T, "until": T}``: every raw sample of one point in that
             time range, each as its bus payload (base64 of the version-1 sample encoding, so
             values come back exactly, NaN included, with ``epoch`` and ``seq``), after
             committing the batch in hand — what a sink asks for to fill a gap in what it took
             from the bus.

Errors: ``historian.bad-range`` (since after until), ``bad-request`` (a wrong parameter).
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from plantd.bus import encode_sample
from plantd.historian._query import MAX_LIMIT, query, samples_between
from plantd.service import Json, OperationError, Params, ServiceDefinition, param

__all__ = ["SERVICE", "historian_service"]

SERVICE = "org.plantd.Historian"


def historian_service(
    status: Callable[[], Awaitable[dict[str, Any]]],
    read: Callable[[Callable[..., Any]], Awaitable[Any]],
    flush: Callable[[], Awaitable[None]],
) -> ServiceDefinition:
    definition = ServiceDefinition(SERVICE, "The local time-series history of data.* samples.")

    def time_range(params: Params) -> tuple[float, float]:
        since = float(param(params, "since", (int, float), 0.0))
        until = float(param(params, "until", (int, float), time.time()))
        if not (math.isfinite(since) and math.isfinite(until)) or since > until:
            raise OperationError(
                "historian.bad-range", f"since ({since}) must not be after until ({until})"
            )
        return since, until

    @definition.operation("status", access="read")
    async def _status(params: Params) -> Json:
        """Intake and writer counters, database size and retention settings."""
        return await status()

    @definition.operation("query", access="read")
    async def _query(params: Params) -> Json:
        """One page of rows of the points matching ``points`` (a glob) in a time range."""
        pattern = param(params, "points", str)
        since, until = time_range(params)
        resolution = param(params, "resolution", str, "raw")
        if resolution not in ("raw", "minute", "hour"):
            raise OperationError(
                "bad-request",
                f"params.resolution: expected 'raw', 'minute' or 'hour', got {resolution!r}",
            )
        limit = param(params, "limit", int, 1000)
        if not 1 <= limit <= MAX_LIMIT:
            raise OperationError(
                "bad-request", f"params.limit: expected 1 to {MAX_LIMIT}, got {limit}"
            )
        after = param(params, "after", (list, type(None)), None)
        if after is not None and (not after or not isinstance(after[0], str)):
            raise OperationError("bad-request", "params.after: pass back a page's 'next' as is")
        return await read(
            lambda conn: query(
                conn,
                pattern,
                since=since,
                until=until,
                resolution=resolution,
                limit=limit,
                after=after,
            )
        )

    @definition.operation("samples", access="read")
    async def _samples(params: Params) -> Json:
        """Every raw sample of ``point`` in a time range, with epoch and seq (for repair)."""
        name = param(params, "point", str)
        since, until = time_range(params)
        await flush()
        found = await read(lambda conn: samples_between(conn, name, since, until))
        return [base64.b64encode(encode_sample(sample)).decode() for sample in found]

    return definition
