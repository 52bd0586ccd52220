"""``plantd-broker``: run the broker and the data bus until SIGTERM."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from plantd._entry import CONFIG_ERROR, service_main
from plantd.config import PlantdConfig
from plantd.logs import configure_logging

if TYPE_CHECKING:
    from plantd.audit import AuditEvent, AuditLog

__all__ = ["main", "serve"]

log = logging.getLogger("plantd.broker")

_STATUS_EVERY = 5.0  # seconds between STATUS= updates to systemd


def serve(config: PlantdConfig, environ: dict[str, str]) -> int:
    """Run the broker in the foreground (shared by ``plantd-broker`` and ``plant broker``).

    Under systemd: READY=1 once the endpoints are bound, WATCHDOG=1 from the routing loop
    itself, and a STATUS line with the worker and queue figures every few seconds.
    """
    import time

    import zmq

    from plantd.audit import AUDIT_SERVICE, AuditLog, audit_service
    from plantd.broker._internal import InProcessService
    from plantd.broker._server import INTERNAL_ENDPOINT, BrokerServer
    from plantd.errors import SecurityError
    from plantd.security import assume_identity
    from plantd.systemd import Notifier, Watchdog

    configure_logging(
        config.logging.level, config.logging.format, under_journal="JOURNAL_STREAM" in environ
    )
    assume_identity(config, None)  # a CURVE server with keys of its own, never a client
    notifier = Notifier.from_environ(environ)
    watchdog = Watchdog(notifier, environ)
    deferred = _DeferredAudit()
    server = BrokerServer(config, on_audit=deferred)
    try:
        server.bind()
    except zmq.ZMQError as exc:
        print(f"plantd-broker: {exc}", file=sys.stderr)
        return 1
    except SecurityError as exc:
        print(f"plantd-broker: {exc}", file=sys.stderr)
        return CONFIG_ERROR
    audit_path = config.security.audit.database_path(config.paths.data)
    audit = AuditLog(
        audit_path,
        config.security.audit,
        bus_endpoint=server.bus.internal_endpoint if server.bus is not None else None,
    )
    audit.start()
    deferred.hand_over(audit)
    audit_worker = InProcessService(audit_service(audit_path), INTERNAL_ENDPOINT, config.worker)
    audit_worker.start()
    log.info("audit trail in %s (%s)", audit_path, AUDIT_SERVICE)
    server.install_signal_handlers()
    notifier.ready(status=f"routing on {config.broker.endpoint}")
    next_status = 0.0

    def on_idle() -> None:
        nonlocal next_status
        now = time.monotonic()
        watchdog.ping(now)
        core = server.core
        if notifier.enabled and core is not None and now >= next_status:
            next_status = now + _STATUS_EVERY
            services = sum(1 for service in core.services.values() if service.workers)
            notifier.status(
                f"{len(core.workers)} workers, {services} services, {core.queued} queued, "
                f"{core.counters.requests} requests"
            )

    try:
        server.run(on_idle, wake_every=watchdog.interval if watchdog.enabled else None)
    finally:
        notifier.stopping()
        audit_worker.stop()
        audit.stop()
    return 0


class _DeferredAudit:
    """Audit events may come from the ZAP thread as soon as the broker binds, before the log
    exists (it needs the bus's inproc endpoint): they wait here until :meth:`hand_over`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[AuditEvent] = []
        self._log: AuditLog | None = None

    def __call__(self, event: AuditEvent) -> None:
        with self._lock:
            if self._log is None:
                self._events.append(event)
                return
        self._log.record(event)

    def hand_over(self, log: AuditLog) -> None:
        with self._lock:
            for event in self._events:
                log.record(event)
            self._events.clear()
            self._log = log


def main(argv: Sequence[str] | None = None) -> int:
    return service_main(
        "plantd-broker", __doc__, argv, lambda config, environ, args: serve(config, environ)
    )  # the broker has its own key pair (a CURVE server), no identity as a client


if __name__ == "__main__":
    sys.exit(main())
