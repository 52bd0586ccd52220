"""One audit record: who did what, when, to what, and how it ended (plantd.audit keeps them).

The broker makes them (it sees every connection, registration, call and publication), the
audit store keeps them (``_store``), and each is also published on the bus as
``event.audit.<action>``.

``action`` is one of:

- ``call``: a call of an operation above ``read`` access (a write, a command, a change of
  state or configuration) that a role allowed — a person's, or a sink forwarding an upstream
  command — recorded once with its result: ``ok`` or the error code. A principal's routine
  calls by its kind (a module keeping its own state every second) are not recorded;
- any refused call;
- ``register``: a worker's READY for a service (recorded when refused);
- ``publish``: a bus message (recorded when refused);
- ``connect``: a connection handshake (recorded when refused: unknown or revoked key, wrong
  mechanism, bytes that are not ZMTP);
- ``key``: a change in the allow-list (a principal added, revoked, rotated, its roles changed).

``result`` is ``ok``, ``denied``, or an error code. Refusals of the same kind from the same
source in quick succession are folded into one record whose ``count`` says how many.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ACTIONS", "UNKNOWN_PRINCIPAL", "AuditAction", "AuditEvent"]

AuditAction = Literal["call", "register", "publish", "connect", "key"]
ACTIONS: tuple[AuditAction, ...] = ("call", "register", "publish", "connect", "key")
UNKNOWN_PRINCIPAL = "-"  # not authenticated (security.mode none, or a refused handshake)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    principal: str
    action: AuditAction
    target: str  # the service and operation, the topic, the endpoint or the key's principal
    result: str  # "ok", "denied" or an error code
    detail: str = ""  # the call's params (cut short), or why it was refused
    source: str = ""  # where it came from: a peer address, or the socket that refused it
    time: float = 0.0  # wall clock (seconds); set when the event is recorded
    count: int = 1

    @property
    def denied(self) -> bool:
        return self.result == "denied"

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "principal": self.principal,
            "action": self.action,
            "target": self.target,
            "result": self.result,
            "detail": self.detail,
            "source": self.source,
            "count": self.count,
        }
