"""The modules' metrics (docs/observability.md, "Modules"), from what the runtime counts anyway.

The poll loop is the hot path, so nothing here is counted per sample: a runtime already keeps
its polls, overruns, failures and publish counters in plain ints (its ``status``), and the
driver keeps its own figures (``driver.status()``). One process-wide :class:`ModuleCollector`
reads them when the registry is collected, for every runtime :func:`track` was told about
(a runtime tracks itself while :meth:`~plantd.module._runtime.ModuleRuntime.run` runs, so a
host's modules come and go with their runs, and a restarted module's counters start again from
zero, which Prometheus reads as a counter reset).

The one metric observed as it happens is ``plantd_module_request_seconds``: once per device
request, by drivers that offer ``observe_requests`` (see :mod:`plantd.module._driver`; the
Modbus driver times every attempt it puts on the line).

Collection may run on another thread than the runtime's event loop: the collector copies what
it reads (a dict copied by one C call is consistent under the GIL), and a module whose figures
cannot be read (mid-restart, a driver whose ``status()`` raises) is left out of that scrape —
logged once — rather than failing it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from plantd.bus import Quality
from plantd.telemetry import REGISTRY

if TYPE_CHECKING:
    from plantd.module._runtime import ModuleRuntime

__all__ = [
    "COLLECTOR",
    "ERROR_KINDS",
    "REQUEST_SECONDS",
    "ModuleCollector",
    "request_observer",
    "track",
    "untrack",
]

log = logging.getLogger(__name__)

ERROR_KINDS = ("timeout", "connection", "protocol", "device", "decode", "other")
"""The ``kind`` label of ``plantd_module_errors_total``."""

# Counters a driver may report in its status, and the kind of error each counts (Modbus: a
# request that got no answer, an exception answer, an answer that does not fit the question).
_DRIVER_ERRORS = {
    "no_answer": "timeout",
    "refused": "device",
    "bad_answers": "protocol",
    "decode_errors": "decode",
}

# A driver's unit states (Modbus breakers: _breaker.BreakerState values) as circuit states.
_CIRCUIT = {"ok": "closed", "quarantined": "open", "probing": "half_open"}
_CIRCUIT_STATES = ("closed", "open", "half_open")

REQUEST_SECONDS = Histogram(
    "plantd_module_request_seconds",
    "Device request round-trip (every attempt a driver puts on the wire; a timeout counts its "
    "timeout)",
    ["module"],
    # Modbus TCP answers in about a millisecond, RTU at 9600 Bd in tens; timeouts are ~0.1-3 s.
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)


def request_observer(module: str) -> Any:
    """The callable a driver calls with each request's seconds, for module ``module``."""
    return REQUEST_SECONDS.labels(module=module).observe


class ModuleCollector(Collector):
    """The modules' figures at collection time, for every tracked runtime (see the module doc)."""

    def __init__(self) -> None:
        self._runtimes: dict[str, ModuleRuntime] = {}
        self._lock = threading.Lock()
        self._complained: set[str] = set()  # modules whose figures failed once (logged once)

    def track(self, runtime: ModuleRuntime) -> None:
        """Report ``runtime``'s figures (replacing an earlier run of the same module)."""
        with self._lock:
            self._runtimes[runtime.module.name] = runtime

    def untrack(self, runtime: ModuleRuntime) -> None:
        """Stop reporting ``runtime`` (a later run of the same module stays)."""
        with self._lock:
            if self._runtimes.get(runtime.module.name) is runtime:
                del self._runtimes[runtime.module.name]

    def describe(self) -> Iterable[Metric]:
        return _Families().all()

    def collect(self) -> Iterable[Metric]:
        families = _Families()
        with self._lock:
            runtimes = list(self._runtimes.items())
        for name, runtime in runtimes:
            try:
                families.add(runtime)
            except Exception:  # one module's trouble must not fail the scrape
                if name not in self._complained:
                    self._complained.add(name)
                    log.warning("module %s: its metrics cannot be read", name, exc_info=True)
        return families.all()


