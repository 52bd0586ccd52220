"""The audit trail: who did what, when and with what result (docs/security.md, docs/audit.md).

:class:`AuditEvent` is what the broker records; :class:`AuditLog` writes events from inside
the broker (one thread, folding floods of refusals) into an :class:`AuditStore`, an
append-only SQLite file with a hash chain; :func:`audit_service` serves it as
``org.plantd.Audit`` (``plant audit``).
"""

from __future__ import annotations

from plantd.audit._log import AuditLog
from plantd.audit._service import AUDIT_SERVICE, audit_service
from plantd.audit._store import AuditStore
from plantd.security import ACTIONS, UNKNOWN_PRINCIPAL, AuditAction, AuditEvent

__all__ = [
    "ACTIONS",
    "AUDIT_SERVICE",
    "UNKNOWN_PRINCIPAL",
    "AuditAction",
    "AuditEvent",
    "AuditLog",
    "AuditStore",
    "audit_service",
]
