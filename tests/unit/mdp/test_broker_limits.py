"""The broker's bounds on frames (F1) and queued bytes (C2): refused at once, clearly."""

from __future__ import annotations

import json

from plantd.mdp import Broker
from tests.unit.mdp.test_broker import (
    C2,
    C_FINAL,
    C_REQUEST,
    DISCONNECT,
    W2,
    check_invariants,
    error_code,
    final,
    make_broker,
    ready,
    request,
)


def error_message(message: list[bytes]) -> str:
    text: str = json.loads(message[-1])["error"]["message"]
    return text


# -- F1: frames per message ----


def test_a_request_with_too_many_frames_is_refused_before_it_is_queued() -> None:
    broker = make_broker(max_frames=16)
    out = broker.receive(b"C", [C2, C_REQUEST, b"echo", *([b""] * 20)], 0.0)
    assert [m[:4] for m in out] == [[b"C", C2, C_FINAL, b"echo"]]
    assert error_code(out[0]) == "broker.too-many-frames"
    assert "23 frames" in error_message(out[0])
    assert "broker.max_frames is 16" in error_message(out[0])
    assert broker.queued == 0
    assert b"echo" not in broker.services
    assert broker.counters.rejected_too_many_frames == 1


def test_a_request_at_the_frame_limit_passes() -> None:
    broker = make_broker(max_frames=16)
    ready(broker, b"W")
    out = broker.receive(b"C", [C2, C_REQUEST, b"echo", *([b"x"] * 13)], 0.0)
    assert out[0][:3] == [b"W", W2, b"\x02"]


def test_an_mdp01_request_with_too_many_frames_gets_a_01_reply() -> None:
    broker = make_broker(max_frames=8)
    out = broker.receive(b"C", [b"", b"MDPC01", b"echo", *([b""] * 10)], 0.0)
    assert out[0][:4] == [b"C", b"", b"MDPC01", b"echo"]
    assert error_code(out[0]) == "broker.too-many-frames"


def test_a_worker_sending_too_many_frames_is_disconnected() -> None:
    broker = make_broker(max_frames=8)
    ready(broker, b"W")
    out = broker.receive(b"W", [W2, b"\x05", *([b""] * 10)], 0.0)
    assert out == [[b"W", W2, DISCONNECT]]
    assert b"W" not in broker.workers
    assert broker.counters.malformed == 1
    check_invariants(broker)


def test_the_shell_can_refuse_a_message_it_drained_without_keeping_it() -> None:
    broker = make_broker(max_frames=8)
    out = broker.refuse_too_many_frames(b"C", [C2, C_REQUEST, b"echo"], 1_000_000, 0.0)
    assert error_code(out[0]) == "broker.too-many-frames"
    assert "1000000 frames" in error_message(out[0])
    assert broker.refuse_too_many_frames(b"X", [b"junk"], 1_000_000, 0.0) == []
    assert broker.counters.malformed == 1


# -- C2: queued bytes ----


def fill(broker: Broker, service: bytes, count: int, size: int) -> list[list[bytes]]:
    out = []
    for i in range(count):
        out += request(broker, b"C%d" % i, service, b"x" * size)
    return out


def test_the_queue_of_a_service_is_bounded_in_bytes() -> None:
    broker = make_broker(
        max_queue_per_service=100,
        max_queued_total=100,
        max_queued_bytes_per_service=250,
        max_queued_bytes=10_000,
    )
    assert fill(broker, b"echo", 2, 100) == []
    out = request(broker, b"C9", b"echo", b"x" * 100)
    assert error_code(out[0]) == "broker.queue-full"
    assert "broker.max_queued_bytes_per_service is 250" in error_message(out[0])
    assert (broker.queued, broker.queued_bytes) == (2, 200)
    assert request(broker, b"C8", b"echo", b"x" * 50) == []  # still fits
    check_invariants(broker)


def test_the_total_queue_is_bounded_in_bytes() -> None:
    broker = make_broker(
        max_queue_per_service=100,
        max_queued_total=100,
        max_queued_bytes_per_service=1000,
        max_queued_bytes=300,
    )
    assert fill(broker, b"a", 2, 100) == []
    assert fill(broker, b"b", 1, 100) == []
    out = request(broker, b"C9", b"c", b"x")
    assert error_code(out[0]) == "broker.queue-full"
    assert "broker.max_queued_bytes is 300" in error_message(out[0])
    assert b"c" not in broker.services
    check_invariants(broker)


def test_queued_bytes_come_back_as_requests_leave_the_queue() -> None:
    broker = make_broker(
        max_queue_per_service=100, max_queued_total=100, max_queued_bytes_per_service=1000
    )
    fill(broker, b"echo", 3, 100)
    assert broker.queued_bytes == broker.queued_bytes_peak == 300
    ready(broker, b"W")  # served: dequeued
    assert broker.queued_bytes == 200
    broker.receive(b"W", [W2, b"\x06"], 0.0)  # DISCONNECT: its request goes back
    assert broker.queued_bytes == 300
    broker.tick(100.0)  # all expire
    assert broker.queued_bytes == 0
    assert broker.queued == 0
    assert broker.queued_bytes_peak == 300  # until the shell resets it
    check_invariants(broker)


def test_a_request_requeued_after_its_worker_died_counts_again() -> None:
    broker = make_broker(max_queued_bytes_per_service=1000)
    ready(broker, b"W")
    request(broker, b"C", b"echo", b"x" * 40)
    broker.tick(10.0)  # W expires while busy: its request goes back to the queue
    assert broker.queued == 1
    assert broker.queued_bytes == 40
    ready(broker, b"V", now=10.0)
    assert broker.queued_bytes == 0
    assert final(broker, b"V", b"C", now=10.0)[0][:3] == [b"C", C2, C_FINAL]
    check_invariants(broker)