class _Families:
    """The families of one collection, filled module by module (all of a module's samples are
    computed before any is added, so a module that fails halfway adds none)."""

    def __init__(self) -> None:
        group = ["module", "group"]
        self.polls = CounterMetricFamily("plantd_module_polls", "Polls of a group", labels=group)
        self.late = CounterMetricFamily(
            "plantd_module_late_polls",
            "Poll deadlines missed because a poll overran (the overruns of status)",
            labels=group,
        )
        self.failures = CounterMetricFamily(
            "plantd_module_poll_failures", "Driver failures of a group's read", labels=group
        )
        self.errors = CounterMetricFamily(
            "plantd_module_errors",
            "Errors by kind: failed driver calls, and failed device requests a driver counts",
            labels=["module", "kind"],
        )
        self.requests = GaugeMetricFamily(
            "plantd_module_requests_per_poll",
            "Device requests one poll of the group takes",
            labels=group,
        )
        self.published = CounterMetricFamily(
            "plantd_module_samples_published", "Samples published on the bus", labels=["module"]
        )
        self.connected = GaugeMetricFamily(
            "plantd_module_connected", "1 if the driver is connected, else 0", labels=["module"]
        )
        self.points = GaugeMetricFamily("plantd_module_points", "Points", labels=["module"])
        self.bad = GaugeMetricFamily(
            "plantd_module_bad_points", "Points whose last reading is bad", labels=["module"]
        )
        self.quarantined = GaugeMetricFamily(
            "plantd_module_units_quarantined",
            "Units the driver's circuit breaker holds back (quarantined or being probed)",
            labels=["module"],
        )
        self.circuit = GaugeMetricFamily(
            "plantd_module_unit_circuit_state",
            "1 for the unit's circuit state (closed, open, half_open), else 0",
            labels=["module", "unit", "state"],
        )

    def all(self) -> list[Metric]:
        return [
            self.polls,
            self.late,
            self.failures,
            self.errors,
            self.requests,
            self.published,
            self.connected,
            self.points,
            self.bad,
            self.quarantined,
            self.circuit,
        ]

    def add(self, runtime: ModuleRuntime) -> None:
        name = runtime.module.name
        groups = [
            (group, stats.schedule.polls, stats.schedule.overruns, stats.failures)
            for group, stats in list(runtime.stats.items())
        ]
        errors = dict(runtime.supervisor.errors)
        table = runtime.table
        last = list(table.last.values())
        bad = sum(1 for value in last if value.quality is Quality.BAD)
        driver = _driver_status(runtime)
        for key, kind in _DRIVER_ERRORS.items():
            count = driver.get(key)
            if isinstance(count, int) and not isinstance(count, bool):
                errors[kind] = errors.get(kind, 0) + count
        requests = _ints(driver.get("requests_per_cycle"))
        units = _unit_states(driver.get("units"))

        for group, polls, overruns, failures in groups:
            self.polls.add_metric([name, group], polls)
            self.late.add_metric([name, group], overruns)
            self.failures.add_metric([name, group], failures)
        for kind in ERROR_KINDS:
            self.errors.add_metric([name, kind], errors.get(kind, 0))
        for group, count in requests.items():
            self.requests.add_metric([name, group], count)
        self.published.add_metric([name], table.published)
        self.connected.add_metric([name], 1 if runtime.connected else 0)
        self.points.add_metric([name], len(table.points))
        self.bad.add_metric([name], bad)
        if units is not None:
            self.quarantined.add_metric([name], sum(s != "closed" for s in units.values()))
            for unit, state in units.items():
                for each in _CIRCUIT_STATES:
                    self.circuit.add_metric([name, unit, each], 1 if each == state else 0)


def _driver_status(runtime: ModuleRuntime) -> Mapping[str, Any]:
    """The driver's status; empty if it cannot give one now (the rest of the module counts)."""
    try:
        status = runtime.driver.status()
    except Exception:  # a driver's status on another thread, or mid-restart: skip its part
        log.debug("module %s: driver status unavailable", runtime.module.name, exc_info=True)
        return {}
    return status if isinstance(status, Mapping) else {}


def _ints(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}


def _unit_states(value: Any) -> dict[str, str] | None:
    """``{unit: closed|open|half_open}`` from a driver's ``units`` (None: it has no units)."""
    if not isinstance(value, Mapping):
        return None
    states: dict[str, str] = {}
    for unit, entry in value.items():
        state = entry.get("state") if isinstance(entry, Mapping) else None
        if state in _CIRCUIT:
            states[str(unit)] = _CIRCUIT[state]
    return states


COLLECTOR = ModuleCollector()
REGISTRY.register(COLLECTOR)


def track(runtime: ModuleRuntime) -> None:
    """Report ``runtime``'s figures in :data:`~plantd.telemetry.REGISTRY` (until untracked)."""
    COLLECTOR.track(runtime)


def untrack(runtime: ModuleRuntime) -> None:
    """Stop reporting ``runtime``'s figures."""
    COLLECTOR.untrack(runtime)
