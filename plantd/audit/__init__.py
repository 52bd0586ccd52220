"""The audit trail: who did what, when and with what result (docs/security.md, docs/audit.md).

:class:`AuditEvent` is what the broker records; :class:`AuditLog` writes events from inside
the broker (one thread, folding floods of refusals) into an :class:`AuditStore`, an
append-only SQLite file with a hash chain; :func:`audit_service` serves it as
``org.plantd.Audit`` (``plant audit``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plantd.audit._event import ACTIONS, UNKNOWN_PRINCIPAL, AuditAction, AuditEvent
from plantd.audit._log import AuditLog
from plantd.audit._store import AuditStore

if TYPE_CHECKING:
    from plantd.audit._service import AUDIT_SERVICE, audit_service

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


def __getattr__(name: str) -> Any:
    # The service names load on first use: the MDP broker imports AuditEvent from here, and
    # the service layer imports the worker, which imports the MDP package — importing it
    # eagerly would close that circle while plantd.mdp is half initialised.
    if name in ("AUDIT_SERVICE", "audit_service"):
        from plantd.audit import _service

        return getattr(_service, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
