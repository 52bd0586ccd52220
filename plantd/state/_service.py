"""``org.plantd.State``: the operations, each documented in its docstring (``operations`` lists
them; docs/state.md explains them at length).

Every operation checks its params here, before anything reaches the store: unknown params are
refused (a misspelt ``if_revision`` must not turn a compare-and-set into a blind set), and names,
values and sizes go through :class:`Limits`. Reads run on the event loop's thread against the
store's reader connection; writes go to the writer thread and are answered after their commit.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from plantd.config import Access
from plantd.security import principal_kind
from plantd.service import Json, OperationError, Params, ServiceDefinition, current_caller, param
from plantd.state._limits import Limits
from plantd.state._metrics import counted
from plantd.state._store import Store
from plantd.state._writes import CreateScope, Delete, DeleteScope, Set, Write, WriteOp, fingerprint

__all__ = ["SERVICE_NAME", "build_definition"]

SERVICE_NAME = "org.plantd.State"
_MAX_LIST = 1000


def _only(params: Params, allowed: Iterable[str], where: str = "params") -> None:
    allowed = set(allowed)
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise OperationError(
            "bad-request",
            f"{where}: unknown parameter(s) {', '.join(unknown)} "
            f"(expected: {', '.join(sorted(allowed)) or 'none'})",
        )


def _revision(params: Params, key: str, required: bool = False) -> int | None:
    value: int | None = param(params, key, int, ... if required else None)
    if value is not None and value < 0:
        raise OperationError("bad-request", f"params.{key} must be >= 0, got {value}")
    return value


def _confine(caller: str | None, ops: tuple[WriteOp, ...]) -> None:
    """A module may change its own scope only (``org.plantd.module.<its name>``): the broker
    lets module principals call the state service at all, this is the finer rule."""
    if caller is None or principal_kind(caller) != "module":
        return
    own = f"org.plantd.{caller}"
    for op in ops:
        if op.scope != own:
            raise OperationError(
                "state.forbidden", f"{caller} may change only its own scope {own}, not {op.scope!r}"
            )


class _Operations:
    """The handlers, bound to one store."""

    def __init__(self, store: Store, limits: Limits, part_bytes: int) -> None:
        self.store = store
        self.limits = limits
        self.part_bytes = part_bytes
        self.started = time.monotonic()

    # -- helpers --------------------------------------------------------------------------------

    def _scope(self, params: Params) -> str:
        return self.limits.scope(param(params, "scope", str))

    def _key(self, params: Params) -> str:
        return self.limits.key(param(params, "key", str))

    async def _write(self, operation: str, params: Params, ops: tuple[WriteOp, ...]) -> Json:
        _confine(current_caller(), ops)
        request_id: str | None = param(params, "request_id", str, None)
        digest = ""
        if request_id is not None:
            self.limits.request_id(request_id)
            digest = fingerprint(operation, params)
        write = Write(operation, ops, request_id, digest)
        return await self.store.apply(write)

    def _set_op(self, params: Params, if_required: bool = False) -> Set:
        scope, key = self._scope(params), self._key(params)
        if "value" not in params:
            raise OperationError("bad-request", "params.value is required")
        value = params["value"]
        return Set(
            scope,
            key,
            value,
            self.limits.value(value),
            _revision(params, "if_revision", if_required),
        )

    # -- scopes ---------------------------------------------------------------------------------

    async def create_scope(self, params: Params) -> Json:
        """Create scope ``scope`` (dotted words, e.g. ``org.plantd.module.pump1``).

        Params: ``scope``, ``request_id`` (optional). Result: ``{scope, created, revision}``;
        ``created`` is false (and nothing changes) if the scope already exists.
        Errors: ``state.invalid-scope``, ``state.io-error``.
        """
        _only(params, ("scope", "request_id"))
        return await self._write("create-scope", params, (CreateScope(self._scope(params)),))

    async def delete_scope(self, params: Params) -> Json:
        """Delete scope ``scope`` and every key in it, as one change.

        Params: ``scope``, ``request_id``. Result: ``{scope, revision, keys}`` (keys deleted).
        Errors: ``state.unknown-scope``, ``state.invalid-scope``, ``state.io-error``.
        """
        _only(params, ("scope", "request_id"))
        return await self._write("delete-scope", params, (DeleteScope(self._scope(params)),))

    async def list_scopes(self, params: Params) -> Json:
        """Every scope: ``{revision, scopes: [{scope, keys, revision, created_revision}]}``.

        ``revision`` at the top is the global revision the list reflects; each scope's is the
        last change that touched it.
        """
        _only(params, ())
        return self.store.scopes()

    # -- keys -----------------------------------------------------------------------------------

    async def get(self, params: Params) -> Json:
        """The value of ``key`` in ``scope``: ``{scope, key, value, revision, version}``.

        ``revision``: the global revision of the key's last change (what compare-and-set
        compares); ``version``: how many times it was set since it was created.
        Errors: ``state.unknown-scope``, ``state.unknown-key``, ``state.invalid-*``.
        """
        _only(params, ("scope", "key"))
        scope, key = self._scope(params), self._key(params)
        entry = self.store.get(scope, key)
        return {
            "scope": scope,
            "key": key,
            "value": entry.value,
            "revision": entry.revision,
            "version": entry.version,
        }

    async def set(self, params: Params) -> Json:
        """Set ``key`` in ``scope`` to ``value`` (any JSON), acknowledged once on disk.

        Params: ``scope``, ``key``, ``value``; ``if_revision`` (optional): set only if the key's
        revision is this one (0: only if the key does not exist); ``request_id`` (optional): a
        retry with the same id gets the first answer and changes nothing.
        Result: ``{scope, key, revision, version}``.
        Errors: ``state.unknown-scope``, ``state.conflict``, ``state.too-large``,
        ``state.invalid-*``, ``state.request-id-reused``, ``state.io-error``.
        """
        _only(params, ("scope", "key", "value", "if_revision", "request_id"))
        return await self._write("set", params, (self._set_op(params),))

    async def compare_and_set(self, params: Params) -> Json:
        """``set`` with ``if_revision`` required: set ``key`` only if its revision is
        ``if_revision`` (0: only if it does not exist). Otherwise ``state.conflict``, naming the
        key's actual revision. Params, result and other errors as ``set``.
        """
        _only(params, ("scope", "key", "value", "if_revision", "request_id"))
        return await self._write("compare-and-set", params, (self._set_op(params, True),))

    async def delete(self, params: Params) -> Json:
        """Delete ``key`` from ``scope``.

        Params: ``scope``, ``key``, ``if_revision`` and ``request_id`` (optional, as ``set``).
        Result: ``{scope, key, revision}``. Errors: ``state.unknown-scope``,
        ``state.unknown-key``, ``state.conflict``, ``state.io-error``.
        """
        _only(params, ("scope", "key", "if_revision", "request_id"))
        op = Delete(self._scope(params), self._key(params), _revision(params, "if_revision"))
        return await self._write("delete", params, (op,))

    async def list(self, params: Params) -> Json:
        """Keys of ``scope`` in order, a page at a time.

        Params: ``scope``; ``prefix`` (only keys starting with it), ``after`` (the ``next`` of
        the previous page), ``limit`` (1-1000, default 100), ``values`` (include values; pages
        are then also cut by size). Result: ``{scope, revision, keys: [{key, revision, version,
        value?}], next}``; ``next`` is null on the last page.
        """
        _only(params, ("scope", "prefix", "after", "limit", "values"))
        scope = self._scope(params)
        prefix: str = param(params, "prefix", str, "")
        after: str | None = param(params, "after", str, None)
        limit: int = param(params, "limit", int, 100)
        if not 1 <= limit <= _MAX_LIST:
            raise OperationError("bad-request", f"params.limit must be 1-{_MAX_LIST}, got {limit}")
        values: bool = param(params, "values", bool, False)
        return self.store.list_keys(
            scope, prefix=prefix, after=after, limit=limit, values=values, max_bytes=self.part_bytes
        )

    async def batch(self, params: Params) -> Json:
        """Several sets and deletes in one transaction: all are applied, or none.

        Params: ``ops``, a list of ``{op: "set", scope, key, value, if_revision?}`` and
        ``{op: "delete", scope, key, if_revision?}``; ``request_id`` (optional).
        Result: ``{revision, results}``, one result per op as ``set``/``delete`` answer.
        Errors: those of ``set`` and ``delete``, prefixed with the op's index (``ops[2]: …``);
        ``state.too-large`` beyond ``state.max_batch_ops``.
        """
        _only(params, ("ops", "request_id"))
        raw: list[Any] = param(params, "ops", list)
        self.limits.batch_size(len(raw))
        ops: list[WriteOp] = []
        for index, item in enumerate(raw):
            where = f"params.ops[{index}]"
            if not isinstance(item, dict):
                raise OperationError("bad-request", f"{where}: expected an object")
            kind = item.get("op")
            try:
                if kind == "set":
                    _only(item, ("op", "scope", "key", "value", "if_revision"), where)
                    ops.append(self._set_op(item))
                elif kind == "delete":
                    _only(item, ("op", "scope", "key", "if_revision"), where)
                    ops.append(
                        Delete(self._scope(item), self._key(item), _revision(item, "if_revision"))
                    )
                else:
                    raise OperationError(
                        "bad-request", f"op must be 'set' or 'delete', got {json.dumps(kind)}"
                    )
            except OperationError as exc:
                message = exc.message.removeprefix(f"{where}: ").replace("params.", "")
                raise OperationError(exc.code, f"ops[{index}]: {message}") from None
        return await self._write("batch", params, tuple(ops))

    # -- the whole store --------------------------------------------------------------------------

    async def snapshot(self, params: Params) -> AsyncIterator[Json]:
        """A consistent copy of one scope (``scope``) or of every scope, streamed.

        Each PARTIAL is ``{scope, exists, revision, keys: {key: {value, revision, version}}}``
        (a large scope comes in several parts; merge their ``keys``); the FINAL is
        ``{revision, scopes, keys}``: the global revision the copy reflects, and counts. A scope
        asked for by name that does not exist comes as one part with ``exists: false``.
        """
        _only(params, ("scope",))
        scope = self._scope(params) if "scope" in params else None
        snap = self.store.snapshot(scope)
        for name, part in snap.scopes.items():
            keys: dict[str, Json] = {}
            size = 0
            for key, entry in part.entries.items():
                entry_size = len(json.dumps(entry.value)) + len(key) + 64
                if keys and size + entry_size > self.part_bytes:
                    yield {
                        "scope": name,
                        "exists": part.exists,
                        "revision": part.revision,
                        "keys": keys,
                    }
                    keys, size = {}, 0
                keys[key] = entry.as_json()
                size += entry_size
            yield {"scope": name, "exists": part.exists, "revision": part.revision, "keys": keys}
        yield {"revision": snap.revision, "scopes": len(snap.scopes), "keys": snap.keys()}

    async def health(self, params: Params) -> Json:
        """Whether the store can take writes, and its figures.

        Result: ``{status, revision, scopes, keys, database, pending_writes, commits, writes,
        refused, failed_commits, largest_group, last_error, uptime}``; ``status`` is ``ok``, or
        ``degraded`` while the last commit failed (``last_error`` says why).
        """
        _only(params, ())
        revision, scopes, keys = self.store.totals()
        stats = self.store.stats
        return {
            "status": "ok" if stats.last_error is None else "degraded",
            "revision": revision,
            "scopes": scopes,
            "keys": keys,
            "database": str(self.store.path),
            "pending_writes": self.store.pending,
            "commits": stats.groups,
            "writes": stats.writes,
            "refused": stats.refused,
            "failed_commits": stats.failed_groups,
            "largest_group": stats.largest_group,
            "last_error": stats.last_error,
            "uptime": round(time.monotonic() - self.started, 3),
        }


def build_definition(
    store: Store, limits: Limits, *, part_bytes: int = 512 * 1024
) -> ServiceDefinition:
    """The ``org.plantd.State`` service over ``store``. ``part_bytes`` bounds each snapshot part
    and each ``list`` page with values (keep it well under ``broker.max_message_bytes``).
    Every request to one of these operations is counted in ``plantd_state_operations_total``
    (``_metrics``), refused ones too."""
    definition = ServiceDefinition(
        SERVICE_NAME, "Durable scoped key/value store; every change is published on the bus."
    )
    handlers = _Operations(store, limits, part_bytes)
    operations: tuple[tuple[str, Any, Access], ...] = (
        ("create-scope", handlers.create_scope, "configure"),
        ("delete-scope", handlers.delete_scope, "configure"),
        ("list-scopes", handlers.list_scopes, "read"),
        ("get", handlers.get, "read"),
        ("set", handlers.set, "configure"),
        ("compare-and-set", handlers.compare_and_set, "configure"),
        ("delete", handlers.delete, "configure"),
        ("list", handlers.list, "read"),
        ("batch", handlers.batch, "configure"),
        ("snapshot", handlers.snapshot, "read"),
        ("health", handlers.health, "read"),
    )
    for name, func, access in operations:
        definition.operation(name, access=access)(counted(name, func))
    return definition
