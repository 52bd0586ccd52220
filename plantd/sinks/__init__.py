"""Upstream sinks: store-and-forward from the bus to MQTT (plain or Sparkplug B) and to
PostgreSQL/TimescaleDB, one process per ``sinks.d/NAME.yaml`` (``plant sink run NAME``).

See ``docs/sinks.md``.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Mapping

from plantd.config import PlantdConfig
from plantd.sinks._config import (
    SINKS_DIR,
    MqttConfig,
    MqttSinkConfig,
    PostgresConfig,
    PostgresSinkConfig,
    QueueConfig,
    RepairConfig,
    SinkConfig,
    SparkplugConfig,
    TlsConfig,
    WillConfig,
    list_sinks,
    load_sink,
    sink_path,
)
from plantd.sinks._forwarder import Sink
from plantd.sinks._lock import ALREADY_RUNNING, SinkAlreadyRunning
from plantd.sinks._queue import DiskQueue, Gap, Intake
from plantd.sinks._upstream import Outgoing, Upstream, UpstreamUnavailable

__all__ = [
    "ALREADY_RUNNING",
    "SINKS_DIR",
    "DiskQueue",
    "Gap",
    "Intake",
    "MqttConfig",
    "MqttSinkConfig",
    "Outgoing",
    "PostgresConfig",
    "PostgresSinkConfig",
    "QueueConfig",
    "RepairConfig",
    "Sink",
    "SinkAlreadyRunning",
    "SinkConfig",
    "SparkplugConfig",
    "TlsConfig",
    "Upstream",
    "UpstreamUnavailable",
    "WillConfig",
    "list_sinks",
    "load_sink",
    "run_sink",
    "sink_path",
]

log = logging.getLogger(__name__)


async def run_sink(
    config: PlantdConfig, name: str, environ: Mapping[str, str] | None = None
) -> None:
    """Run sink ``name`` (``sinks.d/NAME.yaml``) until SIGTERM/SIGINT (telling systemd when it
    serves). :class:`SinkAlreadyRunning` if another process runs it (exit with its
    ``exit_status``)."""
    from plantd.runtime import run_until_signal

    # Past RLIMIT_FSIZE the kernel would kill the sink with SIGXFSZ; ignored, the write fails
    # with EFBIG and the sink goes on as with a full disk (docs/sinks.md, "Errors").
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    sink = Sink(config, load_sink(config, name))
    log.info(
        "sink %s (%s): topics %s, queue %s (%d entries waiting)",
        name,
        sink.sink.type,
        ", ".join(sink.sink.topics),
        sink.queue.path,
        sink.queue.length,
    )
    await run_until_signal(
        [sink], environ=environ, description=f"sink {name}: {sink.sink.type} upstream"
    )
