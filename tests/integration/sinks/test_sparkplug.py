"""Sparkplug B against the machine's Mosquitto (127.0.0.1:1883), in a group of its own:
births, DDATA by alias with seq, a DCMD routed to the module's ``write``, NDEATH at the end."""

from __future__ import annotations

import secrets
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from plantd.sinks.mqtt._sparkplug import DataType, Metric, Payload, decode_payload, encode_payload
from plantd.testing import wait_for_workers
from tests.conftest import Stack
from tests.integration.sinks._helpers import (
    MqttCollector,
    plant_json,
    plant_process,
    start_sink,
    wait_for_port,
    wait_until,
    write_file,
)

PUMP = """
driver: fake
defaults: {max_silence: 300ms}
groups:
  - name: main
    interval: 100ms
    points:
      - {name: count, value: 0, pattern: counter}
      - {name: speed, value: 0, writable: true}
"""


def test_sparkplug_session_and_commands(stack: Stack) -> None:
    try:
        wait_for_port(1883, timeout=2)
    except OSError:
        pytest.skip("no MQTT broker at 127.0.0.1:1883")
    group = f"plantd-test-{secrets.token_hex(4)}"
    stack.start_broker()
    collector = MqttCollector(1883, f"spBv1.0/{group}/#", f"spb-{group}")
    assert collector.subscribed.wait(10)
    try:
        write_file(stack, "sinks.d", "edge", f"""
type: mqtt
mqtt: {{format: sparkplug, sparkplug: {{group_id: {group}}}}}
""")  # fmt: skip
        sink = start_sink(stack, "edge")
        time.sleep(0.5)  # subscribed before the module's first samples
        write_file(stack, "modules.d", "pump1", PUMP)
        plant_process(stack, "module-pump1", "module", "run", "pump1")
        wait_for_workers(stack.endpoint, "org.plantd.module.pump1")

        def messages() -> list[tuple[str, Payload]]:
            with collector.lock:
                return [(t.split("/", 2)[2], decode_payload(p)) for t, p in collector.raw]

        assert wait_until(lambda: sum(t.startswith("DDATA") for t, _ in messages()) >= 8, 15)
        seen = messages()
        kinds = [t for t, _ in seen]
        assert kinds[0] == "NBIRTH/edge"
        nbirth = seen[0][1]
        assert nbirth.seq == 0
        assert {m.name for m in nbirth.metrics} == {"bdSeq", "Node Control/Rebirth"}
        seqs = [p.seq for _, p in seen]
        assert seqs == [n % 256 for n in range(len(seqs))]
        dbirths = [p for t, p in seen if t == "DBIRTH/edge/pump1"]
        aliases = {m.name: m.alias for m in dbirths[-1].metrics}
        assert {"count", "speed"} <= set(aliases)
        ddata = [p for t, p in seen if t == "DDATA/edge/pump1"]
        counts = [m.value for p in ddata for m in p.metrics if m.alias == aliases["count"]]
        assert counts == sorted(counts)
        assert all(m.name is None for p in ddata for m in p.metrics)

        publisher = mqtt.Client(CallbackAPIVersion.VERSION2)
        publisher.connect("127.0.0.1", 1883)
        publisher.loop_start()
        command = Payload(
            int(time.time() * 1000), [Metric("speed", None, None, DataType.INT64, 42)]
        )
        publisher.publish(
            f"spBv1.0/{group}/DCMD/edge/pump1", encode_payload(command), 1
        ).wait_for_publish(5)
        publisher.loop_stop()
        publisher.disconnect()
        assert wait_until(
            lambda: plant_json(stack, "module", "read", "pump1", "speed")["speed"]["value"] == 42,
            10,
        )
        assert plant_json(stack, "sink", "status", "edge")["upstream"]["commands"] == 1

        assert sink.terminate() == 0
        assert wait_until(lambda: any(t == "NDEATH/edge" for t, _ in messages()), 5)
        ndeath = next(p for t, p in messages() if t == "NDEATH/edge")
        assert ndeath.metrics[0].value == nbirth.metrics[0].value  # the same bdSeq
    finally:
        collector.close()
