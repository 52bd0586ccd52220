"""The MQTT session against a private Mosquitto: ``publish_all`` keeps at most
``max_inflight`` messages unacknowledged, returns once every PUBACK is in, and gives up after
``ack_timeout`` without them (a frozen broker: SIGSTOP)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from plantd.sinks import MqttConfig, UpstreamUnavailable
from plantd.sinks.mqtt._client import MqttSession
from tests.integration.sinks._helpers import Mosquitto, MqttCollector, wait_until


async def test_publish_all_keeps_its_window_and_gives_up_on_a_frozen_broker(
    tmp_path: Path,
) -> None:
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    collector = MqttCollector(broker.port, "t/#", "session-test-collector", raw=False)
    try:
        assert collector.subscribed.wait(10)
        session = MqttSession(MqttConfig(port=broker.port, max_inflight=50), "session-test")
        await session.connect()
        in_flight: list[int] = []
        send = session._send

        def counting_send(message: tuple[str, bytes, int, bool]) -> None:
            in_flight.append(len(session._unacked))
            send(message)

        session._send = counting_send  # type: ignore[method-assign]
        messages = [
            ("t/s/x", json.dumps({"point": "x", "seq": n}).encode(), 1, False)
            for n in range(1, 2001)
        ]
        await session.publish_all(messages, timeout=10)
        assert not session._unacked
        assert max(in_flight) == 49  # the 50th waits for a PUBACK
        assert wait_until(lambda: collector.count("s") == 2000, 10)

        os.kill(broker.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(UpstreamUnavailable, match="PUBACK"):
                await session.publish_all(messages[:10], timeout=1.0)
            assert 0.9 <= time.monotonic() - started < 5
            assert session.lost.is_set()
            with pytest.raises(UpstreamUnavailable):
                await session.publish_all(messages[:1], timeout=1.0)
        finally:
            os.kill(broker.process.pid, signal.SIGCONT)
        await session.close()
    finally:
        collector.close()
        broker.stop()
