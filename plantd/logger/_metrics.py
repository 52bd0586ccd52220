"""Every process's metrics in one place: the snapshots published on ``metrics.<source>``, kept
and merged into one registry that ``/metrics`` serves (docs/observability.md).

Each plantd process publishes, every ``metrics.interval``, a record
``{"source", "time", "interval", "text"}`` whose text is its registry in the Prometheus text
format (or OpenMetrics). :class:`MetricsHub` keeps the last few snapshots of every source,
parsed when they arrive, with their arrival time on the hub's clock. When scraped, its
collector merges the families of every *fresh* source by name, adding ``source=<source>`` to
each sample, so one family holds e.g. ``plantd_log_records_published_total`` of every process,
the sources kept apart by their label. It adds, per source:

- ``plantd_process_up`` — 1 while the snapshot is at most 3 × its interval old, else 0;
- ``plantd_metrics_snapshot_age_seconds``.

A stale source's series drop out at once (a dead process's last counters are not current);
its ``up`` stays, as 0, for :data:`FORGET_AFTER`, then it goes too. The logger's own registry
(``plantd.telemetry.REGISTRY``) and the appliance's numbers (:mod:`plantd.logger._system`) are
read live under the source ``logger``; the logger's own snapshot coming back over the bus is
ignored.

A snapshot that cannot be read (not a record, no text, text the parsers refuse) is counted in
:attr:`MetricsHub.malformed` (exposed as ``plantd_logger_metrics_malformed_total``) and logged
the first time per source; the source's previous snapshot stays. A hub never dies of what a
publisher sent.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from plantd.bus import BusMessage, BusSubscriber, Record
from plantd.clock import SYSTEM_CLOCK, Clock
from plantd.errors import PlantdError
from plantd.logger._system import SystemCollector
from plantd.telemetry import REGISTRY

__all__ = [
    "FORGET_AFTER",
    "FRESH_INTERVALS",
    "KEEP",
    "LOGGER_SOURCE",
    "MalformedSnapshot",
    "MetricsHub",
    "Snapshot",
    "parse_snapshot",
]

log = logging.getLogger(__name__)

LOGGER_SOURCE = "logger"
FRESH_INTERVALS = 3.0  # a snapshot is fresh while at most this many intervals old
FORGET_AFTER = 600.0  # seconds after which a silent source's plantd_process_up goes too
KEEP = 4  # snapshots kept per source (the health rules compare the last few)
_PREFIX = "metrics."
_SOURCE = "source"
_WITH_CREATED = ("counter", "histogram", "summary", "gaugehistogram")
_HUB_FAMILIES = ("plantd_process_up", "plantd_metrics_snapshot_age_seconds")

SampleIndex = Mapping[str, tuple[tuple[Mapping[str, str], float], ...]]


class MalformedSnapshot(PlantdError):
    """A ``metrics.<source>`` message the hub cannot read; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One source's metrics as they arrived.

    ``arrived`` is on the hub clock's monotonic scale; ``sent`` is the publisher's wall time
    (``time``); ``samples`` indexes every sample by its name (``plantd_x_total``, a
    histogram's ``…_bucket``) for the health rules.
    """

    source: str
    arrived: float
    interval: float
    sent: float | None
    families: tuple[Metric, ...]
    samples: SampleIndex = field(repr=False)

    def age(self, now: float) -> float:
        return max(0.0, now - self.arrived)

    def fresh(self, now: float) -> bool:
        return self.age(now) <= FRESH_INTERVALS * self.interval

    def series(self, name: str, **labels: str) -> list[tuple[Mapping[str, str], float]]:
        """The samples named ``name`` whose labels include ``labels``."""
        return [
            (have, value)
            for have, value in self.samples.get(name, ())
            if all(have.get(key) == wanted for key, wanted in labels.items())
        ]

    def value(self, name: str, **labels: str) -> float | None:
        """The sum of :meth:`series` (None if there is none)."""
        found = self.series(name, **labels)
        return math.fsum(value for _, value in found) if found else None


def parse_snapshot(
    source: str, fields: Mapping[str, Any], *, arrived: float, default_interval: float
) -> Snapshot:
    """Read a ``metrics.<source>`` record; raises :class:`MalformedSnapshot` saying why not.

    The topic names the source (the bus policy lets a process publish only its own); a
    missing or unusable ``interval`` is ``default_interval`` (``metrics.interval``).
    """
    text = fields.get("text")
    if not isinstance(text, str):
        raise MalformedSnapshot(f"{source}: the record has no 'text' string")
    interval = fields.get("interval")
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
        interval = default_interval
    sent = fields.get("time")
    if isinstance(sent, bool) or not isinstance(sent, (int, float)):
        sent = None
    families = _parse(source, text)
    index: dict[str, list[tuple[Mapping[str, str], float]]] = {}
    for family in families:
        for sample in family.samples:
            index.setdefault(sample.name, []).append((sample.labels, float(sample.value)))
    return Snapshot(
        source,
        arrived,
        float(interval),
        None if sent is None else float(sent),
        tuple(families),
        {name: tuple(found) for name, found in index.items()},
    )


def _parse(source: str, text: str) -> list[Metric]:
    """The families of ``text``: OpenMetrics when it ends with ``# EOF``, else the Prometheus
    text format, whose separate ``<name>_created`` gauges go back into their family."""
    is_openmetrics = text.rstrip().endswith("# EOF")
    try:
        if is_openmetrics:
            return list(openmetrics_families(text))  # type: ignore[no-untyped-call]
        families = list(text_string_to_metric_families(text))
    except Exception as exc:  # the parsers raise ValueError, and worse on some inputs
        raise MalformedSnapshot(
            f"{source}: the metrics text does not parse: {type(exc).__name__}: {exc}"
        ) from None
    by_name = {family.name: family for family in families}
    kept: list[Metric] = []
    for family in families:
        base = by_name.get(family.name.removesuffix("_created"))
        if (
            family.type == "gauge"
            and family.name.endswith("_created")
            and base is not None
            and base.type in _WITH_CREATED
        ):
            base.samples.extend(family.samples)
        else:
            kept.append(family)
    return kept


class MetricsHub:
    """The latest snapshots of every source, and :attr:`registry`, their merge.

    Fed by :meth:`consume` (a bus subscriber on ``metrics.``) or :meth:`receive`; read from
    any thread (the HTTP server's): a lock guards the snapshots.
    """

    def __init__(
        self,
        *,
        default_interval: float,
        clock: Clock = SYSTEM_CLOCK,
        own: CollectorRegistry | None = REGISTRY,
        system: SystemCollector | None = None,
        own_source: str = LOGGER_SOURCE,
    ) -> None:
        self.default_interval = default_interval
        self.clock = clock
        self.own = own
        self.system = system
        self.own_source = own_source
        self.malformed = 0
        self.conflicts = 0
        self._history: dict[str, collections.deque[Snapshot]] = {}
        self._complained: set[str] = set()
        self._lock = threading.Lock()
        self.started = clock.monotonic()  # health waits a little for every source's first word
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_HubCollector(self))

    # -- intake ------------------------------------------------------------------------------

    async def consume(self, subscriber: BusSubscriber) -> None:
        """Keep every snapshot ``subscriber`` (subscribed to ``metrics.``) receives, until
        cancelled."""
        while True:
            self.receive(await subscriber.receive())

    def receive(self, message: BusMessage) -> Snapshot | None:
        """Keep the snapshot a ``metrics.<source>`` message carries (None: not kept)."""
        source = message.topic.removeprefix(_PREFIX)
        if not message.topic.startswith(_PREFIX) or not source or source == self.own_source:
            return None
        if not isinstance(message.payload, Record):
            self._malformed(source, f"{source}: a sample, not a metrics record")
            return None
        return self.add(source, message.payload.fields)

    def add(self, source: str, fields: Mapping[str, Any]) -> Snapshot | None:
        """Parse and keep ``source``'s snapshot ``fields``, arrived now."""
        try:
            snapshot = parse_snapshot(
                source,
                fields,
                arrived=self.clock.monotonic(),
                default_interval=self.default_interval,
            )
        except MalformedSnapshot as exc:
            self._malformed(source, str(exc))
            return None
        with self._lock:
            history = self._history.get(source)
            if history is None:
                history = self._history[source] = collections.deque(maxlen=KEEP)
            history.append(snapshot)
        self._complained.discard(source)  # a later bad one is news again
        return snapshot

    def _malformed(self, source: str, why: str) -> None:
        self.malformed += 1
        if source not in self._complained:
            self._complained.add(source)
            log.warning("ignored a metrics snapshot (logged once per source): %s", why)

    # -- reading -----------------------------------------------------------------------------

    def now(self) -> float:
        """The hub's monotonic time, the scale of :attr:`Snapshot.arrived`."""
        return self.clock.monotonic()

    def history(self) -> dict[str, list[Snapshot]]:
        """Every source seen since the hub started and its last snapshots, oldest first."""
        with self._lock:
            return {source: list(history) for source, history in self._history.items()}

    def latest(self, source: str) -> Snapshot | None:
        with self._lock:
            history = self._history.get(source)
            return history[-1] if history else None

    def own_families(self) -> Iterator[Metric]:
        """The logger's own metrics, read now."""
        if self.own is not None:
            yield from self.own.collect()
        if self.system is not None:
            yield from self.system.collect()
        malformed = CounterMetricFamily(
            "plantd_logger_metrics_malformed",
            "Metrics snapshots plantd-logger could not read.",
        )
        malformed.add_metric([], self.malformed)
        yield malformed

    def collect(self) -> Iterator[Metric]:
        """The merged families (see the module's docstring)."""
        now = self.now()
        up = GaugeMetricFamily(
            "plantd_process_up",
            "1 while the source's metrics snapshot is fresh (at most 3 intervals old), else 0.",
            labels=[_SOURCE],
        )
        age = GaugeMetricFamily(
            "plantd_metrics_snapshot_age_seconds",
            "Seconds since the source's last metrics snapshot arrived.",
            labels=[_SOURCE],
        )
        merged: dict[str, Metric] = {}
        for source, history in sorted(self.history().items()):
            snapshot = history[-1]
            seconds = snapshot.age(now)
            if seconds > FORGET_AFTER:
                continue
            fresh = snapshot.fresh(now)
            up.add_metric([source], 1.0 if fresh else 0.0)
            age.add_metric([source], seconds)
            if fresh:
                self._merge(merged, source, snapshot.families)
        up.add_metric([self.own_source], 1.0)
        age.add_metric([self.own_source], 0.0)
        self._merge(merged, self.own_source, self.own_families())
        yield up
        yield age
        yield from merged.values()

    def _merge(self, merged: dict[str, Metric], source: str, families: Iterable[Metric]) -> None:
        for family in families:
            if family.name in _HUB_FAMILIES:
                continue  # the hub's own, per source; a process does not report them
            target = merged.get(family.name)
            if target is None:
                target = merged[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            elif target.type != family.type:
                self.conflicts += 1
                key = f"{family.name}/{source}"
                if key not in self._complained:
                    self._complained.add(key)
                    log.warning(
                        "%s reports %s as a %s, another source as a %s: left out",
                        source,
                        family.name,
                        family.type,
                        target.type,
                    )
                continue
            target.samples.extend(
                sample._replace(labels={**sample.labels, _SOURCE: source})
                for sample in family.samples
            )


class _HubCollector(Collector):
    def __init__(self, hub: MetricsHub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        return self.hub.collect()
