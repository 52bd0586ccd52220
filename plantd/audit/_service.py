"""``org.plantd.Audit``: reading the audit trail over MDP (the broker serves it).

``query``   ``{"since": T, "until": T, "principal": P, "action": A, "result": R,
            "target": PREFIX, "limit": N, "before_id": ID}``, every key optional:
            ``{"records": [...], "more": bool}``, newest first, at most ``limit`` (default
            1000, at most 10,000). Times are Unix seconds (``since <= time < until``); ``plant
            audit`` turns ``10m`` or an ISO time into them. Page back by passing the last
            record's ``id`` as ``before_id`` while ``more`` is true.
``verify``  recompute the hash chain: ``{"ok": bool, "checked": N, "first_bad_id": ID|null}``.
``status``  records, events (counts summed), oldest and newest time, pruned records, bytes.

Every operation needs ``admin`` access: who did what is itself sensitive (the built-in
policy grades ``org.plantd.Audit`` so, see docs/security.md).

Each call opens its own read-only connection on a worker thread (``asyncio.to_thread``):
WAL lets it read while the broker's writer commits, and the event loop never waits for
SQLite. Errors: ``bad-request`` names the parameter; ``audit.unavailable`` when the file
cannot be read.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from plantd import _sqlite
from plantd.audit._store import query_records, store_status, verify_chain
from plantd.service import (
    Json,
    OperationError,
    Params,
    ServiceDefinition,
    optional_text,
    optional_time,
    param,
)

__all__ = ["AUDIT_SERVICE", "MAX_LIMIT", "audit_service"]

AUDIT_SERVICE = "org.plantd.Audit"
MAX_LIMIT = 10_000

T = TypeVar("T")

_EMPTY_STATUS = {"count": 0, "events": 0, "oldest": None, "newest": None, "last_id": 0}


def audit_service(path: Path) -> ServiceDefinition:
    """The service reading the audit file at ``path`` (written by an :class:`AuditLog`)."""
    definition = ServiceDefinition(
        AUDIT_SERVICE, "The audit trail: who did what, when and with what result."
    )

    def read(job: Callable[[sqlite3.Connection], T], missing: T) -> T:
        """Run ``job`` on a fresh read-only connection; ``missing`` if there is no trail yet."""
        if not path.exists():
            return missing
        try:
            conn = _sqlite.connect(path, readonly=True)
            try:
                has_table = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'records'"
                ).fetchone()
                return job(conn) if has_table else missing
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise OperationError("audit.unavailable", f"{path}: {exc}") from exc

    @definition.operation("query", access="admin")
    async def _query(params: Params) -> Json:
        """Records matching the filters, newest first; ``more`` says whether older ones match."""
        since, until = optional_time(params, "since"), optional_time(params, "until")
        limit = param(params, "limit", int, 1000)
        if not 1 <= limit <= MAX_LIMIT:
            raise OperationError(
                "bad-request", f"params.limit: expected 1 to {MAX_LIMIT}, got {limit}"
            )
        before_id = param(params, "before_id", (int, type(None)), None)
        if before_id is not None and before_id < 1:
            raise OperationError("bad-request", f"params.before_id: expected ≥ 1, got {before_id}")
        filters: dict[str, Any] = {
            "since": since,
            "until": until,
            "principal": optional_text(params, "principal"),
            "action": optional_text(params, "action"),
            "result": optional_text(params, "result"),
            "target_prefix": optional_text(params, "target"),
            "before_id": before_id,
        }
        found = await asyncio.to_thread(
            read, lambda conn: query_records(conn, limit=limit + 1, **filters), []
        )
        return {"records": found[:limit], "more": len(found) > limit}

    @definition.operation("verify", access="admin")
    async def _verify(params: Params) -> Json:
        """Recompute the hash chain; the first id that is missing or altered, if any."""
        ok, checked, first_bad = await asyncio.to_thread(read, verify_chain, (True, 0, None))
        return {"ok": ok, "checked": checked, "first_bad_id": first_bad}

    @definition.operation("status", access="admin")
    async def _status(params: Params) -> Json:
        """Records, events, the oldest and newest time, records pruned, the file's bytes."""
        empty = {"database": str(path), "pruned": 0, "bytes": 0, "used_bytes": 0, **_EMPTY_STATUS}
        result: dict[str, Any] = await asyncio.to_thread(
            read, lambda conn: store_status(conn, path), empty
        )
        return result

    return definition
