"""The broker's metrics (``plantd_broker_*``, ``plantd_bus_*``; docs/observability.md), read
from the counts the routing loop and the bus forwarder already keep.

The routing loop is the hot path: it increments plain ints and per-service dicts in the sans-IO
core (:class:`~plantd.mdp.Broker`: ``counters``, ``requests_by_service``,
``replies_by_service``, ``errors``) and never touches a ``prometheus_client`` metric. One
process-wide collector, registered in :data:`plantd.telemetry.REGISTRY` once, reads them when
the registry is collected, from the telemetry thread while the loop runs: it only reads ints and
copies dicts (a copy of a dict keyed by bytes or str runs in C, under the GIL, so the loop
cannot change it half-way; a RuntimeError is retried all the same).

Several brokers may live in one process (tests): each is :func:`watch_broker`-ed when it starts
and :func:`forget_broker`-ed when it stops, and the metrics are their sums. Counts of brokers
that stopped (or were dropped without being forgotten) are kept, so counters never go back;
gauges (queues, workers) are those of the live brokers. Nothing is reported by a process that
never ran a broker.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from plantd.mdp import Broker, BrokerCounters
from plantd.mdp._state import Service
from plantd.telemetry import REGISTRY

__all__ = [
    "COLLECTOR",
    "BrokerCollector",
    "forget_broker",
    "forget_bus",
    "watch_broker",
    "watch_bus",
]

_K = TypeVar("_K")
_ERROR_PREFIX = "broker."


class BusCounts(Protocol):
    """What the collector asks of the bus forwarder (:class:`~plantd.broker.BusProxy`)."""

    def counts(self) -> tuple[int, int]:
        """Messages forwarded and publications refused, since it started."""
        ...


@dataclass
class _Tally:
    """The counters of one broker: the very objects its core increments."""

    counters: BrokerCounters
    requests: dict[bytes, int]
    replies: dict[bytes, int]
    errors: dict[str, int]


@dataclass
class _Sums:
    requests: Counter[bytes] = field(default_factory=Counter)
    replies: Counter[bytes] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    malformed: int = 0
    heartbeats_sent: int = 0
    heartbeats_received: int = 0

    def add(self, tally: _Tally) -> None:
        self.requests.update(_copy(tally.requests))
        self.replies.update(_copy(tally.replies))
        self.errors.update(_copy(tally.errors))
        counters = tally.counters
        self.malformed += counters.malformed
        self.heartbeats_sent += counters.heartbeats_sent
        self.heartbeats_received += counters.heartbeats_received

    def plus(self, other: _Sums) -> _Sums:
        total = _Sums(self.requests + other.requests, self.replies + other.replies)
        total.errors = self.errors + other.errors
        total.malformed = self.malformed + other.malformed
        total.heartbeats_sent = self.heartbeats_sent + other.heartbeats_sent
        total.heartbeats_received = self.heartbeats_received + other.heartbeats_received
        return total


def _copy(counts: dict[_K, int]) -> dict[_K, int]:
    """A copy of a dict the routing loop may be adding to (see the module docstring)."""
    for _ in range(10):
        try:
            return dict(counts)
        except RuntimeError:  # changed size during the copy: try again
            continue
    return {}


class BrokerCollector(Collector):
    """Sums the counts of every broker and bus of the process (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Live brokers: a weak reference to the core (for its queues and workers) and its
        # tallies, kept strongly so that a core dropped without forget_broker still counts.
        self._brokers: dict[int, tuple[weakref.ref[Broker], _Tally]] = {}
        self._retired = _Sums()
        self._buses: dict[int, BusCounts] = {}
        self._retired_bus = (0, 0)
        self._seen_broker = False
        self._seen_bus = False

    # -- brokers and buses come and go ------------------------------------------------------

    def watch_broker(self, core: Broker) -> None:
        tally = _Tally(
            core.counters, core.requests_by_service, core.replies_by_service, core.errors
        )
        with self._lock:
            self._retire_dead()
            self._brokers[id(core)] = (weakref.ref(core), tally)
            self._seen_broker = True

    def forget_broker(self, core: Broker) -> None:
        with self._lock:
            entry = self._brokers.pop(id(core), None)
            if entry is not None:
                self._retired.add(entry[1])

    def watch_bus(self, bus: BusCounts) -> None:
        with self._lock:
            self._buses[id(bus)] = bus
            self._seen_bus = True

    def forget_bus(self, bus: BusCounts, final: tuple[int, int]) -> None:
        """``final``: the bus's last counts, read as it stopped."""
        with self._lock:
            if self._buses.pop(id(bus), None) is not None:
                forwarded, refused = self._retired_bus
                self._retired_bus = (forwarded + final[0], refused + final[1])

    def _retire_dead(self) -> None:
        for key, (ref, tally) in list(self._brokers.items()):
            if ref() is None:
                del self._brokers[key]
                self._retired.add(tally)

    # -- collection -------------------------------------------------------------------------

    def describe(self) -> Iterable[Metric]:
        return list(_families(_Sums(), [], (0, 0), broker=True, bus=True))

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            self._retire_dead()
            sums = _Sums().plus(self._retired)
            cores: list[Broker] = []
            for ref, tally in list(self._brokers.values()):
                sums.add(tally)
                core = ref()
                if core is not None:
                    cores.append(core)
            buses = list(self._buses.values())
            forwarded, refused = self._retired_bus
            seen_broker, seen_bus = self._seen_broker, self._seen_bus
        for bus in buses:  # outside the lock: a steerable bus answers over a socket
            more = bus.counts()
            forwarded, refused = forwarded + more[0], refused + more[1]
        return list(_families(sums, cores, (forwarded, refused), broker=seen_broker, bus=seen_bus))


def _families(
    sums: _Sums, cores: list[Broker], bus_counts: tuple[int, int], *, broker: bool, bus: bool
) -> Iterator[Metric]:
    if broker:
        yield _by_service(
            "plantd_broker_requests",
            "Requests received from clients, by service (mmi.* as-is)",
            sums.requests,
        )
        yield _by_service(
            "plantd_broker_replies",
            "Replies (FINAL) delivered to clients, by service",
            sums.replies,
        )
        errors = CounterMetricFamily(
            "plantd_broker_errors",
            "Requests the broker refused or failed (and malformed messages), by error code",
            labels=["code"],
        )
        for code, value in sorted(sums.errors.items()):
            errors.add_metric([code.removeprefix(_ERROR_PREFIX)], value)
        yield errors
        yield from _queues_and_workers(cores)
        yield CounterMetricFamily(
            "plantd_broker_malformed", "Malformed messages dropped", value=sums.malformed
        )
        heartbeats = CounterMetricFamily(
            "plantd_broker_heartbeats",
            "Heartbeats exchanged with workers",
            labels=["direction"],
        )
        heartbeats.add_metric(["sent"], sums.heartbeats_sent)
        heartbeats.add_metric(["received"], sums.heartbeats_received)
        yield heartbeats
    if bus:
        forwarded, refused = bus_counts
        yield CounterMetricFamily(
            "plantd_bus_messages_forwarded",
            "Bus messages forwarded from publishers to subscribers",
            value=forwarded,
        )
        yield CounterMetricFamily(
            "plantd_bus_refused", "Publications refused by policy", value=refused
        )


def _by_service(name: str, documentation: str, counts: Mapping[bytes, int]) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=["service"])
    for service, value in sorted(counts.items()):
        family.add_metric([service.decode("ascii", "replace")], value)
    return family


