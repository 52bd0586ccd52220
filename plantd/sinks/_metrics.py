"""The sinks' metrics (docs/observability.md, "Sinks"), read from what the forwarder keeps anyway.

Nothing here is counted per sample: the disk queue keeps its length, bytes, persistent counters
and the commit time of its oldest entry in plain attributes, updated by the commit, the trim or
the acknowledgement that changes them (``plantd.sinks._queue``), and the forwarder keeps
whether its upstream is connected and what it dropped, by reason. One process-wide
:class:`SinkCollector` reads them when the registry is collected, for every sink
:func:`track` was told about (a sink tracks itself while :meth:`~plantd.sinks.Sink.run` runs).

Collection runs on another thread than the sink's event loop and the queue's database thread:
it only reads those attributes (each read is atomic under the GIL) and never touches SQLite.

``plantd_sink_delivered_total`` is the queue's persistent ``delivered`` counter: it carries on
across restarts (the queue file keeps it), so a restart is no counter reset.
``plantd_sink_dropped_total`` counts this process's drops by ``reason``: ``full`` (the oldest
entries went for ``queue.max_bytes``), ``expired`` (older than ``queue.max_age``) and
``commit_failed`` (dropped from memory past ``queue.max_pending`` while commits failed).

Event records (the sink's ``events`` key): ``plantd_sink_backlog_events`` (queued),
``plantd_sink_events_delivered_total``, ``plantd_sink_events_dropped_total`` and
``plantd_sink_events_missed_total`` (seqs never found), all from the queue's persistent counters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from plantd.telemetry import REGISTRY

if TYPE_CHECKING:
    from plantd.sinks._forwarder import Sink

__all__ = ["COLLECTOR", "DROP_REASONS", "SinkCollector", "track", "untrack"]

log = logging.getLogger(__name__)

DROP_REASONS = ("full", "expired", "commit_failed")
"""The ``reason`` label of ``plantd_sink_dropped_total`` (see the module doc)."""


class SinkCollector(Collector):
    """The sinks' figures at collection time, for every tracked sink (see the module doc)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock  # wall clock, as the queue's commit times
        self._sinks: dict[str, Sink] = {}
        self._lock = threading.Lock()
        self._complained: set[str] = set()

    def track(self, sink: Sink) -> None:
        """Report ``sink``'s figures (replacing an earlier sink of the same name)."""
        with self._lock:
            self._sinks[sink.name] = sink

    def untrack(self, sink: Sink) -> None:
        """Stop reporting ``sink`` (a later sink of the same name stays)."""
        with self._lock:
            if self._sinks.get(sink.name) is sink:
                del self._sinks[sink.name]

    def describe(self) -> Iterable[Metric]:
        return _Families().all()

    def collect(self) -> Iterable[Metric]:
        families = _Families()
        with self._lock:
            sinks = list(self._sinks.items())
        now = self._clock()
        for name, sink in sinks:
            try:
                families.add(sink, now)
            except Exception:  # one sink's trouble must not fail the scrape
                if name not in self._complained:
                    self._complained.add(name)
                    log.warning("sink %s: its metrics cannot be read", name, exc_info=True)
        return families.all()


class _Families:
    """The families of one collection, filled sink by sink (a sink's figures are all read
    before any is added, so a sink that fails halfway adds none)."""

    def __init__(self) -> None:
        sink = ["sink"]
        self.backlog = GaugeMetricFamily(
            "plantd_sink_backlog_samples",
            "Samples queued on disk, not yet delivered upstream",
            labels=sink,
        )
        self.oldest = GaugeMetricFamily(
            "plantd_sink_oldest_sample_age_seconds",
            "Seconds since the oldest sample still queued was committed to the queue (0 when "
            "the queue is empty)",
            labels=sink,
        )
        self.delivered = CounterMetricFamily(
            "plantd_sink_delivered",
            "Samples the upstream acknowledged (kept in the queue file across restarts)",
            labels=sink,
        )
        self.dropped = CounterMetricFamily(
            "plantd_sink_dropped",
            "Samples dropped undelivered, by reason (full, expired, commit_failed)",
            labels=["sink", "reason"],
        )
        self.connected = GaugeMetricFamily(
            "plantd_sink_connected", "1 if the upstream is connected, else 0", labels=sink
        )
        self.backlog_events = GaugeMetricFamily(
            "plantd_sink_backlog_events",
            "Event records queued on disk, not yet delivered upstream",
            labels=sink,
        )
        self.events_delivered = CounterMetricFamily(
            "plantd_sink_events_delivered",
            "Event records the upstream acknowledged (kept in the queue file across restarts)",
            labels=sink,
        )
        self.events_dropped = CounterMetricFamily(
            "plantd_sink_events_dropped",
            "Event records dropped undelivered (queue full or too old, or while commits failed)",
            labels=sink,
        )
        self.events_missed = CounterMetricFamily(
            "plantd_sink_events_missed",
            "Event records never received: seqs of an event topic not found in the alarm history",
            labels=sink,
        )
        self.queue_bytes = GaugeMetricFamily(
            "plantd_sink_queue_bytes", "Bytes of the queued entries (as max_bytes counts them)",
            labels=sink,
        )  # fmt: skip

    def all(self) -> list[Metric]:
        return [
            self.backlog,
            self.oldest,
            self.delivered,
            self.dropped,
            self.connected,
            self.queue_bytes,
            self.backlog_events,
            self.events_delivered,
            self.events_dropped,
            self.events_missed,
        ]

    def add(self, sink: Sink, now: float) -> None:
        name = sink.name
        queue = sink.queue
        length, size, oldest = queue.length, queue.bytes, queue.oldest
        delivered = queue.counters["delivered"]
        events = queue.events
        counters = queue.counters
        events_delivered, events_dropped, events_missed = (
            counters["events_delivered"],
            counters["events_dropped"],
            counters["events_missed"],
        )
        dropped = dict(sink.dropped)
        connected = sink.upstream_connected
        age = max(0.0, now - oldest) if length > 0 and oldest > 0 else 0.0

        self.backlog.add_metric([name], length)
        self.oldest.add_metric([name], age)
        self.delivered.add_metric([name], delivered)
        for reason, count in dropped.items():
            self.dropped.add_metric([name, reason], count)
        self.connected.add_metric([name], 1 if connected else 0)
        self.queue_bytes.add_metric([name], size)
        self.backlog_events.add_metric([name], events)
        self.events_delivered.add_metric([name], events_delivered)
        self.events_dropped.add_metric([name], events_dropped)
        self.events_missed.add_metric([name], events_missed)


COLLECTOR = SinkCollector()
REGISTRY.register(COLLECTOR)


def track(sink: Sink) -> None:
    """Report ``sink``'s figures in :data:`~plantd.telemetry.REGISTRY` (until untracked)."""
    COLLECTOR.track(sink)


def untrack(sink: Sink) -> None:
    """Stop reporting ``sink``'s figures."""
    COLLECTOR.untrack(sink)
