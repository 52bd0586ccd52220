"""The client and worker APIs (asyncio and blocking) against a real broker process."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from plantd.client import AsyncClient, Client
from plantd.errors import RequestTimeout, ServiceError
from plantd.mdp import Version
from plantd.service import call, call_async, decode_reply, encode_call, stream_async
from plantd.testing import ManagedProcess, wait_for_broker, wait_for_workers
from plantd.worker import AsyncWorker, Request, Worker
from tests.conftest import HEARTBEAT, LIVENESS, Stack


def mmi_json(endpoint: str, service: str, body: bytes = b"") -> dict:
    with Client(endpoint, timeout=2, retries=0) as client:
        return json.loads(client.request(service, body)[0])  # type: ignore[no-any-return]


def make_worker(stack: Stack, service: str, handler, **kwargs) -> AsyncWorker:  # type: ignore[no-untyped-def]
    return AsyncWorker(
        stack.endpoint,
        service,
        handler,
        heartbeat_interval=HEARTBEAT,
        liveness=LIVENESS,
        reconnect_initial=0.05,
        reconnect_max=0.5,
        **kwargs,
    )


@pytest.fixture
def broker(stack: Stack) -> Iterator[ManagedProcess]:
    return stack.start_broker()


@pytest.fixture
async def client(stack: Stack, broker: ManagedProcess) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(stack.endpoint, timeout=2.0, retries=1) as the_client:
        yield the_client


async def echo_upper(request: Request) -> list[bytes]:
    return [frame.upper() for frame in request.body]


async def test_async_request_reply(stack: Stack, client: AsyncClient) -> None:
    worker = make_worker(stack, "t.upper", echo_upper)
    async with asyncio.TaskGroup() as group:
        group.create_task(worker.run())
        wait = asyncio.to_thread(wait_for_workers, stack.endpoint, "t.upper")
        await wait
        assert await client.request("t.upper", b"abc", b"def") == [b"ABC", b"DEF"]
        worker.stop()
    assert worker.handled == 1


async def test_streaming_replies_arrive_as_an_async_iterator(
    stack: Stack, client: AsyncClient
) -> None:
    async def count_to_three(request: Request) -> list[bytes]:
        for i in range(3):
            request.send_partial(b"%d" % i)
            await asyncio.sleep(0.01)
        return [b"done"]

    worker = make_worker(stack, "t.count", count_to_three)
    async with asyncio.TaskGroup() as group:
        group.create_task(worker.run())
        await asyncio.to_thread(wait_for_workers, stack.endpoint, "t.count")
        parts = [part async for part in client.stream("t.count", b"go")]
        worker.stop()
    assert parts == [[b"0"], [b"1"], [b"2"], [b"done"]]


async def test_many_requests_in_flight_from_one_client(stack: Stack, client: AsyncClient) -> None:
    running = 0
    most = 0

    async def slow(request: Request) -> list[bytes]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.2)
        running -= 1
        return request.body

    workers = [make_worker(stack, "t.slow", slow) for _ in range(4)]
    async with asyncio.TaskGroup() as group:
        for worker in workers:
            group.create_task(worker.run())
        await asyncio.to_thread(wait_for_workers, stack.endpoint, "t.slow", 4)
        replies = await asyncio.gather(*(client.request("t.slow", b"%d" % i) for i in range(12)))
        for worker in workers:
            worker.stop()
    assert replies == [[b"%d" % i] for i in range(12)]  # each reply matched to its request
    assert most == 4  # all four workers were busy at once: the requests were in flight together


async def test_a_handler_exception_becomes_an_error_reply_and_the_worker_lives_on(
    stack: Stack, client: AsyncClient
) -> None:
    async def fragile(request: Request) -> list[bytes]:
        if request.body == [b"boom"]:
            raise RuntimeError("kaput")
        return request.body

    worker = make_worker(stack, "t.fragile", fragile)
    async with asyncio.TaskGroup() as group:
        group.create_task(worker.run())
        await asyncio.to_thread(wait_for_workers, stack.endpoint, "t.fragile")
        with pytest.raises(ServiceError, match="RuntimeError: kaput") as caught:
            decode_reply(await client.request("t.fragile", b"boom"), "t.fragile")
        assert caught.value.code == "internal"
        assert await client.request("t.fragile", b"fine") == [b"fine"]
        worker.stop()


async def test_heartbeats_flow_while_a_long_handler_runs(stack: Stack, client: AsyncClient) -> None:
    window = HEARTBEAT * LIVENESS

    async def long_job(request: Request) -> list[bytes]:
        await asyncio.sleep(window * 3)
        return [b"finished"]

    worker = make_worker(stack, "t.long", long_job)
    async with asyncio.TaskGroup() as group:
        group.create_task(worker.run())
        await asyncio.to_thread(wait_for_workers, stack.endpoint, "t.long")
        assert await client.request("t.long", b"x", timeout=window * 6) == [b"finished"]
        worker.stop()
    counters = mmi_json(stack.endpoint, "mmi.broker")["counters"]
    assert counters["workers_expired"] == 0
    assert counters["worker_lost"] == 0


async def test_orderly_stop_sends_disconnect(stack: Stack, client: AsyncClient) -> None:
    worker = make_worker(stack, "t.leaving", echo_upper)
    async with asyncio.TaskGroup() as group:
        group.create_task(worker.run())
        await asyncio.to_thread(wait_for_workers, stack.endpoint, "t.leaving")
        worker.stop()
    # Gone at once, not after the broker's expiry window.
    assert await client.request("mmi.service", b"t.leaving") == [b"404"]


async def test_workers_register_again_after_a_broker_restart(
    stack: Stack, broker: ManagedProcess
) -> None:
    worker = make_worker(stack, "t.phoenix", echo_upper)
    async with asyncio.TaskGroup() as group:
        group.create_task(worker.run())
        await asyncio.to_thread(wait_for_workers, stack.endpoint, "t.phoenix")
        broker.kill()
        await asyncio.sleep(HEARTBEAT * LIVENESS * 2)  # long enough for the worker to give up
        broker.start()
        await asyncio.to_thread(wait_for_broker, stack.endpoint)
        back = time.monotonic()
        await asyncio.to_thread(wait_for_workers, stack.endpoint, "t.phoenix")
        assert time.monotonic() - back < 2 * HEARTBEAT + 0.25  # small slack for scheduling
        async with AsyncClient(stack.endpoint, timeout=2, retries=0) as client:
            assert await client.request("t.phoenix", b"again") == [b"AGAIN"]
        worker.stop()
    assert worker.sessions >= 2


async def test_the_client_survives_a_broker_restart(stack: Stack, broker: ManagedProcess) -> None:
    worker = make_worker(stack, "t.survivor", echo_upper)
    async with asyncio.TaskGroup() as group:
        group.create_task(worker.run())
        await asyncio.to_thread(wait_for_workers, stack.endpoint, "t.survivor")
        broker.kill()
        async with AsyncClient(
            stack.endpoint, timeout=0.5, retries=10, backoff_initial=0.05, backoff_max=0.2
        ) as client:
            pending = asyncio.ensure_future(client.request("t.survivor", b"eventually"))
            await asyncio.sleep(1.0)
            assert not pending.done()
            broker.start()
            assert await pending == [b"EVENTUALLY"]
        worker.stop()


async def test_a_request_nobody_serves_ends_in_a_clear_error(
    stack: Stack, client: AsyncClient
) -> None:
    # The broker answers after request_expiry (3 s here); the client's timeout is longer.
    with pytest.raises(ServiceError) as caught:
        await call_async(client, "t.nobody", "get", {}, timeout=5)
    assert caught.value.code == "broker.no-worker"


async def test_request_timeout_after_retries(stack: Stack, broker: ManagedProcess) -> None:
    broker.kill()
    async with AsyncClient(stack.endpoint, timeout=0.2, retries=2, backoff_initial=0.01) as client:
        with pytest.raises(RequestTimeout, match="after 3 attempt"):
            await client.request("t.anything", b"x")


async def test_the_echo_service_over_the_service_layer(stack: Stack, client: AsyncClient) -> None:
    stack.start_echo()
    assert await call_async(client, "org.plantd.module.Echo", "echo", {"text": "hi"}) == {
        "text": "hi"
    }
    parts = [
        p async for p in stream_async(client, "org.plantd.module.Echo", "stream", {"count": 2})
    ]
    assert parts == [{"index": 0}, {"index": 1}, {"count": 2}]
    with pytest.raises(ServiceError) as caught:
        await call_async(client, "org.plantd.module.Echo", "no-such-op")
    assert caught.value.code == "unknown-operation"
    body = await client.request("org.plantd.module.Echo", b"echo", b"{not json")
    with pytest.raises(ServiceError) as caught:
        decode_reply(body)
    assert caught.value.code == "bad-request"


async def test_an_mdp01_client_talks_to_an_mdp02_worker(
    stack: Stack, broker: ManagedProcess
) -> None:
    stack.start_echo()
    async with AsyncClient(stack.endpoint, timeout=2, version=Version.V1) as client:
        body = await client.request("org.plantd.module.Echo", *encode_call("stream", {"count": 2}))
    # The PARTIALs and the FINAL, gathered into the one REPLY an MDP/0.1 client can take.
    assert [json.loads(frame)["result"] for frame in body] == [
        {"index": 0},
        {"index": 1},
        {"count": 2},
    ]


# -- the blocking API ---------------------------------------------------------------------------


def test_blocking_client_and_worker(stack: Stack, broker: ManagedProcess) -> None:
    def handler(request: Request) -> list[bytes]:
        if request.body == [b"stream"]:
            request.send_partial(b"first")
        if request.body == [b"slow"]:
            time.sleep(HEARTBEAT * LIVENESS * 2)  # heartbeats go on from the socket thread
        return [b"final"]

    worker = Worker(
        stack.endpoint, "t.blocking", handler, heartbeat_interval=HEARTBEAT, liveness=LIVENESS
    )
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for_workers(stack.endpoint, "t.blocking")
        with Client(stack.endpoint, timeout=5, retries=0) as client:
            assert client.request("t.blocking", b"plain") == [b"final"]
            assert list(client.stream("t.blocking", b"stream")) == [[b"first"], [b"final"]]
            assert client.request("t.blocking", b"slow") == [b"final"]
    finally:
        worker.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert mmi_json(stack.endpoint, "mmi.broker")["counters"]["workers_expired"] == 0


def test_blocking_service_call(stack: Stack, broker: ManagedProcess) -> None:
    stack.start_echo()
    with Client(stack.endpoint, timeout=2, retries=0) as client:
        assert call(client, "org.plantd.module.Echo", "echo", {"n": 1}) == {"n": 1}
        with pytest.raises(ServiceError, match=r"params\.delay"):
            call(client, "org.plantd.module.Echo", "echo", {"delay": "soon"})
