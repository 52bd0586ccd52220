"""The Majordomo Management Interface (RFC 8) and plantd's documented extensions.

Every request for a service starting with ``mmi.`` is answered by the broker itself:

``mmi.service``   body: a service name → ``200`` if at least one worker is registered for it,
                  else ``404`` (exactly RFC 8).
``mmi.services``  → JSON list of the services that have at least one registered worker.
``mmi.workers``   body: optional service name → JSON ``{service: {"idle", "busy", "queued"}}``
                  for every known service (or only the one named).
``mmi.broker``    → JSON with ``version``, ``uptime`` (s), ``workers``, ``services``, ``queued``,
                  ``protocols`` and ``counters`` (including ``malformed`` and ``unexpected``).
anything else     → ``501`` (RFC 8).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from plantd import __version__

if TYPE_CHECKING:
    from plantd.mdp._broker import Broker

__all__ = ["answer"]

FOUND, NOT_FOUND, NOT_IMPLEMENTED = b"200", b"404", b"501"


def answer(broker: Broker, service: bytes, body: list[bytes], now: float) -> list[bytes]:
    """The reply body for the MMI request ``service`` with ``body``."""
    if service == b"mmi.service":
        target = broker.services.get(body[0])
        return [FOUND if target is not None and target.workers > 0 else NOT_FOUND]
    if service == b"mmi.services":
        names = sorted(s.label for s in broker.services.values() if s.workers > 0)
        return [_json(names)]
    if service == b"mmi.workers":
        wanted = body[0]
        table = {
            s.label: {"idle": s.idle, "busy": s.workers - s.idle, "queued": len(s.requests)}
            for s in broker.services.values()
            if not wanted or s.name == wanted
        }
        return [_json(table)]
    if service == b"mmi.broker":
        return [
            _json(
                {
                    "version": __version__,
                    "uptime": round(now - broker.started, 3),
                    "protocols": ["MDP/0.2", "MDP/0.1", "MMI"],
                    "workers": len(broker.workers),
                    "services": sum(1 for s in broker.services.values() if s.workers > 0),
                    "queued": broker.queued,
                    "counters": broker.counters.as_dict(),
                }
            )
        ]
    return [NOT_IMPLEMENTED]


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
