"""The MQTT sink kind (``type: mqtt``): plain messages (JSON by default) or Sparkplug B, over
paho-mqtt (the ``mqtt`` extra). It enters through the ``plantd.sinks`` entry point ``mqtt``
like any third party's kind; docs/sinks.md describes every key of its ``mqtt:`` section."""

from __future__ import annotations

from plantd.sinks import SinkKind, Upstream, UpstreamContext
from plantd.sinks.mqtt._config import (
    MqttConfig,
    MqttSinkConfig,
    SparkplugConfig,
    TlsConfig,
    WillConfig,
)

__all__ = [
    "SINK_KIND",
    "MqttConfig",
    "MqttSinkConfig",
    "SparkplugConfig",
    "TlsConfig",
    "WillConfig",
]


def _make_upstream(sink: MqttSinkConfig, context: UpstreamContext) -> Upstream:
    from plantd.sinks.mqtt._upstream import MqttUpstream  # paho: only when a sink runs

    return MqttUpstream(
        sink, context.queue, context.latest, context.write, known_events=context.latest_events
    )


SINK_KIND = SinkKind(
    config_type=MqttSinkConfig,
    make_upstream=_make_upstream,
    install_hint="pip install 'plantd[mqtt]'",
)
"""The ``plantd.sinks`` entry point ``mqtt``."""
