"""``org.plantd.Logger``: searching and following the log store over MDP.

``query``   ``{"since": T, "until": T, "source": S, "level": L, "contains": TEXT,
            "limit": N, "after_id": ID, "before_id": ID}``, every key optional:
            ``{"records": [...], "more": bool}``. Newest first, at most ``limit`` (default
            1000, at most 10,000); page back with the last record's ``id`` as ``before_id``.
            With ``after_id``: oldest first, the records after that id — what ``plant logs
            -f`` polls with the last id it printed. Times are Unix seconds (``since <= time <
            until``); ``source`` is a prefix (``module.``) or a source and those below it
            (``module.boiler``); ``level`` the minimum (``warning``: warning and above);
            ``contains`` text in the message. Each record: ``id``, ``time``, ``source``,
            ``level``, ``logger``, ``message`` and ``fields`` (module, point, unit, code, exc…).
``status``  records held, bytes, oldest and newest time, records pruned, batches lost.

Every operation is ``read`` access (the built-in policy grades ``org.plantd.Logger`` so).
Errors: ``bad-request`` names the parameter.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from plantd.logger._store import level_number, query_records
from plantd.service import (
    Json,
    OperationError,
    Params,
    ServiceDefinition,
    optional_text,
    optional_time,
    param,
)
from plantd.telemetry import LEVELS

__all__ = ["MAX_LIMIT", "SERVICE", "logger_service"]

SERVICE = "org.plantd.Logger"
MAX_LIMIT = 10_000


def _id(params: Params, key: str) -> int | None:
    value: int | None = param(params, key, (int, type(None)), None)
    if value is not None and value < 0:
        raise OperationError("bad-request", f"params.{key}: expected ≥ 0, got {value}")
    return value


def logger_service(
    status: Callable[[], Awaitable[dict[str, Any]]],
    read: Callable[[Callable[..., Any]], Awaitable[Any]],
) -> ServiceDefinition:
    """The service over a store's ``read`` (a job on its reader thread) and a ``status``."""
    definition = ServiceDefinition(
        SERVICE, "Every plantd process's log records: search them, follow them."
    )

    @definition.operation("query", access="read")
    async def _query(params: Params) -> Json:
        """Records matching the filters: newest first, or after ``after_id`` oldest first."""
        since, until = optional_time(params, "since"), optional_time(params, "until")
        limit = param(params, "limit", int, 1000)
        if not 1 <= limit <= MAX_LIMIT:
            raise OperationError(
                "bad-request", f"params.limit: expected 1 to {MAX_LIMIT}, got {limit}"
            )
        level_name = optional_text(params, "level")
        level = None
        if level_name is not None:
            level = level_number(level_name)
            if level is None:
                raise OperationError(
                    "bad-request",
                    f"params.level: expected one of {', '.join(LEVELS)}, got {level_name!r}",
                )
        filters: dict[str, Any] = {
            "since": since,
            "until": until,
            "source": optional_text(params, "source"),
            "level": level,
            "contains": optional_text(params, "contains"),
            "after_id": _id(params, "after_id"),
            "before_id": _id(params, "before_id"),
        }
        found = await read(lambda conn: query_records(conn, limit=limit + 1, **filters))
        return {"records": found[:limit], "more": len(found) > limit}

    @definition.operation("status", access="read")
    async def _status(params: Params) -> Json:
        """Records held, bytes, the oldest and newest time, records pruned and lost."""
        return await status()

    return definition
