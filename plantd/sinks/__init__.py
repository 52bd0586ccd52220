"""Upstream sinks: store-and-forward from the bus to an upstream, one process per
``sinks.d/NAME.yaml`` (``plant sink run NAME``).

Each kind of upstream is a :class:`SinkKind` in the ``plantd.sinks`` entry-point group:
``mqtt`` (plain or Sparkplug B, :mod:`plantd.sinks.mqtt`) and ``postgres``
(PostgreSQL/TimescaleDB, :mod:`plantd.sinks.postgres`) come with plantd; another needs no
edit here. See ``docs/sinks.md`` ("Writing a sink").
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from plantd.config import PlantdConfig
from plantd.sinks._config import (
    SINKS_DIR,
    QueueConfig,
    RepairConfig,
    SinkConfig,
    list_sinks,
    load_sink,
    sink_path,
)
from plantd.sinks._forwarder import Sink
from plantd.sinks._kind import SinkKind, UpstreamContext
from plantd.sinks._lock import ALREADY_RUNNING, SinkAlreadyRunning
from plantd.sinks._queue import DiskQueue, Gap, Intake
from plantd.sinks._registry import ENTRY_POINT_GROUP, available_sink_kinds, load_sink_kind
from plantd.sinks._upstream import (
    Outgoing,
    OutgoingEvent,
    Upstream,
    UpstreamUnavailable,
    event_json,
    split_topic,
)

if TYPE_CHECKING:  # the built-in kinds' config types, still importable from here (below)
    from plantd.sinks.mqtt import MqttConfig, MqttSinkConfig, SparkplugConfig, TlsConfig, WillConfig
    from plantd.sinks.postgres import PostgresConfig, PostgresSinkConfig

__all__ = [
    "ALREADY_RUNNING",
    "ENTRY_POINT_GROUP",
    "SINKS_DIR",
    "DiskQueue",
    "Gap",
    "Intake",
    "MqttConfig",
    "MqttSinkConfig",
    "Outgoing",
    "OutgoingEvent",
    "PostgresConfig",
    "PostgresSinkConfig",
    "QueueConfig",
    "RepairConfig",
    "Sink",
    "SinkAlreadyRunning",
    "SinkConfig",
    "SinkKind",
    "SparkplugConfig",
    "TlsConfig",
    "Upstream",
    "UpstreamContext",
    "UpstreamUnavailable",
    "WillConfig",
    "available_sink_kinds",
    "event_json",
    "list_sinks",
    "load_sink",
    "load_sink_kind",
    "run_sink",
    "sink_path",
    "split_topic",
]

# Older import paths: the built-in kinds' config types, imported from their packages only when
# asked for, so that the core itself imports no kind until a sink file names it.
_MOVED = {
    "MqttConfig": "plantd.sinks.mqtt",
    "MqttSinkConfig": "plantd.sinks.mqtt",
    "SparkplugConfig": "plantd.sinks.mqtt",
    "TlsConfig": "plantd.sinks.mqtt",
    "WillConfig": "plantd.sinks.mqtt",
    "PostgresConfig": "plantd.sinks.postgres",
    "PostgresSinkConfig": "plantd.sinks.postgres",
}


def __getattr__(name: str) -> Any:
    package = _MOVED.get(name)
    if package is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(package), name)


log = logging.getLogger(__name__)


async def run_sink(
    config: PlantdConfig, name: str, environ: Mapping[str, str] | None = None
) -> None:
    """Run sink ``name`` (``sinks.d/NAME.yaml``) until SIGTERM/SIGINT (telling systemd when it
    serves). :class:`SinkAlreadyRunning` if another process runs it (exit with its
    ``exit_status``). SIGHUP re-reads the sink file and applies it, keeping the queue."""
    from plantd.runtime import run_until_signal

    # Past RLIMIT_FSIZE the kernel would kill the sink with SIGXFSZ; ignored, the write fails
    # with EFBIG and the sink goes on as with a full disk (docs/sinks.md, "Errors").
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    sink = Sink(config, load_sink(config, name))
    log.info(
        "sink %s (%s): topics %s, events %s, queue %s (%d entries waiting)",
        name,
        sink.sink.type,
        ", ".join(sink.sink.topics),
        ", ".join(sink.events) or "none",
        sink.queue.path,
        sink.queue.length,
    )
    await run_until_signal(
        [sink],
        environ=environ,
        description=f"sink {name}: {sink.sink.type} upstream",
        reload=sink.reload_file,  # SIGHUP: sinks.d/NAME.yaml again (plantd.sinks._reload)
    )
