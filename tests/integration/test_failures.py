"""Failure injection against real processes: kill -9 of workers and of the broker, and
malformed input of every kind. The broker keeps serving; every request ends exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections import Counter
from urllib.parse import urlparse

import pytest
import zmq

from plantd.client import AsyncClient, Client
from plantd.errors import RequestTimeout, ServiceError
from plantd.service import call, call_async
from plantd.testing import wait_for_broker, wait_for_workers
from tests.conftest import HEARTBEAT, Stack

ECHO = "org.plantd.module.Echo"


def broker_counters(endpoint: str) -> dict[str, int]:
    with Client(endpoint, timeout=2, retries=0) as client:
        counters: dict[str, int] = json.loads(client.request("mmi.broker", b"")[0])["counters"]
        return counters


def busy_workers(endpoint: str) -> int:
    with Client(endpoint, timeout=2, retries=0) as client:
        table = json.loads(client.request("mmi.workers", ECHO.encode())[0])
        return int(table.get(ECHO, {}).get("busy", 0))


def wait_until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_kill9_of_a_busy_worker_retries_on_another(stack: Stack) -> None:
    stack.start_broker()
    first = stack.start_echo("echo-a")  # registered first: least recently used, gets the work
    stack.start_echo("echo-b")
    result: dict[str, object] = {}

    def ask() -> None:
        with Client(stack.endpoint, timeout=10, retries=0) as client:
            result["reply"] = call(client, ECHO, "echo", {"delay": 1.0, "n": 7})

    thread = threading.Thread(target=ask)
    thread.start()
    wait_until(lambda: busy_workers(stack.endpoint) == 1)
    first.kill()
    thread.join(timeout=15)
    assert result["reply"] == {"delay": 1.0, "n": 7}
    counters = broker_counters(stack.endpoint)
    # Forgotten when a heartbeat found its connection closed, or at its expiry.
    assert counters["workers_gone"] + counters["workers_expired"] == 1
    assert counters["requeued"] == 1


def test_kill9_of_the_only_worker_ends_in_a_clear_error(stack: Stack) -> None:
    stack.start_broker()
    only = stack.start_echo()
    errors: list[ServiceError] = []

    def ask() -> None:
        with Client(stack.endpoint, timeout=15, retries=0) as client:
            try:
                call(client, ECHO, "echo", {"delay": 1.0})
            except ServiceError as exc:
                errors.append(exc)

    thread = threading.Thread(target=ask)
    thread.start()
    wait_until(lambda: busy_workers(stack.endpoint) == 1)
    only.kill()
    thread.join(timeout=20)
    assert not thread.is_alive(), "the client hung"
    # Re-queued once, then nobody came within request_expiry: a clear error, not silence.
    assert [e.code for e in errors] == ["broker.no-worker"]


@pytest.mark.slow
async def test_kill9_of_the_broker_under_load(stack: Stack) -> None:
    broker = stack.start_broker()
    stack.start_echo("echo-a")
    stack.start_echo("echo-b")
    outcomes: Counter[str] = Counter()
    mismatched: list[tuple[int, object]] = []
    started = 0
    stop_at = time.monotonic() + 5.0

    async def load(client: AsyncClient, lane: int) -> None:
        nonlocal started
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            token = lane * 1_000_000 + n
            started += 1
            try:
                reply = await call_async(client, ECHO, "echo", {"token": token})
            except ServiceError as exc:
                outcomes[f"error:{exc.code}"] += 1
            except RequestTimeout:
                outcomes["timeout"] += 1
            else:
                outcomes["ok"] += 1
                if reply != {"token": token}:
                    mismatched.append((token, reply))

    async with AsyncClient(
        stack.endpoint, timeout=0.5, retries=8, backoff_initial=0.05, backoff_max=0.2
    ) as client:
        lanes = [asyncio.create_task(load(client, lane)) for lane in range(16)]
        await asyncio.sleep(1.0)
        broker.kill()
        await asyncio.sleep(0.5)
        broker.start()
        await asyncio.to_thread(wait_for_broker, stack.endpoint)
        back = time.monotonic()
        await asyncio.to_thread(wait_for_workers, stack.endpoint, ECHO, 2)
        reregistered = time.monotonic() - back
        # Every lane finishes: no request may hang (each attempt is bounded, so is the lane).
        await asyncio.wait_for(asyncio.gather(*lanes), timeout=30)

    assert sum(outcomes.values()) == started, "every request ends exactly once"
    assert not mismatched, "a reply reached the wrong request"
    assert outcomes["ok"] > 0.9 * started, outcomes
    assert set(outcomes) <= {"ok", "timeout", "error:broker.worker-lost"}, outcomes
    assert reregistered < 2 * HEARTBEAT + 0.3, f"workers took {reregistered:.2f} s to return"


@pytest.mark.stack(broker={"max_message_bytes": 65536}, state={"max_value_bytes": 16384})
def test_malformed_input_never_stops_the_broker(stack: Stack) -> None:
    broker = stack.start_broker()
    stack.start_echo()
    failures: list[BaseException] = []
    served = 0
    done = threading.Event()

    def keep_calling() -> None:
        nonlocal served
        with Client(stack.endpoint, timeout=2, retries=0) as client:
            while not done.is_set():
                try:
                    assert call(client, ECHO, "echo", {"i": served}) == {"i": served}
                    served += 1
                except BaseException as exc:
                    failures.append(exc)

    background = threading.Thread(target=keep_calling, daemon=True)
    background.start()
    try:
        _barrage(stack)
    finally:
        done.set()
        background.join(timeout=10)
    assert broker.running()
    assert not failures, failures[:3]
    assert served > 10
    counters = broker_counters(stack.endpoint)
    assert counters["malformed"] >= 50 * len(GARBAGE)
    assert counters["unexpected"] >= 2
    assert counters["rejected_too_large"] == 1
    with Client(stack.endpoint, timeout=2, retries=0) as client:
        assert call(client, ECHO, "echo", {"after": True}) == {"after": True}


GARBAGE = [
    [b"NOTMDP", b"\x01", b"x", b"y"],  # wrong header
    [b"MDPC02", b"\x09", ECHO.encode(), b"y"],  # unknown command byte
    [b"MDPC02", b"\x01", ECHO.encode()],  # too few frames
    [b"MDPW02"],  # too few frames
    [b"MDPW02", b"\x07"],  # unknown worker command
    [b"", b"MDPC01"],  # too few frames, 0.1
    [b"MDPC02", b"\x01", b"bad service name", b"x"],
]


def _recv_skipping_heartbeats(sock: zmq.Socket[bytes]) -> list[bytes]:
    while True:
        assert sock.poll(2000), "no answer from the broker"
        frames = sock.recv_multipart()
        if frames != [b"MDPW02", b"\x05"]:
            return frames


def _barrage(stack: Stack) -> None:
    """Every kind of bad input, while another client keeps calling Echo."""
    context = zmq.Context.instance()
    bad = context.socket(zmq.DEALER)
    bad.linger = 0
    bad.connect(stack.endpoint)
    for _ in range(50):
        for frames in GARBAGE:
            bad.send_multipart(frames)
    # A client that sends worker commands is a worker to the broker: HEARTBEAT before READY is
    # valid but unexpected (DISCONNECT); READY twice likewise.
    rogue = context.socket(zmq.DEALER)
    rogue.linger = 0
    rogue.connect(stack.endpoint)
    rogue.send_multipart([b"MDPW02", b"\x05"])
    assert rogue.poll(2000)
    assert rogue.recv_multipart() == [b"MDPW02", b"\x06"]
    twice = context.socket(zmq.DEALER)
    twice.linger = 0
    twice.connect(stack.endpoint)
    twice.send_multipart([b"MDPW02", b"\x01", b"t.twice"])
    twice.send_multipart([b"MDPW02", b"\x01", b"t.twice"])
    assert _recv_skipping_heartbeats(twice)[:2] == [b"MDPW02", b"\x06"]
    # Oversized: over max_message_bytes gets a clear error; far over it, libzmq drops the peer.
    big = context.socket(zmq.DEALER)
    big.linger = 0
    big.connect(stack.endpoint)
    big.send_multipart([b"MDPC02", b"\x01", ECHO.encode(), b"echo", b"x" * 100_000])
    assert big.poll(2000)
    reply = json.loads(big.recv_multipart()[3])
    assert reply["error"]["code"] == "broker.too-large"
    huge = context.socket(zmq.DEALER)
    huge.linger = 0
    huge.connect(stack.endpoint)
    huge.send_multipart([b"MDPC02", b"\x01", ECHO.encode(), b"x" * 1_000_000])
    # Garbage bytes straight onto the TCP port, and a stray HTTP request.
    url = urlparse(stack.endpoint)
    for payload in (os.urandom(4096), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\xff" * 64):
        with socket.create_connection((url.hostname, url.port), timeout=2) as raw:
            raw.sendall(payload)
            time.sleep(0.05)
    time.sleep(0.5)
    for sock in (bad, rogue, twice, big, huge):
        sock.close(linger=0)
