"""Abuse of the broker by a peer on the same box: huge frame counts, floods of large requests,
and connections that never speak. The broker keeps serving the others and gives memory and
file descriptors back (issue 12, items 1-3; docs/protocol.md "Bounded memory")."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest
import zmq

from plantd.client import Client
from plantd.service import call
from tests.conftest import Stack

ECHO = "org.plantd.module.Echo"
MIB = 1024 * 1024


def broker_info(endpoint: str) -> dict[str, object]:
    with Client(endpoint, timeout=10, retries=2) as client:
        info: dict[str, object] = json.loads(client.request("mmi.broker", b"")[0])
        return info


def counters(endpoint: str) -> dict[str, int]:
    values: dict[str, int] = broker_info(endpoint)["counters"]  # type: ignore[assignment]
    return values


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def error_code(frames: list[bytes]) -> str:
    code: str = json.loads(frames[-1])["error"]["code"]
    return code


# -- item 1: a million empty frames ----

# Heartbeats slow enough that only a stall of seconds (8.5 s before the fix, for one message)
# expires a worker; a drain of a million frames takes about one.
SLOW_HEARTBEATS = {"heartbeat_interval": 1.0, "heartbeat_liveness": 4}


@pytest.mark.stack(broker=SLOW_HEARTBEATS, worker=SLOW_HEARTBEATS)
def test_messages_of_a_million_frames_are_refused_and_workers_keep_serving(stack: Stack) -> None:
    stack.start_broker()
    stack.start_echo()
    abuses, frames_each = 3, 1_000_000
    replies: list[list[bytes]] = []

    def abuse() -> None:
        with zmq.Context() as context, context.socket(zmq.DEALER) as abuser:
            abuser.linger = 0
            abuser.connect(stack.endpoint)
            for _ in range(abuses):
                abuser.send_multipart([b"MDPC02", b"\x01", ECHO.encode()], zmq.SNDMORE)
                for _ in range(frames_each - 1):
                    abuser.send(b"", zmq.SNDMORE)
                abuser.send(b"")
            while len(replies) < abuses and abuser.poll(60_000):
                replies.append(abuser.recv_multipart())

    thread = threading.Thread(target=abuse)
    thread.start()
    served = 0
    with Client(stack.endpoint, timeout=30, retries=0) as client:
        while thread.is_alive() or served < 3:
            assert call(client, ECHO, "echo", {"n": served}) is not None
            served += 1
    thread.join()
    assert [error_code(reply) for reply in replies] == ["broker.too-many-frames"] * abuses
    seen = counters(stack.endpoint)
    assert seen["rejected_too_many_frames"] == abuses
    assert seen["workers_expired"] == 0  # the Echo worker was never given up for dead
    assert seen["workers_registered"] == 1  # nor did it have to register again
