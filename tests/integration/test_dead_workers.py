"""A restarted service is served at once: the broker forgets a worker whose connection closed
the first time it sends it anything (ROUTER_MANDATORY), instead of routing requests into the
void until the worker's heartbeats expire.

Heartbeats here are slow (expiry 60 s), so the only way the call below is answered within its
10 s is that the broker went past the dead workers by itself."""

from __future__ import annotations

import json

import pytest

from plantd.client import Client
from plantd.service import call
from plantd.testing import wait_for_workers
from tests.conftest import Stack

ECHO = "org.plantd.module.Echo"
SLOW = {"heartbeat_interval": 20.0, "heartbeat_liveness": 3}


@pytest.mark.stack(broker={**SLOW, "request_expiry": 60.0}, worker=SLOW)
def test_a_request_goes_past_killed_workers_to_a_live_one(stack: Stack) -> None:
    stack.start_broker()
    dead = [stack.start_echo("echo-dead-1"), stack.start_echo("echo-dead-2")]
    for process in dead:  # registered first: least recently used, the broker's first pick
        process.kill()
    stack.start_echo("echo-live", wait=False)
    with Client(stack.endpoint, timeout=10, retries=0) as client:
        wait_for_workers(stack.endpoint, ECHO, count=3)  # the dead ones are not known yet
        assert call(client, ECHO, "echo", {"n": 1}) == {"n": 1}
        counters = json.loads(client.request("mmi.broker", b"")[0])["counters"]
    assert counters["workers_gone"] >= 1
    assert counters["workers_expired"] == 0
    assert counters["worker_lost"] == 0
