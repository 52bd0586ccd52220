"""The telemetry thread: a process's log records and metrics snapshots, on the bus.

Theory of operation. :func:`start_telemetry` puts a :class:`~plantd.telemetry.BusLogHandler`
on the root logger and starts one daemon thread, which creates its own
:class:`~plantd.bus.BusPublisher` (a ZeroMQ socket belongs to the thread that made it) and
then, until stopped:

- sends what the handler has queued, each record on ``log.<source>.<level>``;
- every ``metrics.interval`` (with ``metrics.enabled``) sends a snapshot of
  :data:`~plantd.telemetry.REGISTRY` in the Prometheus text format on ``metrics.<source>``:
  ``{"source", "time", "interval", "text"}``.

Logging never waits for any of this (the handler's queue is bounded and drops its oldest),
and the publisher never waits for the bus (a ZeroMQ PUB send does not block). A new publisher
first waits up to a second for the bus to pass on a subscription, as a record sent before
that is lost (ZeroMQ's "slow joiner"); records logged meanwhile wait in the queue.

On :meth:`Telemetry.stop` the handler leaves the root logger, what it had queued is sent (for
at most :data:`FLUSH_WITHIN` seconds; what is left then is counted as dropped) and the socket
closes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import zmq
from prometheus_client import generate_latest

from plantd.bus import BusPublisher
from plantd.config import PlantdConfig
from plantd.errors import SecurityError
from plantd.security import Credentials, Identity
from plantd.telemetry import REGISTRY, metrics_topic
from plantd.telemetry._handler import BusLogHandler, Route
from plantd.telemetry._metrics import COUNTS

__all__ = ["FLUSH_WITHIN", "Telemetry", "start_telemetry"]

log = logging.getLogger(__name__)

FLUSH_WITHIN = 1.0  # seconds a stop gives queued records to go out
_JOIN_WAIT = 0.2  # seconds, per look, that a new publisher waits for a subscription
_JOIN_WITHIN = 1.0  # … and at most
_KEY_CHECK = 1.0  # seconds between looks at a rotating identity's key


class Telemetry:
    """A running telemetry thread (:func:`start_telemetry`); ``stop()`` it, or use it in a
    ``with`` block. ``handler`` is None with ``logging.publish: off``."""

    def __init__(
        self,
        config: PlantdConfig,
        source: str,
        *,
        credentials: Credentials | Identity | None,
        endpoint: str | None,
        clock: Callable[[], float],
        route: Route | None,
        filters: tuple[logging.Filter, ...],
    ) -> None:
        self.source = source
        self.endpoint = endpoint or config.bus.frontend
        self.interval = config.metrics.interval if config.metrics.enabled else None
        self.snapshots = 0  # metrics snapshots sent
        self._credentials = credentials
        self._clock = clock
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._snapshot_now = False
        self.handler: BusLogHandler | None = None
        if config.logging.publish != "off":
            self.handler = BusLogHandler(
                source,
                config.logging.publish.upper(),
                config.logging.publish_queue,
                route=route,
            )
            for record_filter in filters:
                self.handler.addFilter(record_filter)
            self.handler.ready = self._wake  # a queued record wakes the thread
        self._thread = threading.Thread(
            target=self._run, name=f"plantd-telemetry-{source}", daemon=True
        )

    def start(self) -> Telemetry:
        self._thread.start()
        if self.handler is not None:
            self.handler.ignore_thread(self._thread.ident)
            logging.getLogger().addHandler(self.handler)
        return self

    def snapshot(self) -> None:
        """Send a metrics snapshot now (after the records queued before it)."""
        self._snapshot_now = True
        self._wake.set()

    def stop(self) -> None:
        """Stop logging to the bus; send what is queued (≤ :data:`FLUSH_WITHIN` s); close."""
        if self.handler is not None:
            logging.getLogger().removeHandler(self.handler)
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(FLUSH_WITHIN + _JOIN_WITHIN + 1.0)

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # The thread.

    def _run(self) -> None:
        try:
            publisher = self._open()
        except (zmq.ZMQError, SecurityError) as exc:
            log.error("telemetry: cannot publish on %s: %s", self.endpoint, exc)
            return
        self._publisher = publisher
        try:
            self._loop()
        finally:
            self._publisher.close()

    def _open(self) -> BusPublisher:
        publisher = BusPublisher(self.endpoint, credentials=self._current_credentials())
        loop = asyncio.new_event_loop()
        try:
            deadline = time.monotonic() + _JOIN_WITHIN
            while not self._stopping.is_set() and time.monotonic() < deadline:
                if loop.run_until_complete(publisher.wait_for_subscribers(_JOIN_WAIT)):
                    break
        finally:
            loop.close()
        return publisher

    def _current_credentials(self) -> Credentials | None:
        if isinstance(self._credentials, Identity):
            return self._credentials.credentials()
        return self._credentials

    def _loop(self) -> None:
        now = time.monotonic()
        next_snapshot = now + self.interval if self.interval is not None else None
        next_key_check = now + _KEY_CHECK
        in_use = self._current_credentials()
        while not self._stopping.is_set():
            timeout = _KEY_CHECK
            if next_snapshot is not None:
                timeout = min(timeout, max(0.0, next_snapshot - time.monotonic()))
            self._wake.wait(timeout)
            self._wake.clear()
            self._send_records(self._publisher, None)
            now = time.monotonic()
            if self._snapshot_now or (next_snapshot is not None and now >= next_snapshot):
                self._snapshot_now = False
                self._send_snapshot(self._publisher)
                if next_snapshot is not None and self.interval is not None:
                    next_snapshot += self.interval
                    if next_snapshot <= now:  # late (a long pause): from now on
                        next_snapshot = now + self.interval
            if isinstance(self._credentials, Identity) and now >= next_key_check:
                next_key_check = now + _KEY_CHECK
                in_use = self._rotated(in_use)
        self._send_records(self._publisher, time.monotonic() + FLUSH_WITHIN)
        if self._snapshot_now:
            self._send_snapshot(self._publisher)

    def _rotated(self, in_use: Credentials | None) -> Credentials | None:
        """A new publisher if the identity's key changed (``plant keys rotate``); the key in
        use."""
        try:
            current = self._current_credentials()
        except SecurityError:
            return in_use  # gone for now: keep the old key
        if current == in_use:
            return in_use
        self._publisher.close()
        self._publisher = BusPublisher(self.endpoint, credentials=current)
        return current

    def _send_records(self, publisher: BusPublisher, deadline: float | None) -> None:
        if self.handler is None:
            return
        published = COUNTS.published
        while taken := self.handler.take():
            for n, (topic, fields) in enumerate(taken):
                if deadline is not None and n % 100 == 0 and time.monotonic() > deadline:
                    # Out of time: what was not sent is lost, and counted so.
                    COUNTS.dropped += len(taken) - n + len(self.handler.take())
                    return
                try:
                    publisher.publish_record(topic, fields)
                except zmq.ZMQError as exc:
                    log.warning("telemetry: a record was not sent: %s", exc)
                    continue
                published[fields["level"]] += 1
            if deadline is None:
                return  # the rest at the next wake-up, which the handler has set

    def _send_snapshot(self, publisher: BusPublisher) -> None:
        try:
            text = generate_latest(REGISTRY).decode()
        except Exception:  # a part's collector failed: say so, and keep the thread (and logs)
            log.exception("telemetry: collecting the metrics failed")
            return
        fields: dict[str, Any] = {
            "source": self.source,
            "time": self._clock(),
            "interval": self.interval,
            "text": text,
        }
        try:
            publisher.publish_record(metrics_topic(self.source), fields)
        except zmq.ZMQError as exc:
            log.warning("telemetry: a metrics snapshot was not sent: %s", exc)
            return
        self.snapshots += 1


def start_telemetry(
    config: PlantdConfig,
    source: str,
    *,
    credentials: Credentials | Identity | None = None,
    endpoint: str | None = None,
    clock: Callable[[], float] = time.time,
    route: Route | None = None,
    filters: tuple[logging.Filter, ...] = (),
) -> Telemetry:
    """Report this process's log records and metrics on the bus as ``source`` from now on.

    ``credentials``: the key the publisher presents under CURVE (an :class:`Identity` is
    followed as its key rotates); None: the process's identity. ``endpoint``: where to publish
    instead of ``bus.frontend`` (the broker's own, in-process). ``clock`` stamps snapshots.
    ``route`` picks another source for some records and ``filters`` go on the handler first
    (the module host: each module's records as ``module.<name>``).
    """
    return Telemetry(
        config,
        source,
        credentials=credentials,
        endpoint=endpoint,
        clock=clock,
        route=route,
        filters=filters,
    ).start()
