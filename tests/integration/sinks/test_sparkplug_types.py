"""A point that goes bad and comes back keeps its Sparkplug datatype (issue 12, item 9): a real
sink process, a private Mosquitto, samples published on the real bus; the payloads a
subscriber gets are decoded. A restart while the point is bad announces it with its own
datatype (kept in the queue file), null, with ``Quality`` 0."""

from __future__ import annotations

from plantd.bus import BusPublisher, Quality
from plantd.config import load_config
from plantd.sinks.mqtt._sparkplug import DataType, Metric, Payload, decode_payload
from tests.conftest import Stack
from tests.integration.sinks._helpers import (
    Mosquitto,
    MqttCollector,
    start_sink,
    wait_until,
    write_file,
)

GROUP = "types"


def messages(collector: MqttCollector) -> list[tuple[str, Payload]]:
    with collector.lock:
        return [(t.split("/", 2)[2], decode_payload(p)) for t, p in collector.raw]


def flow_metrics(seen: list[tuple[str, Payload]]) -> list[tuple[str, Metric]]:
    return [(kind, m) for kind, p in seen for m in p.metrics if kind.endswith("/pump1")]


def test_a_bad_sample_never_changes_the_datatype(stack: Stack) -> None:
    stack.start_broker()
    broker = Mosquitto(stack.log_dir / "mosquitto")
    broker.start()
    stack.processes.append(broker.process)
    collector = MqttCollector(broker.port, f"spBv1.0/{GROUP}/#", "types-collector")
    assert collector.subscribed.wait(10)
    write_file(stack, "sinks.d", "edge", f"""
type: mqtt
repair: {{enabled: false}}
mqtt: {{port: {broker.port}, format: sparkplug, sparkplug: {{group_id: {GROUP}}}}}
""")  # fmt: skip
    sink = start_sink(stack, "edge")
    publisher = BusPublisher(load_config(stack.config_dir, {}).bus.frontend)
    try:
        # Until the sink's subscription is through: the device is born.
        def born() -> bool:
            publisher.publish_sample("data.pump1.flow", 1.5)
            return any(kind == "DBIRTH/edge/pump1" for kind, _ in messages(collector))

        assert wait_until(born, 15)
        publisher.publish_sample("data.pump1.flow", None, quality=Quality.BAD)
        publisher.publish_sample("data.pump1.flow", 2.5)
        publisher.publish_sample("data.pump1.flow", None, quality=Quality.BAD)
        assert wait_until(lambda: len(flow_metrics(messages(collector))) >= 5, 15)
        seen = flow_metrics(messages(collector))
        assert [kind for kind, _ in seen].count("DBIRTH/edge/pump1") == 1  # never again
        assert {m.datatype for _, m in seen} == {DataType.DOUBLE}
        values = [(m.value, m.properties) for kind, m in seen if kind == "DDATA/edge/pump1"]
        assert values[-3:] == [(None, {"Quality": 0}), (2.5, {}), (None, {"Quality": 0})]

        # Restarted while the point is bad: born again as a Double, null and bad.
        assert sink.terminate() == 0
        before = len(messages(collector))
        start_sink(stack, "edge")
        assert wait_until(
            lambda: any(k == "DBIRTH/edge/pump1" for k, _ in messages(collector)[before:]), 15
        )
        rebirth = next(p for k, p in messages(collector)[before:] if k == "DBIRTH/edge/pump1")
        (metric,) = rebirth.metrics
        assert (metric.name, metric.datatype, metric.value) == ("flow", DataType.DOUBLE, None)
        assert metric.properties == {"Quality": 0}
    finally:
        publisher.close()
        collector.close()