def _queues_and_workers(cores: list[Broker]) -> Iterator[Metric]:
    depth: Counter[str] = Counter()
    size: Counter[str] = Counter()
    idle: Counter[str] = Counter()
    busy: Counter[str] = Counter()
    for core in cores:
        for service in _services(core):
            label = service.label
            depth[label] += len(service.requests)
            size[label] += service.queued_bytes
            idle_now, registered = service.idle, service.workers
            idle[label] += idle_now
            busy[label] += max(0, registered - idle_now)
    queue_depth = GaugeMetricFamily(
        "plantd_broker_queue_depth", "Requests queued waiting for a worker", labels=["service"]
    )
    queue_bytes = GaugeMetricFamily(
        "plantd_broker_queue_bytes", "Body bytes of the queued requests", labels=["service"]
    )
    workers = GaugeMetricFamily(
        "plantd_broker_workers", "Workers registered, idle or busy", labels=["service", "state"]
    )
    for label in sorted(depth):
        queue_depth.add_metric([label], depth[label])
        queue_bytes.add_metric([label], size[label])
        workers.add_metric([label, "idle"], idle[label])
        workers.add_metric([label, "busy"], busy[label])
    yield queue_depth
    yield queue_bytes
    yield workers


def _services(core: Broker) -> list[Service]:
    for _ in range(10):
        try:
            return list(core.services.values())
        except RuntimeError:  # changed size during the copy: try again
            continue
    return []


COLLECTOR = BrokerCollector()
REGISTRY.register(COLLECTOR)


def watch_broker(core: Broker) -> None:
    """Report ``core``'s counts from now on (call when its routing loop starts)."""
    COLLECTOR.watch_broker(core)


def forget_broker(core: Broker) -> None:
    """``core`` stopped: keep its counts in the totals, drop its queues and workers."""
    COLLECTOR.forget_broker(core)


def watch_bus(bus: BusCounts) -> None:
    """Report ``bus``'s forwarded and refused counts from now on."""
    COLLECTOR.watch_bus(bus)


def forget_bus(bus: BusCounts, final: tuple[int, int]) -> None:
    """``bus`` stopped with ``final`` counts: keep them in the totals."""
    COLLECTOR.forget_bus(bus, final)
