"""The audit trail inside the broker's process: the log that writes it and the service that
reads it (``org.plantd.Audit``), started once the broker is bound.

Audit events may come from the ZAP thread as soon as the broker binds, before the log exists
(it publishes on the bus's inproc endpoint, which binding creates): :class:`AuditTrail` is
callable from the start, keeps what comes early, and hands it to the log when it starts.
"""

from __future__ import annotations

import logging
import threading

from plantd.audit import AUDIT_SERVICE, AuditLog, audit_service
from plantd.broker._internal import InProcessService
from plantd.config import PlantdConfig
from plantd.security import AuditEvent

__all__ = ["AuditTrail"]

log = logging.getLogger(__name__)


class AuditTrail:
    """``trail(event)`` records an event (from any thread); :meth:`start` once bound."""

    def __init__(self, config: PlantdConfig) -> None:
        self.config = config
        self.path = config.security.audit.database_path(config.paths.data)
        self._lock = threading.Lock()
        self._early: list[AuditEvent] = []
        self._log: AuditLog | None = None
        self._service: InProcessService | None = None

    def __call__(self, event: AuditEvent) -> None:
        with self._lock:
            if self._log is None:
                self._early.append(event)
                return
        self._log.record(event)

    def start(self, bus_endpoint: str | None, broker_endpoint: str) -> None:
        """Write from now on (publishing each record on ``bus_endpoint``), and serve queries
        as a worker of the broker at ``broker_endpoint`` (its inproc endpoint)."""
        audit = AuditLog(self.path, self.config.security.audit, bus_endpoint=bus_endpoint)
        audit.start()
        with self._lock:
            for event in self._early:
                audit.record(event)
            self._early.clear()
            self._log = audit
        self._service = InProcessService(
            audit_service(self.path), broker_endpoint, self.config.worker
        )
        self._service.start()
        log.info("audit trail in %s (%s)", self.path, AUDIT_SERVICE)

    def stop(self) -> None:
        if self._service is not None:
            self._service.stop()
        if self._log is not None:
            self._log.stop()
