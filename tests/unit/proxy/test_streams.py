"""The stream hub and ``GET /api/v1/stream`` without a bus: bus frames are handed to the hub's
fan-out (:meth:`StreamHub.dispatch`) as its socket would, and the route is driven as a real
ASGI application with a :class:`ManualClock` (keepalives come when the test advances time)."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plantd.bus import Quality, encode_batch, encode_record, encode_sample
from plantd.bus._codec import Sample
from plantd.client import AsyncClient
from plantd.config import load_config
from plantd.proxy import _events
from plantd.proxy._context import ProxyContext, User
from plantd.proxy._events import decode_message
from plantd.proxy._people import People
from plantd.proxy._problems import Problem, problem_response
from plantd.proxy._streams import (
    KEEPALIVE_INTERVAL,
    WRITE_INTERVAL,
    StreamHub,
    hub_of,
    parse_topics,
    routes,
)
from plantd.testing import ManualClock, write_config

VIEWER = User("user.vera", frozenset({"viewer"}), frozenset({"read"}), "token", "t1")
NOBODY_READS = User("user.nil", frozenset(), frozenset(), "token", "t2")
ADMIN = User(
    "user.ada",
    frozenset({"admin"}),
    frozenset({"read", "operate", "configure", "admin"}),
    "token",
    "t3",
)
STAMP = 1_800_000_000.25


# -- payloads and SSE text --------------------------------------------------------------------


def batch(points: dict[str, Any], *, seq: int = 1, stamp: float = STAMP) -> bytes:
    items = []
    for name, value in points.items():
        raw = name.encode()
        items.append((bytes((len(raw),)) + raw, value, stamp, int(Quality.GOOD), seq))
    return encode_batch(7, items)


def parse(text: bytes) -> list[dict[str, Any]]:
    """SSE text as events: ``{"event", "id", "data"}`` (data parsed), comments as
    ``{"comment"}``."""
    events = []
    for block in text.decode().split("\n\n"):
        if not block:
            continue
        event: dict[str, Any] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            if name == "":
                event["comment"] = value
            elif name == "data":
                event["data"] = json.loads(value)
            elif name == "id":
                event["id"] = int(value)
            else:
                event[name] = value
        events.append(event)
    return events


def hub(queue_size: int = 100) -> StreamHub:
    return StreamHub("tcp://127.0.0.1:1", clock=ManualClock(), queue_size=queue_size)


def taken(hub_client: Any) -> list[dict[str, Any]]:
    chunk = hub_client.take()
    return [] if chunk is None else parse(chunk[0])


# -- decoding ---------------------------------------------------------------------------------


def test_a_batch_is_one_samples_event_holding_every_sample() -> None:
    payload = batch({"flow": 12.5, "running": True, "mode": "auto"}, seq=42)
    (event,) = parse(decode_message("data.pump1", payload).encode(3) or b"")
    assert event["id"] == 3
    assert event["event"] == "samples"
    assert event["data"] == {
        "topic": "data.pump1",
        "samples": [
            {
                "topic": f"data.pump1.{name}",
                "point": name,
                "value": value,
                "quality": "good",
                "time": STAMP,
                "seq": 42,
            }
            for name, value in (("flow", 12.5), ("running", True), ("mode", "auto"))
        ],
    }


def test_a_single_sample_is_a_samples_event_of_one() -> None:
    payload = encode_sample(Sample(17, STAMP, Quality.UNCERTAIN, seq=5, epoch=9))
    (event,) = parse(decode_message("data.pump1.count", payload).encode(1) or b"")
    assert event["data"] == {
        "topic": "data.pump1.count",
        "samples": [
            {
                "topic": "data.pump1.count",
                "point": "count",
                "value": 17,
                "quality": "uncertain",
                "time": STAMP,
                "seq": 5,
            }
        ],
    }


def test_a_record_is_a_record_event_with_its_json_object() -> None:
    fields = {"scope": "plant", "key": "mode", "value": {"run": [1, 2]}, "revision": 4}
    (event,) = parse(decode_message("state.plant.mode", encode_record(fields)).encode(2) or b"")
    assert event == {
        "id": 2,
        "event": "record",
        "data": {"topic": "state.plant.mode", "record": fields},
    }


def test_values_json_cannot_carry_are_sent_as_their_names() -> None:
    samples = decode_message("data.m", batch({"a": math.nan, "b": -math.inf})).encode(1)
    record = decode_message("event.m.x", encode_record({"v": [1.0, math.inf]})).encode(2)
    assert b"NaN" not in (samples or b"")
    assert b"Infinity" not in (record or b"")
    values = [s["value"] for s in parse(samples or b"")[0]["data"]["samples"]]
    assert values == ["nan", "-inf"]
    assert parse(record or b"")[0]["data"]["record"] == {"v": [1.0, "inf"]}


# -- the fan-out ------------------------------------------------------------------------------


def test_bad_payloads_are_counted_and_skipped_and_the_hub_goes_on() -> None:
    streams = hub()
    client = streams.add(("data.", "event."))
    good = batch({"flow": 1.0})
    for frames in (
        [b"data.m", b"\x02B" + good[2:]],  # a version this proxy does not read
        [b"data.m", b"\x01"],  # no kind byte
        [b"data.m", good[:-3]],  # cut short
        [b"data.m", b"\x01Q123"],  # an unknown kind
        [b"event.x", b"\x01J[1, 2]"],  # a record that is not an object
        [b"data.\xff", good],  # a topic that is not ASCII
        [b"data.m", good, b"extra"],  # three frames
    ):
        assert streams.dispatch(frames) == 0
    assert streams.dispatch([b"data.m", good]) == 1
    assert streams.bad_payloads == 7
    assert streams.messages == 8
    assert [e["id"] for e in taken(client)] == [1]  # ids count what was sent, not the garbage


def test_each_message_is_decoded_and_encoded_once_for_every_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, tuple[str, ...]]] = []
    encode = _events.BusEvent.encode

    def counting(self: _events.BusEvent, event_id: int, partial: Any = ()) -> bytes | None:
        calls.append((self.topic, tuple(partial)))
        return encode(self, event_id, partial)

    monkeypatch.setattr(_events.BusEvent, "encode", counting)
    streams = hub()
    clients = [streams.add(("data.pump1.",)) for _ in range(20)]
    clients += [streams.add(("data.",)) for _ in range(20)]
    clients += [streams.add(("data.pump1.flow",)) for _ in range(5)]
    assert streams.dispatch([b"data.pump1", batch({"flow": 1.0, "level": 2.0})]) == 45
    assert calls == [("data.pump1", ()), ("data.pump1", ("data.pump1.flow",))]
    whole = [taken(c) for c in clients[:40]]
    assert all(events == whole[0] for events in whole)
    assert len(whole[0][0]["data"]["samples"]) == 2


def test_prefixes_select_topics_and_the_points_of_a_batch() -> None:
    streams = hub()
    module = streams.add(("data.pump1.",))
    point = streams.add(("data.pump1.flow",))
    two_points = streams.add(("data.pump1.flow", "data.pump1.lev"))
    stem = streams.add(("data.pump",))  # a plain prefix: pump1 and pump10 alike
    other = streams.add(("data.pump10.",))
    events = streams.add(("event.",))
    streams.dispatch([b"data.pump1", batch({"flow": 1.0, "level": 2.0, "speed": 3.0})])
    streams.dispatch([b"data.pump10", batch({"flow": 9.0})])
    streams.dispatch([b"state.plant.mode", encode_record({"v": 1})])

    def points(client: Any) -> list[list[str]]:
        return [[s["topic"] for s in e["data"]["samples"]] for e in taken(client)]

    pump1 = ["data.pump1.flow", "data.pump1.level", "data.pump1.speed"]
    assert points(module) == [pump1]
    assert points(point) == [["data.pump1.flow"]]
    assert points(two_points) == [["data.pump1.flow", "data.pump1.level"]]
    assert points(stem) == [pump1, ["data.pump10.flow"]]
    assert points(other) == [["data.pump10.flow"]]
    assert taken(events) == []


def test_the_audit_trails_events_reach_only_who_may_read_the_audit() -> None:
    streams = hub()
    admin = streams.add(("event.",), sees_audit=True)
    viewer = streams.add(("event.",), sees_audit=False)
    everything = streams.add(("",), sees_audit=False)
    streams.dispatch([b"event.audit.call", encode_record({"principal": "user.otto"})])
    streams.dispatch([b"event.sink.cloud.up", encode_record({"v": 1})])

    def topics(client: Any) -> list[str]:
        return [e["data"]["topic"] for e in taken(client)]

    assert topics(admin) == ["event.audit.call", "event.sink.cloud.up"]
    assert topics(viewer) == ["event.sink.cloud.up"]
    assert topics(everything) == ["event.sink.cloud.up"]


def test_a_prefix_longer_than_a_record_topic_does_not_match_it() -> None:
    streams = hub()
    client = streams.add(("state.plant.mode.x",))
    assert streams.dispatch([b"state.plant.mode", encode_record({"v": 1})]) == 0
    assert streams.dispatch([b"data.m.p", encode_sample(Sample(1.0, STAMP))]) == 0
    assert taken(client) == []


def test_the_subscriptions_are_the_union_of_the_clients_reference_counted() -> None:
    streams = hub()
    a = streams.add(("data.pump1.flow", "data.pump1.level", "event."))
    b = streams.add(("data.pump1.", "state."))
    c = streams.add(("event.",))
    assert streams.subscriptions == {"data.pump1": 2, "event.": 2, "state.": 1}
    streams.remove(a)
    assert streams.subscriptions == {"data.pump1": 1, "event.": 1, "state.": 1}
    streams.remove(b)
    streams.remove(b)  # twice: no harm
    assert streams.subscriptions == {"event.": 1}
    streams.remove(c)
    assert streams.subscriptions == {}
    assert streams.clients == 0
    assert streams.dispatch([b"event.x", encode_record({})]) == 0


def test_a_full_queue_drops_the_oldest_and_reports_the_gap_first() -> None:
    streams = hub(queue_size=10)
    slow = streams.add(("data.",))
    quick = streams.add(("data.",))
    for seq in range(1, 26):
        streams.dispatch([b"data.m", batch({"p": float(seq)}, seq=seq)])
        assert [e["id"] for e in taken(quick)] == [seq]  # it keeps up: nothing lost
    events = taken(slow)
    assert events[0] == {"event": "gap", "data": {"dropped": 15}}
    assert [e["id"] for e in events[1:]] == list(range(16, 26))
    assert slow.dropped == 15
    assert streams.events_dropped == 15
    assert quick.dropped == 0
    streams.dispatch([b"data.m", batch({"p": 0.0}, seq=26)])
    assert [e.get("event") for e in taken(slow)] == ["samples"]  # the gap was said once


# -- topics -----------------------------------------------------------------------------------


def test_topics_are_kept_once_each_in_order() -> None:
    assert parse_topics(["data.a.", "event.", "data.a."]) == ("data.a.", "event.")


@pytest.mark.parametrize(
    ("topics", "named"),
    [
        ([], "at least one"),
        ([f"data.m{i}." for i in range(33)], "at most 32 topics per stream, got 33"),
        (["data.", ""], "topic is empty"),
        (["data." + "x" * 252], "is 257 characters long"),
        (["data.pump 1."], "'data.pump 1.' is not printable ASCII"),
        (["data.pümp."], "'data.pümp.' is not printable ASCII"),
        (["data.\n"], "'data.\\n' is not printable ASCII"),
    ],
)
def test_bad_topics_are_refused_naming_the_bad_one(topics: list[str], named: str) -> None:
    with pytest.raises(Problem) as refused:
        parse_topics(topics)
    assert refused.value.status == 400
    assert refused.value.code == "proxy.bad-topic"
    assert named in refused.value.detail


# -- the route, as an ASGI application ----------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def ctx(tmp_path: Path, clock: ManualClock) -> AsyncIterator[ProxyContext]:
    config_dir = write_config(
        tmp_path / "etc",
        {
            "proxy": {"stream_queue": 10},
            "paths": {"data": str(tmp_path / "data"), "run": str(tmp_path / "run")},
        },
    )
    config = load_config(config_dir, {})
    client = AsyncClient(config.broker.endpoint)
    yield ProxyContext(config, clock, People(config, clock), client, delegate=False)
    await client.aclose()


class AsUser:
    """Stands in for the auth middleware: every request is made by ``user``."""

    def __init__(self, app: ASGIApp, user: User | None) -> None:
        self.app = app
        self.user = user

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})["user"] = self.user
        await self.app(scope, receive, send)


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc, request)


def app(ctx: ProxyContext, user: User | None = VIEWER) -> Starlette:
    return Starlette(
        routes=routes(ctx),
        middleware=[Middleware(AsUser, user=user)],
        exception_handlers={Problem: _problem},
    )


class Connection:
    """One HTTP request to the app, its messages kept; ``gate`` (when cleared) holds its
    writes as a client that stopped reading would."""

    def __init__(self, application: ASGIApp, query: str) -> None:
        self.sent: list[Message] = []
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.inbox.put_nowait({"type": "http.request", "body": b"", "more_body": False})
        self.gate = asyncio.Event()
        self.gate.set()
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/api/v1/stream",
            "raw_path": b"/api/v1/stream",
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"proxy.test")],
            "client": ("127.0.0.1", 50000),
            "server": ("proxy.test", 80),
        }
        self.task = asyncio.create_task(self._run(application, scope))

    async def _run(self, application: ASGIApp, scope: Scope) -> None:
        await application(scope, self._receive, self._send)

    async def _receive(self) -> Message:
        return await self.inbox.get()

    async def _send(self, message: Message) -> None:
        await self.gate.wait()
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.sent[0]["headers"]}

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])

    def events(self) -> list[dict[str, Any]]:
        return parse(self.body())

    @property
    def ended(self) -> bool:
        return any(m["type"] == "http.response.body" and not m["more_body"] for m in self.sent)

    def leave(self) -> None:
        self.inbox.put_nowait({"type": "http.disconnect"})


async def test_the_stream_sends_events_as_they_come_and_keepalives_in_silence(
    ctx: ProxyContext, clock: ManualClock
) -> None:
    streams = hub_of(ctx)
    conn = Connection(app(ctx), "topic=data.pump1.&topic=event.")
    await clock.settle()
    assert conn.status == 200
    assert conn.headers["content-type"].startswith("text/event-stream")
    assert conn.headers["cache-control"] == "no-cache"
    assert conn.events() == [{"comment": "stream open"}]
    assert streams.clients == 1
    assert streams.subscriptions == {"data.pump1": 1, "event.": 1}

    streams.dispatch([b"data.pump1", batch({"flow": 2.5})])
    await clock.advance(WRITE_INTERVAL / 2)
    streams.dispatch([b"event.pump1.started", encode_record({"by": "otto"})])
    await clock.settle()
    assert len(conn.sent) == 2  # within WRITE_INTERVAL of the last write: it waits for more
    await clock.advance(WRITE_INTERVAL / 2)
    sent = conn.events()[1:]
    assert [(e["id"], e["event"]) for e in sent] == [(1, "samples"), (2, "record")]
    assert sent[1]["data"] == {"topic": "event.pump1.started", "record": {"by": "otto"}}
    assert len(conn.sent) == 3  # start, "stream open", and both events in one write

    await clock.advance(KEEPALIVE_INTERVAL - 1)
    assert len(conn.events()) == 3
    await clock.advance(1)
    assert conn.events()[-1] == {"comment": "keepalive"}
    await clock.advance(KEEPALIVE_INTERVAL)
    assert [e.get("comment") for e in conn.events()[-2:]] == ["keepalive", "keepalive"]
    await clock.advance(1)
    streams.dispatch([b"data.pump1", batch({"flow": 3.5})])
    await clock.settle()
    assert conn.events()[-1]["id"] == 3  # after a quiet while, an event goes at once
    assert streams.events_sent == 3
    conn.leave()
    await conn.task


async def test_a_client_that_leaves_is_removed_and_its_subscriptions_dropped(
    ctx: ProxyContext, clock: ManualClock
) -> None:
    streams = hub_of(ctx)
    application = app(ctx)
    staying = Connection(application, "topic=event.")
    leaving = Connection(application, "topic=data.pump1.flow&topic=event.")
    await clock.settle()
    assert streams.clients == 2
    assert streams.subscriptions == {"data.pump1": 1, "event.": 2}
    leaving.leave()
    await asyncio.wait_for(leaving.task, 5)
    assert streams.clients == 1
    assert streams.subscriptions == {"event.": 1}
    assert clock.sleepers == 1  # the one left waits; the other's keepalive wait is gone
    assert streams.dispatch([b"data.pump1", batch({"flow": 1.0})]) == 0
    assert streams.dispatch([b"event.x", encode_record({})]) == 1
    staying.leave()
    await asyncio.wait_for(staying.task, 5)
    assert (streams.clients, streams.subscriptions, clock.sleepers) == (0, {}, 0)


async def test_a_client_that_stops_reading_holds_up_neither_the_hub_nor_the_others(
    ctx: ProxyContext, clock: ManualClock
) -> None:
    streams = hub_of(ctx)  # proxy.stream_queue: 10
    application = app(ctx)
    stuck = Connection(application, "topic=data.")
    quick = Connection(application, "topic=data.")
    await clock.settle()
    stuck.gate.clear()  # its connection takes nothing more
    for seq in range(1, 31):
        assert streams.dispatch([b"data.m", batch({"p": float(seq)}, seq=seq)]) == 2
        await clock.advance(WRITE_INTERVAL)
        assert [e.get("id") for e in quick.events()][-1] == seq
    assert stuck.events() == [{"comment": "stream open"}]
    stuck.gate.set()
    await clock.advance(WRITE_INTERVAL)
    events = stuck.events()[1:]
    # It had taken event 1 when it stopped; 2-20 were dropped, 21-30 kept, the gap said first.
    assert events[0]["id"] == 1
    assert events[1] == {"event": "gap", "data": {"dropped": 19}}
    assert [e["id"] for e in events[2:]] == list(range(21, 31))
    assert streams.events_dropped == 19
    assert streams.events_sent == 30 + 11
    for conn in (stuck, quick):
        conn.leave()
        await asyncio.wait_for(conn.task, 5)
    assert streams.clients == 0


async def test_a_client_that_leaves_while_a_write_to_it_hangs_is_removed(
    ctx: ProxyContext, clock: ManualClock
) -> None:
    streams = hub_of(ctx)
    conn = Connection(app(ctx), "topic=data.")
    await clock.settle()
    conn.gate.clear()
    streams.dispatch([b"data.m", batch({"p": 1.0})])
    await clock.advance(WRITE_INTERVAL)  # its task is now stuck in the write
    conn.leave()
    await asyncio.wait_for(conn.task, 5)
    assert (streams.clients, streams.subscriptions) == (0, {})
    assert streams.events_sent == 0


async def test_stopping_the_hub_ends_every_stream(ctx: ProxyContext, clock: ManualClock) -> None:
    streams = hub_of(ctx)
    conn = Connection(app(ctx), "topic=data.")
    await clock.settle()
    streams.dispatch([b"data.m", batch({"p": 1.0})])
    await streams.stop()
    await asyncio.wait_for(conn.task, 5)
    assert conn.ended
    assert [e.get("id") for e in conn.events()] == [None, 1]
    assert streams.clients == 0
    late = Connection(app(ctx), "topic=data.")
    await asyncio.wait_for(late.task, 5)
    assert late.status == 503


async def test_the_hub_is_made_once_per_context_and_hooked_to_its_life(
    ctx: ProxyContext,
) -> None:
    streams = hub_of(ctx)
    routes(ctx)
    assert hub_of(ctx) is streams
    assert ctx.startup == [streams.start]
    assert ctx.shutdown == [streams.stop]
    assert streams.queue_size == 10
    assert streams.endpoint == ctx.config.bus.backend


@pytest.mark.parametrize(
    ("user", "query", "status", "code"),
    [
        (None, "topic=data.", 401, "proxy.unauthenticated"),
        (NOBODY_READS, "topic=data.", 403, "proxy.forbidden"),
        (VIEWER, "", 400, "proxy.bad-topic"),
        (VIEWER, "topic=data.&topic=bad%20one", 400, "proxy.bad-topic"),
    ],
)
async def test_a_refused_stream_is_a_problem(
    ctx: ProxyContext, user: User | None, query: str, status: int, code: str
) -> None:
    transport = httpx.ASGITransport(app=app(ctx, user))
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy.test") as client:
        answer = await client.get(f"/api/v1/stream?{query}")
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == code
    if "bad%20one" in query:
        assert answer.json()["topic"] == "bad one"
    assert hub_of(ctx).clients == 0


async def test_only_a_person_who_may_query_the_audit_gets_its_events(
    ctx: ProxyContext, clock: ManualClock
) -> None:
    streams = hub_of(ctx)
    viewer = Connection(app(ctx, VIEWER), "topic=event.")
    admin = Connection(app(ctx, ADMIN), "topic=event.")
    await clock.settle()
    streams.dispatch([b"event.audit.call", encode_record({"principal": "user.otto"})])
    await clock.advance(WRITE_INTERVAL)
    assert [e["data"]["topic"] for e in admin.events()[1:]] == ["event.audit.call"]
    assert viewer.events()[1:] == []
    for conn in (viewer, admin):
        conn.leave()
        await asyncio.wait_for(conn.task, 5)
