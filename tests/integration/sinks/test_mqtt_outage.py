"""The issue's uplink outage, against a real (private) Mosquitto: 100 points/s flow while the
broker is down for 60 s. Two sinks run side by side through the same outage:

- ``plain`` just waits it out;
- ``killed`` is killed with SIGKILL halfway through the outage and restarted 5 s later (the
  samples published while it is dead are filled from the historian, docs/sinks.md "repair").

Afterwards a QoS 1 subscriber keyed on (point, seq) must hold every sample the module
published, for each sink, with no gap in any point's sequence; duplicates are counted and
reported (QoS 1 allows them).
"""

from __future__ import annotations

import time

import pytest

from plantd.testing import wait_for_workers
from tests.conftest import Stack
from tests.integration.sinks._helpers import (
    BusRecorder,
    Mosquitto,
    MqttCollector,
    contiguous,
    counter_module,
    plant_json,
    plant_process,
    start_historian,
    start_sink,
    wait_until,
    write_file,
)

OUTAGE = 60.0


def mqtt_sink(port: int, prefix: str) -> str:
    return f"""
type: mqtt
reconnect_initial: 200ms
reconnect_max: 1s
queue: {{drain_rate: 2000, commit_interval: 250ms}}
repair: {{timeout: 30s}}
mqtt:
  host: 127.0.0.1
  port: {port}
  topic: "t/{prefix}/{{module}}/{{point}}"
  ack_timeout: 5s
  connect_timeout: 2s
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.stack(historian={"batch_interval": 0.5})
def test_a_60_s_outage_loses_nothing_even_with_a_kill_9(stack: Stack) -> None:
    stack.start_broker()
    broker = Mosquitto(stack.log_dir / "mosquitto")
    broker.start()
    stack.processes.append(broker.process)
    collector = MqttCollector(broker.port, "t/#", "outage-test-collector")
    assert collector.subscribed.wait(10)
    recorder = BusRecorder(stack.settings["bus"]["backend"])
    try:
        start_historian(stack)
        for prefix in ("plain", "killed"):
            write_file(stack, "sinks.d", prefix, mqtt_sink(broker.port, prefix))
        start_sink(stack, "plain")
        killed = start_sink(stack, "killed")
        time.sleep(0.5)  # the sinks' subscriptions reach the bus before the first sample
        write_file(stack, "modules.d", "flow", counter_module(10))
        module = plant_process(stack, "module-flow", "module", "run", "flow")
        wait_for_workers(stack.endpoint, "org.plantd.module.flow")
        assert wait_until(lambda: len(collector.keys("killed")) > 200, 15)

        broker.stop()
        down = time.monotonic()
        time.sleep(OUTAGE / 2)
        killed.kill()  # SIGKILL during the outage: its queue must survive on disk
        time.sleep(5)
        killed.start()
        wait_for_workers(stack.endpoint, "org.plantd.sink.killed")
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - down)))
        broker.start()
        time.sleep(5)  # live data flows again while the backlog drains
        assert module.terminate() == 0
        published = recorder.keys()
        assert len(published) > 100 * (OUTAGE + 5)
        assert len(recorder.epochs) == 1

        for prefix in ("plain", "killed"):
            complete = wait_until(lambda p=prefix: collector.keys(p) >= published, 60)
            missing = published - collector.keys(prefix)
            status = plant_json(stack, "sink", "status", prefix)
            print(
                f"sink {prefix}: {len(published)} published, {len(missing)} missing, "
                f"{collector.duplicates(prefix)} duplicates, counters {status['counters']}"
            )
            assert complete, f"{prefix}: {len(missing)} missing, e.g. {sorted(missing)[:5]}"
            gaps = contiguous(collector.keys(prefix))
            assert all(not missing for missing in gaps.values()), gaps  # no gap in any point
            counters = status["counters"]
            assert (counters["dropped"], counters["lost"]) == (0, 0)
            assert status["queue"]["entries"] == 0
            assert collector.duplicates(prefix) <= len(published) // 100  # rare
        assert plant_json(stack, "sink", "status", "killed")["counters"]["repaired"] > 0
    finally:
        recorder.close()
        collector.close()
