"""The broker's metrics (plantd/broker/_metrics.py) as the sans-IO core drives them: each
test watches fresh cores, feeds them frames, and reads deltas from the process registry."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from plantd.broker import _metrics
from plantd.config import BrokerConfig
from plantd.mdp import Broker
from plantd.telemetry import REGISTRY

C2, W2 = b"MDPC02", b"MDPW02"
C_REQUEST = b"\x01"
READY, PARTIAL, FINAL, HEARTBEAT = b"\x01", b"\x03", b"\x04", b"\x05"
W_FINAL, W_PARTIAL = b"\x04", b"\x03"


def value(name: str, **labels: str) -> float:
    found = REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


class Deltas:
    """Sample values relative to when it was made (the registry is process-wide)."""

    def __init__(self, *samples: tuple[str, dict[str, str]]) -> None:
        self._start = {(name, tuple(sorted(labels.items()))): value(name, **labels)
                       for name, labels in samples}  # fmt: skip

    def __call__(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return value(name, **labels) - self._start[key]


@pytest.fixture
def watched() -> Iterator[list[Broker]]:
    """Cores made by ``make`` are watched, and forgotten at the end of the test."""
    cores: list[Broker] = []
    yield cores
    for core in cores:
        _metrics.forget_broker(core)


def make(cores: list[Broker], **overrides: object) -> Broker:
    settings = {
        "heartbeat_interval": 1.0,
        "heartbeat_liveness": 3,
        "request_expiry": 5.0,
        "max_queue_per_service": 2,
        "max_message_bytes": 100,
        "worker_loss_retries": 0,
        "max_frames": 16,
    }
    settings.update(overrides)
    core = Broker(BrokerConfig(**settings), now=0.0)  # type: ignore[arg-type]
    _metrics.watch_broker(core)
    cores.append(core)
    return core


def ready(core: Broker, worker: bytes, service: bytes, now: float = 0.0) -> None:
    core.receive(worker, [W2, READY, service], now)


def request(core: Broker, client: bytes, service: bytes, body: bytes = b"hi", now: float = 0.0):  # type: ignore[no-untyped-def]
    return core.receive(client, [C2, C_REQUEST, service, body], now)


def final(core: Broker, worker: bytes, client: bytes, now: float = 0.0) -> None:
    core.receive(worker, [W2, W_FINAL, client, b"", b"ok"], now)


def test_requests_and_replies_count_by_service(watched: list[Broker]) -> None:
    d = Deltas(
        ("plantd_broker_requests_total", {"service": "m.echo"}),
        ("plantd_broker_replies_total", {"service": "m.echo"}),
        ("plantd_broker_requests_total", {"service": "mmi.service"}),
        ("plantd_broker_replies_total", {"service": "mmi.service"}),
    )
    core = make(watched)
    ready(core, b"W", b"m.echo")
    for _ in range(3):
        request(core, b"C", b"m.echo")
        core.receive(b"W", [W2, W_PARTIAL, b"C", b"", b"part"], 0.0)  # PARTIALs are not replies
        final(core, b"W", b"C")
    request(core, b"C", b"m.echo")  # in flight: counted as a request, not yet a reply
    request(core, b"C", b"mmi.service", b"m.echo")
    assert d("plantd_broker_requests_total", service="m.echo") == 4
    assert d("plantd_broker_replies_total", service="m.echo") == 3
    assert d("plantd_broker_requests_total", service="mmi.service") == 1
    assert d("plantd_broker_replies_total", service="mmi.service") == 1


def test_queue_depth_bytes_and_workers_are_read_from_the_live_core(watched: list[Broker]) -> None:
    core = make(watched)
    ready(core, b"A", b"q.svc")
    ready(core, b"B", b"q.svc")
    labels = {"service": "q.svc"}
    assert value("plantd_broker_workers", state="idle", **labels) == 2
    assert value("plantd_broker_workers", state="busy", **labels) == 0
    request(core, b"C1", b"q.svc")
    request(core, b"C2", b"q.svc")
    request(core, b"C3", b"q.svc", b"12345")
    request(core, b"C4", b"q.svc", b"1234567")
    assert value("plantd_broker_workers", state="busy", **labels) == 2
    assert value("plantd_broker_workers", state="idle", **labels) == 0
    assert value("plantd_broker_queue_depth", **labels) == 2
    assert value("plantd_broker_queue_bytes", **labels) == 12
    final(core, b"A", b"C1")  # A takes C3's request from the queue
    assert value("plantd_broker_queue_depth", **labels) == 1
    assert value("plantd_broker_queue_bytes", **labels) == 7


def test_every_refusal_counts_under_its_error_code(watched: list[Broker]) -> None:
    codes = ["too-large", "queue-full", "no-worker", "expired", "worker-lost",
             "too-many-frames", "malformed"]  # fmt: skip
    d = Deltas(
        *(("plantd_broker_errors_total", {"code": code}) for code in codes),
        ("plantd_broker_malformed_total", {}),
    )
    core = make(watched)
    request(core, b"C", b"e.none", b"x" * 101)  # over max_message_bytes
    request(core, b"C", b"e.none")
    request(core, b"C", b"e.none")
    request(core, b"C", b"e.none")  # a third: the queue holds two
    core.tick(6.0)  # the two queued expire, nobody serves e.none
    ready(core, b"W", b"e.busy", now=6.0)
    request(core, b"C", b"e.busy", now=6.0)  # W takes it
    request(core, b"D", b"e.busy", now=6.0)  # queued behind it
    core.receive(b"W", [W2, HEARTBEAT], 9.0)  # W lives on until 12.0
    core.tick(11.0)  # D's request expires while W is busy (registered, so "expired")
    core.tick(12.5)  # W is past its expiry: the request it held fails (no retries)
    core.receive(b"C", [C2, C_REQUEST, b"e.busy", *([b""] * 20)], 12.5)
    core.receive(b"X", [b"not", b"mdp"], 12.5)
    assert {code: d("plantd_broker_errors_total", code=code) for code in codes} == {
        "too-large": 1, "queue-full": 1, "no-worker": 2, "expired": 1, "worker-lost": 1,
        "too-many-frames": 1, "malformed": 1,
    }  # fmt: skip
    assert d("plantd_broker_malformed_total") == 1


def test_heartbeats_count_both_ways(watched: list[Broker]) -> None:
    d = Deltas(
        ("plantd_broker_heartbeats_total", {"direction": "sent"}),
        ("plantd_broker_heartbeats_total", {"direction": "received"}),
    )
    core = make(watched)
    ready(core, b"W", b"h.svc")  # acknowledged with a HEARTBEAT
    core.receive(b"W", [W2, HEARTBEAT], 0.5)
    core.receive(b"W", [W2, HEARTBEAT], 1.5)
    core.tick(1.0)  # W heard the acknowledgement this interval
    core.tick(2.0)  # but nothing in this one
    assert d("plantd_broker_heartbeats_total", direction="sent") == 2
    assert d("plantd_broker_heartbeats_total", direction="received") == 2


def test_service_names_beyond_the_bound_count_together(
    watched: list[Broker], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("plantd.mdp._broker.MAX_COUNTED_SERVICES", 2)
    other = {"service": "(other services)"}
    d = Deltas(("plantd_broker_requests_total", other), ("plantd_broker_replies_total", other))
    core = make(watched)
    for name in (b"b.one", b"b.two", b"b.three", b"b.four", b"b.three"):
        request(core, b"C", name)
    ready(core, b"W", b"b.four")  # takes the queued b.four request
    final(core, b"W", b"C")
    assert set(core.requests_by_service) == {b"b.one", b"b.two", b"(other services)"}
    assert d("plantd_broker_requests_total", **other) == 3
    assert d("plantd_broker_replies_total", **other) == 1


def test_two_live_brokers_add_up_and_counts_outlive_them(watched: list[Broker]) -> None:
    labels = {"service": "two.svc"}
    d = Deltas(("plantd_broker_requests_total", labels))
    first, second = make(watched), make(watched)
    request(first, b"C", b"two.svc")
    request(second, b"C", b"two.svc")
    request(second, b"D", b"two.svc")
    assert d("plantd_broker_requests_total", **labels) == 3
    assert value("plantd_broker_queue_depth", **labels) == 3
    _metrics.forget_broker(first)  # stopped: its count stays, its queue goes
    assert d("plantd_broker_requests_total", **labels) == 3
    assert value("plantd_broker_queue_depth", **labels) == 2
    watched.remove(second)
    del second  # dropped without being forgotten: counted all the same
    gc.collect()
    assert d("plantd_broker_requests_total", **labels) == 3
    assert REGISTRY.get_sample_value("plantd_broker_queue_depth", labels) is None


def test_collecting_while_the_loop_routes_never_fails(watched: list[Broker]) -> None:
    core = make(watched)
    stop = threading.Event()
    errors: list[BaseException] = []

    def collect() -> None:
        try:
            while not stop.is_set():
                list(REGISTRY.collect())
        except BaseException as exc:  # reported below
            errors.append(exc)

    reader = threading.Thread(target=collect)
    reader.start()
    try:
        for i in range(3000):  # new services and workers come and go while it reads
            name = f"race.{i % 300}".encode()
            ready(core, b"W%d" % i, name)
            request(core, b"C", name)
            final(core, b"W%d" % i, b"C")
            core.receive(b"W%d" % i, [W2, b"\x06"], 0.0)  # DISCONNECT: the service goes
    finally:
        stop.set()
        reader.join()
    assert errors == []
    assert value("plantd_broker_requests_total", service="race.0") >= 10
