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

from plantd.config import PlantdConfig, section_changes, sections_changed

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
    broker = section_changes(
        "broker", running.broker, read.broker, lambda key: key in LIVE_BROKER_KEYS
    )
    # A new policy over the same key ring; values left out (roles are long).
    security = section_changes(
        "security",
        running.security,
        read.security,
        lambda key: key in _LIVE_SECURITY_KEYS,
        values=False,
    )
    restart = [
        *broker.restart,
        *sections_changed(running, read, _RESTART_SECTIONS),
        *security.restart,
    ]
    config = dataclasses.replace(
        running,
        broker=dataclasses.replace(running.broker, **broker.live),
        security=dataclasses.replace(running.security, **security.live),
    )
    return Merged(config, [*broker.applied, *security.applied], restart)
