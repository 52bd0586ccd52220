"""What a client concludes from a reply, without I/O: shared by both clients.

Two questions (issue 12, items 4 and 13):

* May an *idempotent* request be sent again after this reply? Only when the broker says the
  worker was lost (``broker.worker-lost``): the request may or may not have run, which is
  harmless for a read or for a write the service deduplicates by request id. Every other
  answer, error or not, is the answer.
* Is anybody there? The client asks the broker ``mmi.service`` (RFC 8) before a person's first
  call to a service, and again before each retry after a timeout: silence means no broker at the
  endpoint (:class:`~plantd.errors.NoBroker`), ``404`` that no worker serves the service
  (:class:`~plantd.errors.NoWorker`), ``200`` that it is there and merely slow.
"""

from __future__ import annotations

import json

from plantd.errors import NoBroker, NoWorker, RemoteProtocolError

__all__ = [
    "PRESENCE_GRACE",
    "PRESENCE_RECHECK",
    "PRESENCE_SERVICE",
    "asks_broker",
    "presence_verdict",
    "retry_after",
    "service_hint",
]

PRESENCE_SERVICE = b"mmi.service"
PRESENCE_GRACE = 3.0
"""Seconds a service with no worker is given to register before ``NoWorker``: a service that
was just restarted (the broker forgets its dead workers at once) registers within that."""
PRESENCE_RECHECK = 0.25
"""Seconds between two ``mmi.service`` questions during that grace."""
_RETRYABLE = frozenset({"broker.worker-lost"})

# The program that registers each of plantd's services, for "is … running?".
_PROGRAMS = {
    "org.plantd.State": "plantd-state",
    "org.plantd.Historian": "plantd-historian",
    "org.plantd.Logger": "plantd-logger",
    "org.plantd.Health": "plantd-logger",
    "org.plantd.Alarms": "plantd-control",
    "org.plantd.Control": "plantd-control",
    "org.plantd.Audit": "plantd-broker with security.audit enabled",
    "org.plantd.module.Echo": "plant serve echo",
}


def broker_error_code(body: list[bytes]) -> str | None:
    """The code of a broker error reply (one JSON frame, ``ok: false``, code ``broker.…``)."""
    if len(body) != 1 or not body[0].startswith(b"{"):
        return None
    try:
        reply = json.loads(body[0])
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    error = reply.get("error") if isinstance(reply, dict) and reply.get("ok") is False else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) and code.startswith("broker.") else None


def retry_after(body: list[bytes]) -> bool:
    """True if an idempotent request that got ``body`` as its FINAL should be sent again."""
    return broker_error_code(body) in _RETRYABLE


def asks_broker(service: bytes) -> bool:
    """``mmi.*`` requests are answered by the broker itself: no worker to look for."""
    return service.startswith(b"mmi.")


def service_hint(service: str) -> str:
    """What to check when nobody serves ``service``."""
    program = _PROGRAMS.get(service)
    if program is None and service.startswith("org.plantd.module."):
        name = service.removeprefix("org.plantd.module.")
        return f"is module {name!r} configured, and plantd-modules or plantd-module@{name} running?"
    if program is None and service.startswith("org.plantd.sink."):
        return f"is plantd-sink@{service.removeprefix('org.plantd.sink.')} running?"
    if program is None:
        return "is its service running, and is the name right? `plant mmi services` lists them"
    return f"is {program} running?"


def presence_verdict(reply: list[bytes] | None, service: str, endpoint: str, waited: float) -> None:
    """Raise what an ``mmi.service`` probe's ``reply`` (None: no reply in ``waited`` s) means.

    Returns quietly when a worker is registered: the caller goes on waiting for its answer.
    """
    if reply is None:
        raise NoBroker(endpoint, waited)
    if reply == [b"404"]:
        raise NoWorker(service, service_hint(service))
    if reply != [b"200"]:
        raise RemoteProtocolError(f"mmi.service answered {reply!r}, expected 200 or 404")
