"""The sink metrics of a real MQTT sink, in-process, delivering to the machine's Mosquitto
(127.0.0.1:1883) through a TCP proxy the test takes down: delivered grows while the upstream
acknowledges; while it is unreachable the backlog grows and its oldest sample ages; once it is
back the backlog drains to zero (and the age with it)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable

import pytest

from plantd.bus import BusPublisher
from plantd.config import load_config
from plantd.sinks import Sink, load_sink
from plantd.telemetry import REGISTRY
from plantd.testing import wait_for_workers
from tests.conftest import Stack
from tests.integration.sinks._helpers import TcpProxy, wait_for_port, write_file


def metric(name: str, sink: str) -> float:
    value = REGISTRY.get_sample_value(name, {"sink": sink})
    assert value is not None, f"{name}{{sink={sink!r}}} is not in the registry"
    return value


async def eventually(condition: Callable[[], bool], timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            for _ in itertools.count():
                if condition():
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {timeout} s: {what}") from None


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_delivered_backlog_and_oldest_age_follow_an_outage(stack: Stack) -> None:
    try:
        wait_for_port(1883, timeout=2)
    except OSError:
        pytest.skip("no MQTT broker at 127.0.0.1:1883")
    stack.start_broker()
    proxy = TcpProxy(("127.0.0.1", 1883))
    name = f"m{uuid.uuid4().hex[:8]}"
    write_file(stack, "sinks.d", name, f"""
type: mqtt
reconnect_initial: 50ms
reconnect_max: 200ms
queue: {{commit_interval: 50ms}}
repair: {{enabled: false}}
mqtt:
  host: 127.0.0.1
  port: {proxy.port}
  topic: "plantd-test/{name}/{{module}}/{{point}}"
  ack_timeout: 2s
  connect_timeout: 1s
""")  # fmt: skip
    config = load_config(stack.config_dir)
    sink = Sink(config, load_sink(config, name))
    publisher = BusPublisher(config.bus.frontend)
    seq = itertools.count(1)

    def publish(count: int) -> None:
        for _ in range(count):
            publisher.publish_sample("data.meter.p", float(next(seq)))

    backlog = lambda: metric("plantd_sink_backlog_samples", name)  # noqa: E731
    age = lambda: metric("plantd_sink_oldest_sample_age_seconds", name)  # noqa: E731
    delivered = lambda: metric("plantd_sink_delivered_total", name)  # noqa: E731
    connected = lambda: metric("plantd_sink_connected", name)  # noqa: E731
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(sink.run())
            await asyncio.to_thread(wait_for_workers, stack.endpoint, sink.service)
            await eventually(lambda: connected() == 1, 10, "the sink connects to Mosquitto")
            async with asyncio.timeout(5):  # until the subscription has reached the publisher
                while not sink.intake.received:
                    publish(1)
                    await asyncio.sleep(0.05)
            await eventually(lambda: backlog() == 0, 10, "the warm-up samples are delivered")
            assert age() == 0
            assert metric("plantd_sink_queue_bytes", name) == 0

            # Connected: what is published is delivered, and the counter says so.
            before = delivered()
            publish(100)
            await eventually(lambda: delivered() >= before + 100, 10, "100 more delivered")
            await eventually(lambda: backlog() == 0, 10, "the backlog is empty again")

            # Unreachable: the backlog grows, and its oldest sample ages.
            proxy.down()
            stuck = delivered()
            publish(200)
            # (the forwarder finds the connection gone when it next delivers)
            await eventually(lambda: connected() == 0, 10, "the sink sees the upstream gone")
            await eventually(lambda: backlog() >= 200, 10, "200 samples backlogged")
            assert metric("plantd_sink_queue_bytes", name) > 0
            await eventually(lambda: age() > 0, 10, "the oldest backlogged sample ages")
            first_age = age()
            await eventually(lambda: age() > first_age, 10, "the age keeps growing")
            assert delivered() == stuck

            # Back: the backlog drains, everything counts as delivered, nothing is old.
            proxy.up()
            await eventually(lambda: backlog() == 0, 20, "the backlog drains")
            assert delivered() >= stuck + 200
            assert age() == 0
            assert connected() == 1
            assert metric("plantd_sink_queue_bytes", name) == 0
            for reason in ("full", "expired"):
                value = REGISTRY.get_sample_value(
                    "plantd_sink_dropped_total", {"sink": name, "reason": reason}
                )
                assert value == 0
            sink.stop()
    finally:
        publisher.close()
        proxy.close()
    # A stopped sink is no longer reported.
    assert REGISTRY.get_sample_value("plantd_sink_backlog_samples", {"sink": name}) is None
