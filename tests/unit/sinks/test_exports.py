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
            "ALREADY_RUNNING", "SINKS_DIR", "DiskQueue", "Gap", "Intake", "MqttConfig",
            "MqttSinkConfig", "Outgoing", "PostgresConfig", "PostgresSinkConfig", "QueueConfig",
            "RepairConfig", "Sink", "SinkAlreadyRunning", "SinkConfig", "SparkplugConfig",
            "TlsConfig", "Upstream", "UpstreamUnavailable", "WillConfig", "list_sinks",
            "load_sink", "run_sink", "sink_path",
        ]
    )  # fmt: skip
    for module in (plantd.historian, plantd.sinks):
        for name in module.__all__:
            assert hasattr(module, name), name
