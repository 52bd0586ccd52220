"""The historian's metrics, in :data:`plantd.telemetry.REGISTRY` (docs/observability.md).

The unit observed is the batch: the writer counts the samples a batch stored and observes its
duration once per commit, and the intake adds the samples lost on the bus once per batch it
hands over (its :class:`~plantd.bus.GapTracker` counts them in a plain int as samples arrive),
never per sample. The database's size is read at collection time over every open store
(:class:`plantd.telemetry.OpenDatabases`; a store calls :func:`track` when it opens and
:func:`untrack` when it closes).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from plantd.telemetry import REGISTRY, OpenDatabases, database_bytes

__all__ = [
    "BATCH_SECONDS",
    "DATABASE_BYTES",
    "GAPS",
    "SAMPLES",
    "database_bytes",
    "track",
    "untrack",
]

SAMPLES = Counter(
    "plantd_historian_samples",
    "Samples stored (a sample that came again, same point, time, epoch and seq, once).",
    registry=REGISTRY,
)
# A batch of a few samples on a tmpfs takes well under a millisecond; thousands on an SD card,
# with a rollup merge, can take seconds (and more than batch_interval means it falls behind).
BATCH_SECONDS = Histogram(
    "plantd_historian_batch_seconds",
    "Duration of one batch write: its transaction and fsync, with a rollup merge if one was due.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
DATABASE_BYTES = Gauge(
    "plantd_historian_database_bytes",
    "Size of the history database on disk: the file and its WAL (every open store).",
    registry=REGISTRY,
)
GAPS = Counter(
    "plantd_historian_gaps",
    "Samples lost on the bus: missing sequence numbers in what the historian received.",
    registry=REGISTRY,
)


# Read at collection time, summed over every open store (plantd.telemetry's OpenDatabases).
_databases = OpenDatabases(DATABASE_BYTES)
track = _databases.track  # when a store opens
untrack = _databases.untrack  # when it closes
