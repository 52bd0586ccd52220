"""The broker's metrics from a real broker (the routing loop and the bus forwarder, in this
process, so the process registry shows them) with real client, worker, publisher and
subscriber sockets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq

from plantd.broker import BrokerServer
from plantd.client import Client
from plantd.config import load_config
from plantd.telemetry import REGISTRY
from plantd.testing import ANY_PORT, wait_for_workers, write_config
from plantd.worker import Request, Worker
from tests.conftest import HEARTBEAT, LIVENESS

SERVICE = "it.metrics"


def value(name: str, **labels: str) -> float:
    found = REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        time.sleep(0.01)


class RunningBroker:
    def __init__(
        self, directory: Path, context: zmq.Context[zmq.Socket[bytes]] | None = None
    ) -> None:
        write_config(
            directory,
            {
                "broker": {"endpoint": ANY_PORT, "heartbeat_interval": HEARTBEAT},
                "bus": {"frontend": ANY_PORT, "backend": ANY_PORT},
            },
        )
        self.server = BrokerServer(load_config(directory), context=context)
        self.server.bind()
        self.endpoint = self.server.endpoint
        bus = self.server.bus
        assert bus is not None
        self.frontend, self.backend = bus.frontend, bus.backend
        self.thread = threading.Thread(target=self.server.run, name="test-broker")
        self.thread.start()

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RunningBroker]:
    running = RunningBroker(tmp_path / "one")
    yield running
    running.stop()


def test_requests_replies_workers_and_queues(broker: RunningBroker) -> None:
    release = threading.Event()

    def handler(request: Request) -> list[bytes]:
        if request.body == [b"hold"]:
            release.wait(30)
        return [b"done"]

    labels = {"service": SERVICE}
    requests0 = value("plantd_broker_requests_total", **labels)
    replies0 = value("plantd_broker_replies_total", **labels)
    worker = Worker(
        broker.endpoint, SERVICE, handler, heartbeat_interval=HEARTBEAT, liveness=LIVENESS
    )
    worker_thread = threading.Thread(target=worker.run)
    worker_thread.start()
    dealers: list[zmq.Socket[bytes]] = []
    try:
        wait_for_workers(broker.endpoint, SERVICE)
        assert value("plantd_broker_workers", state="idle", **labels) == 1
        with Client(broker.endpoint, timeout=5, retries=0) as client:
            for _ in range(3):
                assert client.request(SERVICE, b"x") == [b"done"]
        assert value("plantd_broker_requests_total", **labels) - requests0 == 3
        assert value("plantd_broker_replies_total", **labels) - replies0 == 3

        # The worker holds one request; two more wait in the queue (raw MDP/0.2 clients).
        context = zmq.Context.instance()
        for body in (b"hold", b"queued-1", b"queued-22"):
            dealer = context.socket(zmq.DEALER)
            dealer.linger = 0
            dealer.connect(broker.endpoint)
            dealer.send_multipart([b"MDPC02", b"\x01", SERVICE.encode(), body])
            dealers.append(dealer)
            if body == b"hold":
                wait_until(lambda: value("plantd_broker_workers", state="busy", **labels) == 1)
        wait_until(lambda: value("plantd_broker_queue_depth", **labels) == 2)
        assert value("plantd_broker_queue_bytes", **labels) == len(b"queued-1queued-22")
        assert value("plantd_broker_workers", state="idle", **labels) == 0
        release.set()
        for dealer in dealers:
            assert dealer.poll(10_000), "no reply"
            assert dealer.recv_multipart()[-1] == b"done"
        assert value("plantd_broker_queue_depth", **labels) == 0
        assert value("plantd_broker_requests_total", **labels) - requests0 == 6
        assert value("plantd_broker_replies_total", **labels) - replies0 == 6
        received = value("plantd_broker_heartbeats_total", direction="received")
        wait_until(lambda: value("plantd_broker_heartbeats_total", direction="received") > received)
    finally:
        release.set()
        for dealer in dealers:
            dealer.close()
        worker.stop()
        worker_thread.join(timeout=10)


def test_a_refused_request_counts_as_a_request_and_as_an_error(
    broker: RunningBroker,
) -> None:
    before = value("plantd_broker_errors_total", code="too-large")
    requests0 = value("plantd_broker_requests_total", service="it.nobody")
    with Client(broker.endpoint, timeout=5, retries=0) as client:
        reply = client.request(
            "it.nobody", b"x" * (broker.server.config.broker.max_message_bytes + 1)
        )
    assert b"broker.too-large" in reply[0]
    assert value("plantd_broker_errors_total", code="too-large") - before == 1
    assert value("plantd_broker_requests_total", service="it.nobody") - requests0 == 1


def test_bus_messages_forwarded(broker: RunningBroker) -> None:
    before = value("plantd_bus_messages_forwarded_total")
    context = zmq.Context.instance()
    sub = context.socket(zmq.SUB)
    pub = context.socket(zmq.PUB)
    try:
        sub.linger = pub.linger = 0
        sub.connect(broker.backend)
        sub.subscribe(b"it.")
        pub.connect(broker.frontend)
        # A subscription reaches the publisher some time after connecting: publish until
        # the first message arrives, then count exactly from there.
        while not sub.poll(50):
            pub.send_multipart([b"it.probe", b"{}"])
        sub.recv_multipart()
        while sub.poll(200):
            sub.recv_multipart()
        start = value("plantd_bus_messages_forwarded_total")
        assert start > before
        for i in range(5):
            pub.send_multipart([b"it.topic", b"%d" % i])
        for _ in range(5):
            assert sub.poll(5000)
            sub.recv_multipart()
        assert value("plantd_bus_messages_forwarded_total") - start == 5
    finally:
        sub.close()
        pub.close()


def test_two_brokers_live_at_once_and_counts_outlive_them(tmp_path: Path) -> None:
    requests0 = value("plantd_broker_requests_total", service="mmi.services")
    first = RunningBroker(tmp_path / "first")
    context = zmq.Context()  # the inproc endpoints are per context
    second = RunningBroker(tmp_path / "second", context)
    try:
        for running in (first, second):
            with Client(running.endpoint, timeout=5, retries=0) as client:
                client.request("mmi.services", b"")
        assert value("plantd_broker_requests_total", service="mmi.services") - requests0 == 2
    finally:
        first.stop()
    assert value("plantd_broker_requests_total", service="mmi.services") - requests0 == 2
    second.stop()
    context.term()
    assert value("plantd_broker_requests_total", service="mmi.services") - requests0 == 2
