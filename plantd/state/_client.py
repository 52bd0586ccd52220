"""Calling the state service from asyncio code: one method per operation.

Every write carries a fresh ``request_id`` unless the caller gives one, so the client's automatic
retries (after a timeout, a broker restart) can never apply a write twice: the service answers a
repeated id with the first answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from plantd.client import AsyncClient
from plantd.errors import RemoteProtocolError
from plantd.service import Json, call_async, stream_async
from plantd.state._model import Entry, ScopeSnapshot, Snapshot
from plantd.state._service import SERVICE_NAME

__all__ = ["StateClient", "new_request_id", "snapshot_from_parts"]


_READS = frozenset({"get", "list", "list-scopes", "snapshot", "health", "operations"})


def new_request_id() -> str:
    return uuid.uuid4().hex


def snapshot_from_parts(parts: Sequence[Json]) -> Snapshot:
    """Assemble what the streaming ``snapshot`` operation sent (its parts, then its final)."""
    if not parts or not isinstance(parts[-1], dict) or "revision" not in parts[-1]:
        raise RemoteProtocolError("a snapshot ends with {revision, scopes, keys}")
    snapshot = Snapshot(int(parts[-1]["revision"]))
    for part in parts[:-1]:
        if not isinstance(part, dict) or not isinstance(part.get("keys"), dict):
            raise RemoteProtocolError("a snapshot part is {scope, exists, revision, keys}")
        scope = snapshot.scopes.setdefault(
            part["scope"], ScopeSnapshot(bool(part["exists"]), int(part["revision"]))
        )
        for key, item in part["keys"].items():
            scope.entries[key] = Entry(item["value"], item["revision"], item["version"])
    return snapshot


class StateClient:
    """``org.plantd.State`` through ``client``. Errors come as ``ServiceError`` with the code."""

    def __init__(self, client: AsyncClient, service: str = SERVICE_NAME) -> None:
        self.client = client
        self.service = service

    async def call(self, operation: str, params: dict[str, Json] | None = None) -> Any:
        # A read, or a write with a request id (the service answers a repeat with the first
        # answer), is safe to run twice: the client retries it when the broker lost the worker.
        idempotent = operation in _READS or "request_id" in (params or {})
        return await call_async(self.client, self.service, operation, params, idempotent=idempotent)

    async def _write(self, operation: str, params: dict[str, Json], request_id: str | None) -> Any:
        params["request_id"] = request_id or new_request_id()
        return await self.call(operation, params)

    async def create_scope(self, scope: str, *, request_id: str | None = None) -> Any:
        return await self._write("create-scope", {"scope": scope}, request_id)

    async def delete_scope(self, scope: str, *, request_id: str | None = None) -> Any:
        return await self._write("delete-scope", {"scope": scope}, request_id)

    async def list_scopes(self) -> Any:
        return await self.call("list-scopes")

    async def get(self, scope: str, key: str) -> Any:
        return await self.call("get", {"scope": scope, "key": key})

    async def set(
        self,
        scope: str,
        key: str,
        value: Json,
        *,
        if_revision: int | None = None,
        request_id: str | None = None,
    ) -> Any:
        params: dict[str, Json] = {"scope": scope, "key": key, "value": value}
        if if_revision is not None:
            params["if_revision"] = if_revision
        return await self._write("set", params, request_id)

    async def delete(
        self, scope: str, key: str, *, if_revision: int | None = None, request_id: str | None = None
    ) -> Any:
        params: dict[str, Json] = {"scope": scope, "key": key}
        if if_revision is not None:
            params["if_revision"] = if_revision
        return await self._write("delete", params, request_id)

    async def batch(self, ops: list[dict[str, Json]], *, request_id: str | None = None) -> Any:
        return await self._write("batch", {"ops": ops}, request_id)

    async def list(
        self,
        scope: str,
        *,
        prefix: str = "",
        after: str | None = None,
        limit: int = 100,
        values: bool = False,
    ) -> Any:
        params: dict[str, Json] = {"scope": scope, "prefix": prefix, "limit": limit}
        if after is not None:
            params["after"] = after
        if values:
            params["values"] = True
        return await self.call("list", params)

    async def snapshot(self, scope: str | None = None) -> Snapshot:
        params: dict[str, Json] = {} if scope is None else {"scope": scope}
        parts = [
            part
            async for part in stream_async(
                self.client, self.service, "snapshot", params, idempotent=True
            )
        ]
        return snapshot_from_parts(parts)

    async def health(self) -> Any:
        return await self.call("health")
