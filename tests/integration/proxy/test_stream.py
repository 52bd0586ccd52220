"""``GET /api/v1/stream`` end to end: a real broker's bus, a real publisher, the stream route on
a real uvicorn server (port 0, read back) and a real HTTP client reading Server-Sent Events.

In the first tests the person is set by a stand-in for the auth middleware (the route only
asks ``_auth.require``), so that the bus side can be driven by the test's own publisher;
everything between the bus and the socket is the proxy's own. The last ones run against the
whole thing: ``plantd-proxy`` under CURVE (``proxy_stack``), a person logged in with their
password, and the demo's ``station`` module publishing its polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from plantd.bus import BusPublisher, Quality
from plantd.client import AsyncClient
from plantd.clock import SYSTEM_CLOCK
from plantd.config import load_config
from plantd.proxy._context import ProxyContext, User
from plantd.proxy._people import People
from plantd.proxy._streams import StreamHub, hub_of, routes
from tests.conftest import Stack

from .conftest import ProxyStack

pytestmark = [pytest.mark.timeout(60)]

VIEWER = User("user.vera", frozenset({"viewer"}), frozenset({"read"}), "token", "t1")


class AsUser:
    def __init__(self, app: ASGIApp, user: User) -> None:
        self.app = app
        self.user = user

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})["user"] = self.user
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def proxy(stack: Stack) -> AsyncIterator[tuple[str, StreamHub]]:
    """The stream route on uvicorn at 127.0.0.1, port 0; its URL and hub."""
    config = load_config(stack.config_dir)
    client = AsyncClient(config.broker.endpoint)
    ctx = ProxyContext(config, SYSTEM_CLOCK, People(config, SYSTEM_CLOCK), client, False)
    app = Starlette(routes=routes(ctx), middleware=[Middleware(AsUser, user=VIEWER)])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None))
    for hook in ctx.startup:
        await hook()
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not serving.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", hub_of(ctx)
    finally:
        for hook in ctx.shutdown:
            await hook()
        server.should_exit = True
        await serving
        sock.close()
        await client.aclose()


async def read_events(answer: httpx.Response, into: asyncio.Queue[dict[str, Any]]) -> None:
    """Every SSE event (and comment) of ``answer``, parsed, into ``into``."""
    buffer = ""
    async for text in answer.aiter_text():
        buffer += text
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            event: dict[str, Any] = {}
            for line in block.split("\n"):
                name, _, value = line.partition(": ")
                if name == "":
                    event["comment"] = value
                else:
                    event[name] = json.loads(value) if name == "data" else value
            into.put_nowait(event)


async def until(condition: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        await asyncio.sleep(0.02)


async def test_a_published_batch_arrives_as_one_sse_event(stack: Stack) -> None:
    stack.start_broker()
    publisher = BusPublisher(stack.settings["bus"]["frontend"])
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    try:
        async with (
            proxy(stack) as (url, hub),
            httpx.AsyncClient(base_url=url, timeout=10) as http,
            http.stream(
                "GET", "/api/v1/stream", params=[("topic", "data.pump1."), ("topic", "event.")]
            ) as answer,
        ):
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            reader = asyncio.create_task(read_events(answer, events))
            assert await asyncio.wait_for(events.get(), 10) == {"comment": "stream open"}
            assert hub.subscriptions == {"data.pump1": 1, "event.": 1}

            # The subscription takes a moment to reach the publisher through the broker's
            # bus: publish until a batch arrives, then look at what did.
            stamp = time.time()
            for attempt in range(500):
                publisher.publish_batch("data.pump2", [("flow", -1.0, stamp, Quality.GOOD)])
                publisher.publish_batch(
                    "data.pump1",
                    [
                        ("flow", 12.5, stamp, Quality.GOOD),
                        ("level", float(attempt), stamp + 0.5, Quality.UNCERTAIN),
                    ],
                )
                with contextlib.suppress(TimeoutError):
                    first = await asyncio.wait_for(events.get(), 0.05)
                    break
            else:
                pytest.fail("no published batch reached the stream")
            assert first["event"] == "samples"
            attempt = int(first["data"]["samples"][1]["value"])
            assert first["data"] == {
                "topic": "data.pump1",
                "samples": [
                    {
                        "topic": "data.pump1.flow",
                        "point": "flow",
                        "value": 12.5,
                        "quality": "good",
                        "time": stamp,
                        "seq": attempt + 1,
                    },
                    {
                        "topic": "data.pump1.level",
                        "point": "level",
                        "value": float(attempt),
                        "quality": "uncertain",
                        "time": stamp + 0.5,
                        "seq": attempt + 1,
                    },
                ],
            }
            # One publisher's messages keep their order: once the record is here, everything
            # sent before it is too, and data.pump2 was never sent to this client.
            publisher.publish_record("event.pump1.started", {"by": "otto"})
            rest: list[dict[str, Any]] = []
            while not rest or rest[-1]["event"] != "record":
                rest.append(await asyncio.wait_for(events.get(), 10))
            assert all(e["data"]["topic"] == "data.pump1" for e in rest[:-1])
            assert rest[-1]["data"] == {"topic": "event.pump1.started", "record": {"by": "otto"}}
            ids = [int(e["id"]) for e in [first, *rest]]
            assert ids == sorted(ids)
            assert hub.clients == 1
            reader.cancel()
        # The client has gone: the hub forgets it and drops its subscriptions.
        await until(lambda: hub.clients == 0, "the hub forgets a client that left")
        assert hub.subscriptions == {}
        assert hub.events_sent >= 2
        assert hub.bad_payloads == 0
    finally:
        publisher.close()


async def test_every_client_of_a_topic_gets_the_same_events(stack: Stack) -> None:
    stack.start_broker()
    publisher = BusPublisher(stack.settings["bus"]["frontend"])
    queues: list[asyncio.Queue[dict[str, Any]]] = [asyncio.Queue() for _ in range(3)]
    try:
        async with (
            proxy(stack) as (url, hub),
            httpx.AsyncClient(base_url=url, timeout=10) as http,
            contextlib.AsyncExitStack() as streams,
        ):
            readers = []
            for queue in queues:
                answer = await streams.enter_async_context(
                    http.stream("GET", "/api/v1/stream", params={"topic": "state."})
                )
                readers.append(asyncio.create_task(read_events(answer, queue)))
                assert (await asyncio.wait_for(queue.get(), 10))["comment"] == "stream open"
            assert hub.subscriptions == {"state.": 3}
            for index in range(500):  # until the subscription has reached the publisher
                publisher.publish_record("state.plant.mode", {"value": index})
                if not queues[0].empty():
                    break
                await asyncio.sleep(0.02)
            publisher.publish_record("state.plant.end", {})
            got = []
            for queue in queues:
                events: list[dict[str, Any]] = []
                while not events or events[-1]["data"]["topic"] != "state.plant.end":
                    events.append(await asyncio.wait_for(queue.get(), 10))
                got.append(events)
            # Each started receiving when the subscription reached the publisher: the same
            # moment for all, since the hub holds one subscription for the three.
            assert got[0] == got[1] == got[2]
            for reader in readers:
                reader.cancel()
        await until(lambda: hub.clients == 0, "the hub forgets clients that left")
    finally:
        publisher.close()


def sse_events(answer: httpx.Response, count: int) -> list[dict[str, Any]]:
    """The first ``count`` events (comments left out) of a synchronous SSE answer."""
    events: list[dict[str, Any]] = []
    event: dict[str, Any] = {}
    for line in answer.iter_lines():
        if line == "":
            if event:
                events.append(event)
                if len(events) == count:
                    break
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            event[name] = json.loads(value) if name == "data" else value
    return events


def test_a_viewer_follows_a_module_s_polls_through_plantd_proxy(proxy_stack: ProxyStack) -> None:
    with (
        contextlib.closing(proxy_stack.client("user.vera")) as http,
        http.stream(
            "GET", "/api/v1/stream", params=[("topic", "data.station."), ("topic", "event.")]
        ) as answer,
    ):
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        events = [e for e in sse_events(answer, 3) if e["event"] == "samples"]
    assert events, "the station module polls every 200 ms: its batches must arrive"
    for event in events:
        assert event["data"]["topic"] == "data.station"
        samples = event["data"]["samples"]
        assert samples
        for sample in samples:
            assert sample["topic"] == f"data.station.{sample['point']}"
            assert sample["quality"] in ("good", "uncertain", "bad")
            assert isinstance(sample["seq"], int)
            assert sample["seq"] >= 1
            assert isinstance(sample["time"], float)
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids)


def test_the_stream_needs_a_person_and_good_topics(proxy_stack: ProxyStack) -> None:
    with contextlib.closing(proxy_stack.client()) as nobody:
        answer = nobody.get("/api/v1/stream", params={"topic": "data."})
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    with contextlib.closing(proxy_stack.client("user.vera")) as http:
        answer = http.get("/api/v1/stream", params={"topic": ["data.", "data. pump"]})
    assert answer.status_code == 400
    assert answer.json()["topic"] == "data. pump"
