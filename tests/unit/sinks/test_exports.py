"""The public surfaces of plantd.historian and plantd.sinks, pinned."""

from __future__ import annotations

import plantd.historian
import plantd.sinks


def test_historian_exports() -> None:
    assert sorted(plantd.historian.__all__) == sorted(
        [
            "SERVICE", "STATUS_TOPIC", "WIDTHS", "Aggregate", "Historian", "HistorianConfig",
            "HistoryStore", "from_row", "rollup", "run_historian", "to_row",
        ]
    )  # fmt: skip


def test_sinks_exports() -> None:
    assert sorted(plantd.sinks.__all__) == sorted(
        [
            "ALREADY_RUNNING", "ENTRY_POINT_GROUP", "SINKS_DIR", "DiskQueue", "Gap", "Intake",
            "MqttConfig", "MqttSinkConfig", "Outgoing", "OutgoingEvent", "PostgresConfig",
            "PostgresSinkConfig",
            "QueueConfig", "RepairConfig", "Sink", "SinkAlreadyRunning", "SinkConfig", "SinkKind",
            "SparkplugConfig", "TlsConfig", "Upstream", "UpstreamContext", "UpstreamUnavailable",
            "WillConfig", "available_sink_kinds", "event_json", "list_sinks", "load_sink",
            "load_sink_kind",
            "run_sink", "sink_path", "split_topic",
        ]
    )  # fmt: skip
    for module in (plantd.historian, plantd.sinks):
        for name in module.__all__:
            assert hasattr(module, name), name
