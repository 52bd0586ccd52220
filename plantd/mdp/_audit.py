"""What the broker writes in the audit trail about a request: who called what, and the result.

The operation and params are read as the service-call convention has them (frame 1 the
operation, frame 2 JSON params); the result from the reply's ``ok`` / ``error.code``. A body
that does not follow the convention is recorded as it is, cut short. Only calls the policy
marks as audited are recorded (above ``read``, allowed by a role), so the JSON is parsed off
the hot path of reads and of routine machine-to-machine calls.
"""

from __future__ import annotations

import json

from plantd.security import UNKNOWN_PRINCIPAL, AuditAction, AuditEvent

__all__ = ["call_event", "denied_event", "reply_result", "target"]

_DETAIL_LIMIT = 512


def _text(frame: bytes, limit: int = _DETAIL_LIMIT) -> str:
    text = frame[:limit].decode("utf-8", "replace")
    return text + "…" if len(frame) > limit else text


def target(service: bytes, body: list[bytes]) -> str:
    operation = _text(body[0], 64) if body else ""
    return f"{service.decode('ascii', 'replace')} {operation}".rstrip()


def reply_result(body: list[bytes]) -> str:
    """``ok``, or the error code of a service-call reply (``replied`` if not one)."""
    try:
        reply = json.loads(body[0]) if len(body) == 1 else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        reply = None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        return "replied"
    if reply["ok"]:
        return "ok"
    error = reply.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return str(code)[:64] if code else "error"


def call_event(
    principal: str | None, service: bytes, body: list[bytes], result: str, via: str | None = None
) -> AuditEvent:
    """A call that ended; ``via``: the delegate that made it for ``principal`` (S6)."""
    return AuditEvent(
        principal or UNKNOWN_PRINCIPAL,
        "call",
        target(service, body),
        result,
        detail=_text(body[1]) if len(body) > 1 else "",
        source=via or "mdp",
    )


def denied_event(
    principal: str | None, action: AuditAction, what: str, reason: str, source: str = "mdp"
) -> AuditEvent:
    return AuditEvent(
        principal or UNKNOWN_PRINCIPAL,
        action,
        what,
        "denied",
        detail=reason,
        source=source,
    )
