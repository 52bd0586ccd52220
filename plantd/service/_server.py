"""Serving a :class:`ServiceDefinition` as an MDP worker."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable
from typing import cast

from plantd.config import PlantdConfig
from plantd.security import Credentials
from plantd.service._codec import BadRequest, Json, decode_call, encode_error, encode_ok
from plantd.service._definition import OperationError, ServiceDefinition, _caller
from plantd.worker import AsyncWorker, Request

__all__ = ["ServiceWorker", "dispatch"]

log = logging.getLogger(__name__)


async def dispatch(definition: ServiceDefinition, request: Request) -> list[bytes]:
    """Run the operation a request names; every failure becomes an error reply."""
    try:
        operation_name, params = decode_call(request.body)
    except BadRequest as exc:
        return encode_error("bad-request", str(exc))
    if operation_name == "operations":
        return encode_ok(definition.describe())
    operation = definition.operations.get(operation_name)
    if operation is None:
        known = ", ".join(sorted([*definition.operations, "operations"]))
        return encode_error(
            "unknown-operation",
            f"{definition.name} has no operation {operation_name!r} (it has: {known})",
        )
    _caller.set(request.principal)  # this handler's task has a context of its own
    try:
        if not operation.streaming:
            return encode_ok(await cast(Awaitable[Json], operation.func(params)))
        last: Json = None
        first = True
        async for item in cast(AsyncIterator[Json], operation.func(params)):
            if not first:
                request.send_partial(*encode_ok(last))
            last, first = item, False
        return encode_ok(last)
    except OperationError as exc:
        return encode_error(exc.code, exc.message)
    except Exception as exc:
        # Supervisor edge: an operation bug is answered and logged, the worker lives on.
        log.exception("%s %s failed", definition.name, operation_name)
        return encode_error("internal", f"{type(exc).__name__}: {exc}")


class ServiceWorker(AsyncWorker):
    """An :class:`AsyncWorker` that answers a service definition's operations.

    ``credentials``: the key it registers with (default: the process's identity); a process
    that hosts several principals (``plant module host``) gives each worker its own.
    """

    def __init__(
        self,
        definition: ServiceDefinition,
        config: PlantdConfig,
        *,
        credentials: Credentials | None = None,
    ) -> None:
        worker = config.worker

        async def handle(request: Request) -> list[bytes]:
            return await dispatch(definition, request)

        super().__init__(
            config.broker.endpoint,
            definition.name,
            handle,
            heartbeat_interval=worker.heartbeat_interval,
            liveness=worker.heartbeat_liveness,
            reconnect_initial=worker.reconnect_initial,
            reconnect_max=worker.reconnect_max,
            credentials=credentials,
        )
        self.definition = definition
