"""plantd-state as a real process behind a real broker: operations, the change stream,
restarts, retries, and input that must not hurt it."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import subprocess
import sys

import pytest
import zmq

from plantd.bus import BusSubscriber, Record
from plantd.client import AsyncClient
from plantd.errors import ServiceError
from plantd.state import SERVICE_NAME, StateClient
from tests.conftest import Stack
from tests.integration.state.conftest import database, start_state, wait_for_state

SCOPE = "org.plantd.module.pump1"


async def test_operations_over_the_broker(stack: Stack, state_client: StateClient) -> None:
    stack.start_broker()
    process = start_state(stack)
    state = state_client
    assert (await state.create_scope(SCOPE))["created"] is True
    done = await state.set(SCOPE, "speed", 12.5)
    assert done["revision"] == 2
    assert (await state.get(SCOPE, "speed"))["value"] == 12.5
    with pytest.raises(ServiceError) as caught:
        await state.set(SCOPE, "speed", 1, if_revision=1)
    assert caught.value.code == "state.conflict"
    assert caught.value.service == SERVICE_NAME
    with pytest.raises(ServiceError) as caught:
        await state.call("truncate", {})
    assert caught.value.code == "unknown-operation"
    snapshot = await state.snapshot()
    assert snapshot.revision == 2
    assert snapshot.scopes[SCOPE].entries["speed"].value == 12.5
    # One line once the database is open and the broker lists the service (the runtime may
    # add its own generic one for systemd).
    assert process.log_text().count(f"serving {SERVICE_NAME} with 16 workers") == 1


@pytest.mark.stack(state={"workers": 4})
async def test_changes_are_published_after_commit_in_revision_order(
    stack: Stack, state_client: StateClient
) -> None:
    stack.start_broker()
    start_state(stack)
    subscriber = BusSubscriber(stack.settings["bus"]["backend"], ["state."])
    await asyncio.sleep(0.3)  # the subscription reaches the service's publisher
    try:
        await state_client.create_scope(SCOPE)
        await asyncio.gather(
            *(state_client.set(SCOPE, f"k{n % 7}", n) for n in range(60)),
            state_client.batch(
                [
                    {"op": "set", "scope": SCOPE, "key": "b1", "value": [1]},
                    {"op": "set", "scope": SCOPE, "key": "b2", "value": {"x": None}},
                ]
            ),
        )
        await state_client.delete(SCOPE, "b1")
        records = []
        while len(records) < 64:
            message = await subscriber.receive_within(5)
            assert message is not None, f"only {len(records)} events arrived"
            assert isinstance(message.payload, Record)
            records.append((message.topic, message.payload.fields))
    finally:
        subscriber.close()
    assert [fields["revision"] for _, fields in records] == list(range(1, 65))
    assert records[0] == (
        f"state.{SCOPE}.",
        {"op": "create-scope", "scope": SCOPE, "key": "", "revision": 1, "prev": 0},
    )
    prevs = [fields["prev"] for _, fields in records]
    assert prevs == list(range(0, 64))  # one scope: each change follows the previous
    last = records[-1]
    assert last[0] == f"state.{SCOPE}.b1"
    assert last[1]["op"] == "delete"
    snapshot = await state_client.snapshot(SCOPE)
    for topic, fields in records:
        if fields["op"] == "set" and fields["key"] in snapshot.scopes[SCOPE].entries:
            entry = snapshot.scopes[SCOPE].entries[fields["key"]]
            assert entry.revision >= fields["revision"]
            if entry.revision == fields["revision"]:
                assert entry.value == fields["value"]
                assert topic == f"state.{SCOPE}.{fields['key']}"


async def test_data_survives_restarts_and_retried_requests_apply_once(
    stack: Stack, state_client: StateClient
) -> None:
    stack.start_broker()
    process = start_state(stack)
    await state_client.create_scope(SCOPE)
    first = await state_client.set(SCOPE, "k", "v1", request_id="retry-me")
    assert process.terminate() == 0  # SIGTERM: an orderly stop
    assert "stopping" in process.log_text()
    process.start()
    wait_for_state(stack.endpoint)
    assert await state_client.set(SCOPE, "k", "v1", request_id="retry-me") == first
    await state_client.set(SCOPE, "k", "v2")
    process.kill()
    process.start()
    health = wait_for_state(stack.endpoint)
    assert health["revision"] == 3
    assert (await state_client.get(SCOPE, "k"))["value"] == "v2"
    assert (await state_client.set(SCOPE, "k", "v1", request_id="retry-me")) == first


async def test_requests_racing_with_one_request_id_apply_once(stack: Stack) -> None:
    """Copies of one request (a client's retries overtaking each other) reach the store
    together; one is applied, every copy gets its answer."""
    stack.start_broker()
    start_state(stack)
    async with AsyncClient(stack.endpoint, timeout=2.0, retries=0) as client:
        state = StateClient(client)
        await state.create_scope(SCOPE)
        attempts = [state.set(SCOPE, "counter", n, request_id="same") for n in (1, 1, 1)]
        results = await asyncio.gather(*attempts)
        assert len({json.dumps(r) for r in results}) == 1
        assert (await state.get(SCOPE, "counter"))["version"] == 1


def test_a_second_service_on_the_same_database_exits_clearly(stack: Stack) -> None:
    stack.start_broker()
    start_state(stack)
    done = subprocess.run(
        [sys.executable, "-m", "plantd.state", "--config", str(stack.config_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "is held by another process: is plantd-state already running" in done.stderr


def test_a_bad_config_exits_2(stack: Stack) -> None:
    (stack.config_dir / "plantd.yaml").write_text("state:\n  workers: 0\n")
    done = subprocess.run(
        [sys.executable, "-m", "plantd.state", "--config", str(stack.config_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "state.workers: expected an integer >= 1 and <= 256, got 0" in done.stderr


@pytest.mark.stack(broker={"max_message_bytes": 262144}, state={"workers": 2})
async def test_nothing_a_client_sends_hurts_the_service(
    stack: Stack, state_client: StateClient
) -> None:
    stack.start_broker()
    process = start_state(stack)
    await state_client.create_scope(SCOPE)
    rng = random.Random(7)
    context = zmq.asyncio.Context.instance()
    raw = context.socket(zmq.DEALER)
    raw.linger = 0
    raw.connect(stack.endpoint)
    service = SERVICE_NAME.encode()
    bodies: list[list[bytes]] = [
        [b"set", b"{not json"],
        [b"set", b"[]"],
        [b"set", b'{"scope": "%s", "key": "k", "value": NaN}' % SCOPE.encode()],
        [b"set", b'{"scope": "%s", "key": "k", "value": "\\ud800"}' % SCOPE.encode()],
        [b"set", json.dumps({"scope": SCOPE, "key": "k", "value": "x" * 200_000}).encode()],
        [b"set", json.dumps({"scope": SCOPE, "key": "k" * 5000, "value": 1}).encode()],
        [b"set", b'{"scope": "%s", "key": "k", "value": %s}' % (SCOPE.encode(), b"[" * 5000)],
        [b"batch", json.dumps({"ops": [{"op": "set"}] * 5000}).encode()],
        [b"\xff\xfe", b"{}"],
        [b"get"],
        [b"get", b"{}", b"extra", b"frames"],
        [b"snapshot", b'{"scope": "../../etc"}'],
        [b"list", b'{"scope": "%s", "limit": 1e9}' % SCOPE.encode()],
    ]
    bodies += [[rng.randbytes(8), rng.randbytes(rng.randrange(200))] for _ in range(50)]
    for body in bodies:
        await raw.send_multipart([b"MDPC02", b"\x01", service, *body])
        assert await raw.poll(5000), body
        reply = await raw.recv_multipart()
        answer = json.loads(reply[3])
        assert answer["ok"] is False, (body[:1], answer)
    raw.close()
    assert process.running()
    health = await state_client.health()
    assert (health["status"], health["revision"], health["keys"]) == ("ok", 1, 0)
    with sqlite3.connect(f"file:{database(stack)}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
