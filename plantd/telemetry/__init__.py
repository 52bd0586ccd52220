"""What every plantd process reports about itself: metrics and log records, on the bus.

Each process keeps its metrics in :data:`REGISTRY` (``prometheus_client`` metrics, declared
by the package that updates them, in its own ``_metrics`` module) and publishes

- a snapshot of them every ``metrics.interval`` on ``metrics.<source>``: a record
  ``{"source", "time", "interval", "text"}``, ``text`` in the Prometheus text format
  (``prometheus_client.generate_latest``; read it with ``prometheus_client.parser``);
- its log records at ``logging.publish`` and above on ``log.<source>.<level>``: time, level,
  source, logger, message, the record's structured fields (``extra=``) and ``exc``.

:func:`start_telemetry` does both, from a thread of its own (``_publisher``).

``plantd-logger`` keeps the records and serves every process's metrics on one OpenMetrics
endpoint (docs/observability.md). The ``source`` names the process: ``broker``, ``state``,
``historian``, ``logger``, ``modules`` (the module host), ``module.<name>`` (an isolated
module; the host publishes each module's records as ``module.<name>`` too) and
``sink.<name>``.

Metric names are ``plantd_<part>_<what>[_<unit>]``, with ``_total`` on counters, and the
labels a part needs (``module``, ``group``, ``sink``, ``service``, ``code``…); the aggregator
adds ``source``. The list of every metric is in docs/observability.md.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

__all__ = [
    "LEVELS",
    "REGISTRY",
    "BusLogHandler",
    "OpenDatabases",
    "Telemetry",
    "database_bytes",
    "log_topic",
    "metrics_topic",
    "source_of",
    "start_telemetry",
]

# One registry per process, shared by every part of it: a test that runs several parts in one
# process sees their sums, and reads them back with REGISTRY.get_sample_value(...).
REGISTRY: CollectorRegistry = CollectorRegistry(auto_describe=True)

LEVELS = ("debug", "info", "warning", "error", "critical")


def source_of(principal: str) -> str:
    """The source a principal's process reports as: ``service.state`` → ``state``,
    ``module.boiler`` → ``module.boiler``, ``broker`` → ``broker``."""
    kind, _, name = principal.partition(".")
    return name if kind == "service" else principal


def log_topic(source: str, level: str) -> str:
    """``log.<source>.<level>``, ``level`` one of :data:`LEVELS`."""
    return f"log.{source}.{level}"


def metrics_topic(source: str) -> str:
    """``metrics.<source>``."""
    return f"metrics.{source}"


# After REGISTRY and the topics, which they use.
from plantd.telemetry._databases import OpenDatabases, database_bytes  # noqa: E402
from plantd.telemetry._handler import BusLogHandler  # noqa: E402
from plantd.telemetry._publisher import Telemetry, start_telemetry  # noqa: E402
