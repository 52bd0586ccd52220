"""SIGHUP (``systemctl reload``) on a real MQTT sink process, delivering to the machine's
Mosquitto (127.0.0.1:1883): a new upstream topic in ``sinks.d/NAME.yaml`` is in use within a
few seconds, with nothing taken from the bus lost on the way (the disk queue is kept); a sink
file with problems is logged with its file:line and the sink forwards on as it was. In-process,
with a scripted upstream: new bus topics are taken, the old ones no more, on the same upstream."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from plantd.bus import BusPublisher
from plantd.config import load_config
from plantd.sinks import Sink, load_sink
from plantd.testing import wait_for_workers
from tests.conftest import Stack
from tests.integration.sinks._helpers import (
    MqttCollector,
    start_sink,
    wait_for_port,
    wait_until,
    write_file,
)
from tests.integration.sinks.test_forwarder import ScriptedUpstream


def sink_file(name: str, branch: str) -> str:
    return f"""
type: mqtt
reconnect_initial: 50ms
reconnect_max: 200ms
queue: {{commit_interval: 50ms}}
repair: {{enabled: false}}
mqtt:
  host: 127.0.0.1
  port: 1883
  topic: "plantd-test/{name}/{branch}/{{module}}/{{point}}"
  connect_timeout: 2s
"""


class SteadyPublisher:
    """``data.meter.p`` every 20 ms from a thread, numbered 1, 2, …"""

    def __init__(self, frontend: str) -> None:
        self.last = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(frontend,))
        self._thread.start()

    def _run(self, frontend: str) -> None:
        publisher = BusPublisher(frontend)
        try:
            while not self._stop.wait(0.02):
                self.last = publisher.publish_sample("data.meter.p", float(self.last + 1))
        finally:
            publisher.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.timeout(120)
def test_sighup_moves_to_a_new_topic_losing_nothing_and_a_bad_file_changes_nothing(
    stack: Stack,
) -> None:
    try:
        wait_for_port(1883, timeout=2)
    except OSError:
        pytest.skip("no MQTT broker at 127.0.0.1:1883")
    stack.start_broker()
    name = f"r{uuid.uuid4().hex[:8]}"
    write_file(stack, "sinks.d", name, sink_file(name, "a"))
    path = Path(stack.config_dir) / "sinks.d" / f"{name}.yaml"
    collector = MqttCollector(1883, f"plantd-test/{name}/#", f"reload-{name}")
    assert collector.subscribed.wait(10)
    sink = start_sink(stack, name)
    publisher = SteadyPublisher(stack.settings["bus"]["frontend"])

    def topics() -> list[str]:
        with collector.lock:
            return [topic for topic, _ in collector.raw]

    try:
        assert wait_until(lambda: f"plantd-test/{name}/a/meter/p" in topics(), timeout=20)

        write_file(stack, "sinks.d", name, sink_file(name, "b"))
        sent = time.monotonic()
        sink.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        assert wait_until(lambda: f"plantd-test/{name}/b/meter/p" in topics(), timeout=10)
        took = time.monotonic() - sent
        assert took <= 5.0, f"the new topic was in use after {took:.1f} s"
        assert "new upstream connection" in sink.log_text()
        switched = len(topics())
        time.sleep(0.5)
        assert all("/b/" in topic for topic in topics()[switched + 5 :])  # the old one is done

        path.write_text(sink_file(name, "c").replace("port: 1883", "port: many"))
        sink.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        assert wait_until(lambda: "the sink file has problems" in sink.log_text(), timeout=10)
        assert f"{path}:" in sink.log_text()  # file:line
        assert sink.running()
        before = len(topics())
        assert wait_until(lambda: len(topics()) > before + 10, timeout=10)  # forwards on
        assert all("/c/" not in topic for topic in topics())

        publisher.stop()
        # Every sample from the first delivered to the last published arrived, across both
        # topics: nothing was lost on the way (duplicates, at-least-once, would be allowed).
        point, first = min(collector.keys(name), key=lambda key: key[1])
        wanted = {(point, seq) for seq in range(first, publisher.last + 1)}
        assert wait_until(lambda: wanted <= collector.keys(name), timeout=20), sorted(
            wanted - collector.keys(name)
        )[:10]
    finally:
        publisher.stop()
        collector.close()


SCRIPTED = """
type: mqtt
topics: ["data.a."]
queue: {commit_interval: 50ms}
repair: {enabled: false}
"""


async def test_new_bus_topics_are_taken_after_a_reload_and_the_old_ones_no_more(
    stack: Stack,
) -> None:
    stack.start_broker()
    write_file(stack, "sinks.d", "s", SCRIPTED)
    config = load_config(stack.config_dir)
    upstream = ScriptedUpstream()
    sink = Sink(config, load_sink(config, "s"), upstream=upstream)
    publisher = BusPublisher(config.bus.frontend)

    def topics() -> set[str]:
        return {topic for topic, _, _ in upstream.delivered()}

    async def publish_until(topic: str, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not condition():
                publisher.publish_sample(topic, 1.0)
                await asyncio.sleep(0.05)

    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(sink.run())
            await asyncio.to_thread(wait_for_workers, stack.endpoint, sink.service)
            await publish_until("data.a.p", lambda: "data.a.p" in topics())

            write_file(stack, "sinks.d", "s", SCRIPTED.replace("data.a.", "data.b."))
            sink.reload_file()
            assert sink.sink.topics == ("data.b.",)
            await publish_until("data.b.p", lambda: "data.b.p" in topics())
            late = publisher.publish_sample("data.a.p", 2.0)  # no longer taken
            await publish_until("data.b.p", lambda: len(upstream.delivered()) > 30)
            assert late not in {seq for t, seq, _ in upstream.delivered() if t == "data.a.p"}
            assert upstream.connects == 1  # the same upstream all along
            sink.stop()
    finally:
        publisher.close()
