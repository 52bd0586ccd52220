"""Backpressure at line rate: 10 modules × 1,000 points polled every second (10,000 samples/s,
ten batches a second) flow through an MQTT sink (``batching: module``) into a private
Mosquitto, which is then frozen with SIGSTOP for 10 s — a broker that accepts connections
and acknowledges nothing, the worst kind of slow.

While it is frozen, the sink must go on draining the bus into its disk queue: the queue grows
by what is published, the sink's intake keeps pace with the publisher, and the plantd
broker's memory stays flat (a subscriber that stops reading makes ZeroMQ queue its messages
in the broker). Once Mosquitto runs again the backlog drains at ``queue.drain_rate`` on top
of live data, and a QoS 1 subscriber ends up with every sample published.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from plantd.bus import BusPublisher, Quality
from plantd.client import Client
from plantd.config import load_config
from plantd.service import call
from tests.conftest import Stack
from tests.integration.sinks._helpers import (
    Mosquitto,
    MqttCollector,
    start_sink,
    wait_until,
    write_file,
)

MODULES, POINTS = 10, 1000
PAUSE = 10.0
DRAIN_RATE = 5000


def sink_file(port: int) -> str:
    return f"""
type: mqtt
reconnect_initial: 200ms
reconnect_max: 1s
queue: {{drain_rate: {DRAIN_RATE}, max_bytes: 512MiB}}
repair: {{enabled: false}}
mqtt:
  host: 127.0.0.1
  port: {port}
  batching: module
  topic: "t/bp/{{module}}"
  ack_timeout: 2s
  connect_timeout: 1s
"""


def missing_report(missing: set[tuple[str, int]], total: int, status: dict[str, Any]) -> str:
    """Which polls of which modules did not arrive, and what the sink counted: enough to
    tell a sample the sink never took from one it took and did not deliver."""
    polls: dict[str, set[int]] = {}
    for point, seq in missing:
        polls.setdefault(point.split(".")[0], set()).add(seq)
    where = ", ".join(f"{m} polls {sorted(s)[:10]}" for m, s in sorted(polls.items()))
    return (
        f"{len(missing)} of {total} samples missing at the subscriber ({where}); sink received "
        f"{status['received']}, counters {status['counters']}, queue {status['queue']}"
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


class Load(threading.Thread):
    """Every module's poll once a second, every value changing; counts the polls sent."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(daemon=True)
        self.publisher = BusPublisher(endpoint)
        self.polls = 0
        self.stop = threading.Event()
        self.names = [f"p{i:04d}" for i in range(POINTS)]

    def run(self) -> None:
        # ZeroMQ drops what a new publisher sends before the bus has passed it the sink's
        # subscription (seen in CI: the first poll of 6 of the 10 modules, never delivered).
        if not asyncio.run(self.publisher.wait_for_subscribers(10.0)):
            raise AssertionError("the bus passed no subscription to the load's publisher")
        started = time.monotonic()
        while not self.stop.is_set():
            now = time.time()
            for module in range(MODULES):
                values = [(n, float(self.polls * POINTS + i), now, Quality.GOOD)
                          for i, n in enumerate(self.names)]  # fmt: skip
                self.publisher.publish_batch(f"data.m{module}", values)
            self.polls += 1
            self.stop.wait(max(0.0, started + self.polls - time.monotonic()))
        self.publisher.close()

    def published(self) -> int:
        return self.polls * MODULES * POINTS


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_frozen_upstream_fills_the_disk_queue_not_the_broker(stack: Stack) -> None:
    broker = stack.start_broker()
    mosquitto = Mosquitto(stack.log_dir / "mosquitto")
    mosquitto.start()
    stack.processes.append(mosquitto.process)
    collector = MqttCollector(mosquitto.port, "t/#", "backpressure-collector", raw=False)
    assert collector.subscribed.wait(10)
    config = load_config(stack.config_dir)
    client = Client(stack.endpoint, timeout=5, retries=2)
    load: Load | None = None

    def status() -> dict[str, Any]:
        result: dict[str, Any] = call(client, "org.plantd.sink.bp", "status")
        return result

    try:
        write_file(stack, "sinks.d", "bp", sink_file(mosquitto.port))
        start_sink(stack, "bp")
        warm = BusPublisher(config.bus.frontend)  # until the sink's subscription is through
        assert wait_until(
            lambda: warm.publish_sample("data.warm.up", 0.0) and status()["received"] > 0, 10
        )
        warm.close()
        load = Load(config.bus.frontend)
        load.start()
        assert wait_until(lambda: collector.count("bp") >= 3 * MODULES * POINTS, 30)

        # Frozen: nothing is acknowledged, new connections hang.
        before = rss_mb(broker.pid)
        os.kill(mosquitto.process.pid, signal.SIGSTOP)
        frozen_at, published_at_freeze = time.monotonic(), load.published()
        try:
            highest = before
            while time.monotonic() - frozen_at < PAUSE:
                highest = max(highest, rss_mb(broker.pid))
                time.sleep(0.5)
            during = status()
            published = load.published()
        finally:
            os.kill(mosquitto.process.pid, signal.SIGCONT)
        resumed_at = time.monotonic()
        print(
            f"frozen {PAUSE:g} s: {published - published_at_freeze} published, queue "
            f"{during['queue']['entries']} entries ({during['queue']['bytes']} bytes), sink "
            f"received {during['received']}, broker RSS {before:.1f} -> {highest:.1f} MB"
        )
        assert not during["connected"]
        # The intake kept pace with the publisher (a poll or two behind at most) …
        assert during["received"] >= published - 2 * MODULES * POINTS
        # … into the disk queue, which holds what was published while frozen …
        assert during["queue"]["entries"] >= 0.8 * (published - published_at_freeze)
        # … and not into the broker: ZeroMQ queues nothing for a subscriber that keeps up.
        assert highest - before < 15

        # Back: the backlog drains at drain_rate, behind live data.
        assert wait_until(lambda: status()["connected"], 15, step=0.1)
        backlog = status()["queue"]["backlog_watermark"]
        assert backlog > 0
        entries = status()["queue"]["entries"]
        assert wait_until(lambda: status()["queue"]["backlog_watermark"] == 0, 120, step=0.25)
        drained = time.monotonic() - resumed_at
        print(f"{entries} entries drained in {drained:.1f} s at drain_rate {DRAIN_RATE}/s")
        assert drained >= 0.7 * (entries - 2 * MODULES * POINTS) / DRAIN_RATE

        load.stop.set()
        load.join(5)
        total = load.published()
        expected = {
            (f"m{m}.p{i:04d}", seq)
            for m in range(MODULES)
            for i in range(POINTS)
            for seq in range(1, load.polls + 1)
        }
        arrived = wait_until(lambda: expected <= collector.keys("bp"), 60)
        assert arrived, missing_report(expected - collector.keys("bp"), total, status())
        assert {key for key in collector.keys("bp") if key[0] != "warm.up"} == expected
        final = status()
        assert (final["counters"]["dropped"], final["counters"]["lost"]) == (0, 0)
    finally:
        if load is not None:
            load.stop.set()
        client.close()
        collector.close()
