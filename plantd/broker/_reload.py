"""What the broker takes from a re-read ``plantd.yaml`` on SIGHUP (``systemctl reload``).

Sans-IO: :func:`merge` gets the configuration the broker runs with and the one just read, and
returns the one to run with from now on plus a line per change, saying whether it was applied
or needs a restart. The routing loop (:mod:`plantd.broker._server`) applies the result.

Applied live, because the core reads them per message or per request: the queue limits (counts
and bytes, per service and in total), ``max_message_bytes``, ``max_frames``,
``request_expiry`` (requests queued from then on) and ``worker_loss_retries``;
``security.roles`` and ``security.operations``, as a new policy over the same key ring.

Need a restart: the endpoints and the bus (bound sockets), ``handshake_timeout`` (a socket
option of the bound sockets), the broker's heartbeat (its expiry and tick period are fixed when
the core starts), the rest of ``security:`` (mode, key directories, the audit trail: set up
before binding), and ``logging:``/``metrics:``/``paths:``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from plantd.config import BrokerConfig, PlantdConfig

__all__ = ["LIVE_BROKER_KEYS", "Merged", "merge"]

LIVE_BROKER_KEYS = (
    "max_queue_per_service",
    "max_queued_total",
    "max_message_bytes",
    "max_queued_bytes_per_service",
    "max_queued_bytes",
    "max_frames",
    "request_expiry",
    "worker_loss_retries",
)
# The other sections the broker reads; a change there is only reported as needing a restart.
_RESTART_SECTIONS = ("bus", "logging", "metrics", "paths")
_LIVE_SECURITY_KEYS = ("roles", "operations")


@dataclasses.dataclass(frozen=True)
class Merged:
    """The configuration to run with, and what changed: ``applied`` and ``restart`` lines."""

    config: PlantdConfig
    applied: list[str]
    restart: list[str]

    @property
    def changed(self) -> bool:
        return bool(self.applied)


def merge(running: PlantdConfig, read: PlantdConfig) -> Merged:
    """``running`` with every live setting taken from ``read``; the rest stays as it runs.

    Endpoints are compared as bound: pass ``running`` with the real endpoints (a wildcard
    port's) and ``read`` as :func:`plantd.config.load_config` gives it (it reads them back
    from the broker's endpoints file).
    """
    applied: list[str] = []
    restart: list[str] = []
    live: dict[str, Any] = {}
    for field in dataclasses.fields(BrokerConfig):
        old, new = getattr(running.broker, field.name), getattr(read.broker, field.name)
        if old == new:
            continue
        line = f"broker.{field.name}: {old!r} -> {new!r}"
        if field.name in LIVE_BROKER_KEYS:
            live[field.name] = new
            applied.append(line)
        else:
            restart.append(line)
    for section in _RESTART_SECTIONS:
        if getattr(running, section) != getattr(read, section):
            restart.append(f"{section}: changed")
    security = running.security
    for field in dataclasses.fields(security):
        old, new = getattr(security, field.name), getattr(read.security, field.name)
        if old == new:
            continue
        if field.name in _LIVE_SECURITY_KEYS:  # a new policy over the same key ring
            security = dataclasses.replace(security, **{field.name: new})
            applied.append(f"security.{field.name}: changed")
        else:
            restart.append(f"security.{field.name}: changed")
    config = dataclasses.replace(
        running, broker=dataclasses.replace(running.broker, **live), security=security
    )
    return Merged(config, applied, restart)
