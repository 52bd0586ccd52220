"""``plantd-broker``: run the broker and the data bus until SIGTERM."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from plantd._entry import CONFIG_ERROR, service_main
from plantd.config import PlantdConfig, load_config
from plantd.logs import configure_logging

if TYPE_CHECKING:
    from plantd.broker._bus import BusProxy
    from plantd.telemetry import Telemetry

__all__ = ["main", "serve"]

_STATUS_EVERY = 5.0  # seconds between STATUS= updates to systemd

log = logging.getLogger("plantd.broker")


def serve(config: PlantdConfig, environ: dict[str, str]) -> int:
    """Run the broker in the foreground (shared by ``plantd-broker`` and ``plant broker``).

    Under systemd: READY=1 once the endpoints are bound, WATCHDOG=1 from the routing loop
    itself, and a STATUS line with the worker and queue figures every few seconds. SIGHUP
    re-reads ``plantd.yaml`` and the keys (:mod:`plantd.broker._reload`).
    """
    import time

    import zmq

    from plantd.broker._endpoints import record_endpoints, remove_endpoints
    from plantd.broker._resources import raise_fd_limit
    from plantd.broker._server import INTERNAL_ENDPOINT, BrokerServer
    from plantd.broker._trail import AuditTrail
    from plantd.errors import SecurityError
    from plantd.security import assume_identity
    from plantd.systemd import Notifier, Watchdog

    configure_logging(
        config.logging.level, config.logging.format, under_journal="JOURNAL_STREAM" in environ
    )
    assume_identity(config, None)  # a CURVE server with keys of its own, never a client
    # Every connection holds a descriptor, finished handshake or not: take all we may have.
    fd_limit = raise_fd_limit()
    notifier = Notifier.from_environ(environ)
    watchdog = Watchdog(notifier, environ)
    # Without CURVE nobody is known, so there is no audit trail.
    trail = AuditTrail(config) if config.security.enabled else None
    server = BrokerServer(config, on_audit=trail)
    try:
        server.bind()
        endpoints_file = record_endpoints(config, server.bound_endpoints())
    except (zmq.ZMQError, OSError) as exc:  # a port taken; an endpoints file it cannot write
        print(f"plantd-broker: {exc}", file=sys.stderr)
        server.close()
        return 1
    except SecurityError as exc:
        print(f"plantd-broker: {exc}", file=sys.stderr)
        return CONFIG_ERROR
    if trail is not None:
        trail.start(server.bus.internal_endpoint if server.bus else None, INTERNAL_ENDPOINT)
    # SIGHUP (``systemctl reload``): plantd.yaml read again from where it came, with the same
    # environment; the routing loop applies what can change live (plantd.broker._reload).
    server.install_signal_handlers(lambda: load_config(config.source_dir, environ))
    notifier.ready(status=f"routing on {server.endpoint}")
    log.info("file descriptor limit: %d", fd_limit)
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

    with _start_telemetry(config, server.bus):
        try:
            # Wake every quarter period: a wake-up that comes just before a ping is due would
            # otherwise put the next one a whole period later, the moment systemd gives up.
            server.run(on_idle, wake_every=watchdog.interval / 2 if watchdog.enabled else None)
        finally:
            notifier.stopping()
            remove_endpoints(endpoints_file)
            if trail is not None:
                trail.stop()
    return 0


def _start_telemetry(config: PlantdConfig, bus: BusProxy | None) -> Telemetry:
    """The broker's own records and metrics go on its own bus from inside, on the inproc end
    (no key: the broker's own messages), as the audit trail's do."""
    from plantd.telemetry import start_telemetry

    return start_telemetry(config, "broker", endpoint=bus.internal_endpoint if bus else None)


def main(argv: Sequence[str] | None = None) -> int:
    return service_main(
        "plantd-broker",
        __doc__,
        argv,
        lambda config, environ, args: serve(config, environ),
        telemetry=False,  # serve() starts its own, inside the broker
    )  # the broker has its own key pair (a CURVE server), no identity as a client


if __name__ == "__main__":
    sys.exit(main())
