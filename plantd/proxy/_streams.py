"""``GET /api/v1/stream``: bus topics as Server-Sent Events, one bus subscriber for everyone.

Theory of operation. The proxy holds ONE ZeroMQ SUB socket on ``bus.backend`` (the process's
credentials under CURVE, as every plantd subscriber), the :class:`StreamHub`. Each stream
client names up to 32 topic prefixes; the hub subscribes the socket to the union of them,
reference counted: a ZeroMQ subscription is made when the first client needs it and dropped
when the last one leaves. (A prefix inside a module's batch, ``data.pump1.flow``, needs the
batch topic ``data.pump1``, as ``plantd.bus.BusSubscriber`` asks for it.)

For each bus message the hub finds the clients whose prefixes match, and only if there is one
decodes the message and encodes its SSE event, once (``plantd.proxy._events``): the same
bytes go to every client that wants the whole message. A client that follows only some points
of a batch gets those samples, encoded once per distinct set of such prefixes.

Each client has a queue of at most ``proxy.stream_queue`` events. The hub only appends to it
and never waits: when it is full the oldest event goes, and the client is told
``event: gap`` ``{"dropped": N}`` before what it gets next. The client's own task writes
everything pending in one chunk, at most every :data:`WRITE_INTERVAL` (20 ms): the first event
after a quiet while goes at once, and under a steady flow (a module's batch every few
milliseconds) one write carries all that came meanwhile — a write to a socket, not the
encoding, is what a client costs: at 100 events/s this halves the writes and takes about a
quarter off the proxy's CPU, for some 10 ms more latency (bench/proxy.py). After 15 s of
silence it writes a ``: keepalive`` comment. Waits are on the injected clock. The task ends
when the client disconnects or the hub stops; either way the client leaves the hub and its
subscriptions are released. A client that does
not read blocks only its own task (the server's flow control), never the hub or the others.

The audit trail's events (``event.audit.*``, published by the broker for every audited call
and refusal) are as sensitive as the trail itself: a client of a person who may not query
``org.plantd.Audit`` (only admins, by the built-in rules) never gets them, whatever prefix it
asked for (``event.``, or none at all).

The counters (:attr:`StreamHub.clients`, ``events_sent``, ``events_dropped``,
``bad_payloads``, ``messages``) are plain ints for the proxy's metrics; :func:`hub_of` gives
the hub of a context.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import Any, Final

import zmq
import zmq.asyncio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from plantd._zmq import async_context
from plantd.audit import AUDIT_SERVICE
from plantd.bus._codec import BusDecodeError, is_batch
from plantd.bus._sockets import _covering as zmq_subscription
from plantd.clock import Clock
from plantd.proxy._auth import require
from plantd.proxy._context import ProxyContext
from plantd.proxy._events import KEEPALIVE, decode_message, gap_event
from plantd.proxy._openapi import problems
from plantd.proxy._problems import Problem
from plantd.security import Credentials, secure
from plantd.security._refusals import RefusalWatch

__all__ = [
    "KEEPALIVE_INTERVAL",
    "MAX_TOPICS",
    "MAX_TOPIC_LENGTH",
    "OPENAPI_PATHS",
    "WRITE_INTERVAL",
    "StreamClient",
    "StreamHub",
    "hub_of",
    "parse_topics",
    "routes",
]

KEEPALIVE_INTERVAL: Final = 15.0  # seconds of silence before a ": keepalive" comment
WRITE_INTERVAL: Final = 0.02  # seconds at least between two writes to one client
MAX_TOPICS: Final = 32
MAX_TOPIC_LENGTH: Final = 256
AUDIT_TOPIC: Final = "event.audit."  # the broker publishes each audit record there
_DRAIN: Final = 256  # bus messages taken in one go before the clients' tasks get a turn
_CHECK_EVERY: Final = 1.0  # seconds of bus silence between looks at a refused CURVE key
_OPENED: Final = b": stream open\n\n"  # flushes the headers: the client knows it is subscribed
_POLLIN: Final = int(zmq.POLLIN)

log = logging.getLogger(__name__)


class StreamClient:
    """One stream: its prefixes and the queue of encoded events the hub put there."""

    def __init__(
        self, prefixes: tuple[str, ...], queue_size: int, *, sees_audit: bool = True
    ) -> None:
        self.prefixes = prefixes
        self.queue_size = queue_size
        self.sees_audit = sees_audit  # may it get the audit trail's events (event.audit.*)?
        self.sent = 0  # events handed to the connection
        self.dropped = 0  # events dropped, in all
        self.closed = False
        self.ready = asyncio.Event()  # set when there is something to write, or on close
        self._queue: collections.deque[bytes] = collections.deque()
        self._unreported = 0  # dropped since the last gap event

    def offer(self, event: bytes) -> bool:
        """Queue ``event`` without waiting; True if the oldest one had to go to make room."""
        queue = self._queue
        dropped = len(queue) >= self.queue_size
        if dropped:
            queue.popleft()
            self.dropped += 1
            self._unreported += 1
        queue.append(event)
        self.ready.set()
        return dropped

    def take(self) -> tuple[bytes, int] | None:
        """Everything pending as one chunk (a gap event first if events were dropped) and how
        many events it holds; None if there is nothing."""
        self.ready.clear()
        queue = self._queue
        if not queue:
            return None
        events = len(queue)
        parts = list(queue)
        queue.clear()
        if self._unreported:
            parts.insert(0, gap_event(self._unreported))
            self._unreported = 0
        self.sent += events
        return b"".join(parts), events

    @property
    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        self.closed = True
        self.ready.set()


class StreamHub:
    """The proxy's one bus subscriber and its fan-out to the stream clients.

    :meth:`dispatch` is the whole fan-out (frames in, client queues out: tests call it
    directly); :meth:`start` and :meth:`stop` run the socket that feeds it.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        clock: Clock,
        queue_size: int,
        high_water_mark: int = 100_000,
        credentials: Credentials | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.clock = clock
        self.queue_size = queue_size
        self.messages = 0  # bus messages received
        self.events_sent = 0  # events handed to clients' connections (one per client)
        self.events_dropped = 0  # events dropped from the queue of a client that fell behind
        self.bad_payloads = 0  # bus messages that could not be decoded (skipped)
        self._hwm = high_water_mark
        self._credentials = credentials
        self._clients: set[StreamClient] = set()
        self._by_prefix: dict[str, set[StreamClient]] = {}
        self._subscriptions: collections.Counter[str] = collections.Counter()
        self._next_id = 0
        self._socket: zmq.asyncio.Socket | None = None
        self._watch: RefusalWatch | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    # -- clients -------------------------------------------------------------------------------

    @property
    def clients(self) -> int:
        return len(self._clients)

    @property
    def subscriptions(self) -> dict[str, int]:
        """ZeroMQ subscription → how many clients need it."""
        return dict(self._subscriptions)

    def add(self, prefixes: tuple[str, ...], *, sees_audit: bool = True) -> StreamClient:
        """A new client of ``prefixes`` (validated by :func:`parse_topics`); ``sees_audit``
        False keeps ``event.audit.*`` from it, whatever its prefixes."""
        if self._stopped:
            raise Problem(503, "the proxy is shutting down", code="proxy.unavailable")
        client = StreamClient(prefixes, self.queue_size, sees_audit=sees_audit)
        self._clients.add(client)
        for prefix in prefixes:
            self._by_prefix.setdefault(prefix, set()).add(client)
        for subscription in {zmq_subscription(prefix) for prefix in prefixes}:
            self._subscriptions[subscription] += 1
            if self._subscriptions[subscription] == 1 and self._socket is not None:
                self._socket.subscribe(subscription.encode())
        return client

    def remove(self, client: StreamClient) -> None:
        """``client`` leaves (idempotent); subscriptions no one needs any more are dropped."""
        if client not in self._clients:
            return
        self._clients.discard(client)
        client.close()
        for prefix in client.prefixes:
            others = self._by_prefix.get(prefix)
            if others is not None:
                others.discard(client)
                if not others:
                    del self._by_prefix[prefix]
        for subscription in {zmq_subscription(prefix) for prefix in client.prefixes}:
            self._subscriptions[subscription] -= 1
            if self._subscriptions[subscription] <= 0:
                del self._subscriptions[subscription]
                if self._socket is not None:
                    self._socket.unsubscribe(subscription.encode())

    # -- the fan-out ---------------------------------------------------------------------------

    def dispatch(self, frames: list[bytes]) -> int:
        """Hand one bus message to every client that wants it; returns to how many."""
        self.messages += 1
        if len(frames) != 2:
            self._bad(frames[0] if frames else b"", f"{len(frames)} frames, not 2")
            return 0
        topic_bytes, payload = frames
        try:
            topic = topic_bytes.decode("ascii")
        except UnicodeDecodeError:
            self._bad(topic_bytes, "the topic is not ASCII")
            return 0
        # A prefix inside the topic selects points of it: only a batch has points inside.
        batch = is_batch(payload)
        inside = topic + "."
        whole: set[StreamClient] = set()
        partial: dict[StreamClient, list[str]] = {}
        for prefix, clients in self._by_prefix.items():
            if topic.startswith(prefix) or (batch and prefix == inside):
                whole |= clients
            elif batch and prefix.startswith(inside):  # some points of the batch
                for client in clients:
                    partial.setdefault(client, []).append(prefix)
        if topic.startswith(AUDIT_TOPIC):  # who did what: only for who may read the audit
            whole = {client for client in whole if client.sees_audit}
        if not whole and not partial:
            return 0  # another client's subscription brought it (data.pump10 for data.pump1)
        try:
            event = decode_message(topic, payload)
        except BusDecodeError as exc:
            self._bad(topic_bytes, str(exc))
            return 0
        self._next_id += 1
        event_id = self._next_id
        reached = 0
        if whole:
            encoded = event.encode(event_id)
            if encoded is not None:
                for client in whole:
                    self._offer(client, encoded)
                reached = len(whole)
        selections: dict[tuple[str, ...], bytes | None] = {}
        for client, prefixes in partial.items():
            if client in whole:
                continue
            key = tuple(sorted(prefixes))
            if key not in selections:
                selections[key] = event.encode(event_id, key)
            selected = selections[key]
            if selected is not None:
                self._offer(client, selected)
                reached += 1
        return reached

    def _offer(self, client: StreamClient, event: bytes) -> None:
        if client.offer(event):
            self.events_dropped += 1

    def _bad(self, topic: bytes, why: str) -> None:
        self.bad_payloads += 1
        if self.bad_payloads <= 10:  # a broken publisher repeats itself: the counter says more
            log.warning("stream hub skipped a bus message on %r: %s", topic[:64], why)

    # -- the socket ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the bus socket and start receiving (a ``ctx.startup`` hook)."""
        if self._task is not None or self._stopped:
            return
        self._open()
        self._task = asyncio.create_task(self._receive(), name="plantd-proxy-stream-hub")

    async def stop(self) -> None:
        """End every stream and close the socket (a ``ctx.shutdown`` hook)."""
        self._stopped = True
        for client in list(self._clients):
            client.close()  # each client's task writes what it has, ends, and leaves the hub
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                if (current := asyncio.current_task()) is not None and current.cancelling():
                    raise
            self._task = None
        self._close()

    def _open(self) -> None:
        socket: zmq.asyncio.Socket = async_context().socket(zmq.SUB)
        socket.set_hwm(self._hwm)
        socket.linger = 0
        if secure(socket, self._credentials):
            self._watch = RefusalWatch(socket)
        for subscription in sorted(self._subscriptions):
            socket.subscribe(subscription.encode())
        socket.connect(self.endpoint)
        self._socket = socket

    def _close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    async def _receive(self) -> None:
        while True:
            socket = self._socket
            assert socket is not None
            waiting = not socket.get(zmq.EVENTS) & _POLLIN  # type: ignore[operator]
            if waiting and not await socket.poll(int(_CHECK_EVERY * 1000)):
                self._check_refused()
                continue
            for _ in range(_DRAIN):
                try:
                    self.dispatch(await socket.recv_multipart())
                except Exception:  # a bug in the fan-out must not end every stream
                    log.exception("stream hub failed on a bus message")
                if not socket.get(zmq.EVENTS) & _POLLIN:  # type: ignore[operator]
                    break
            await asyncio.sleep(0)  # the clients' tasks write what this round queued

    def _check_refused(self) -> None:
        """Under CURVE, a socket the broker refused (a rotated key) is rebuilt with the
        current key and every subscription (``plantd.security._refusals``)."""
        if self._watch is not None and self._watch.refused():
            log.warning("the bus refused the proxy's key; connecting again with the current one")
            self._close()
            self._open()


# -- the HTTP side ----------------------------------------------------------------------------


def parse_topics(values: list[str]) -> tuple[str, ...]:
    """The prefixes of ``?topic=…&topic=…``, each once; a 400 Problem names a bad one."""
    if not values:
        raise Problem(
            400,
            "name at least one bus topic prefix: ?topic=data.pump1.&topic=event.",
            code="proxy.bad-topic",
        )
    if len(values) > MAX_TOPICS:
        raise Problem(
            400,
            f"at most {MAX_TOPICS} topics per stream, got {len(values)}",
            code="proxy.bad-topic",
        )
    for value in values:
        shown = value if len(value) <= 64 else value[:64] + "…"
        if not value:
            raise Problem(
                400,
                "topic is empty: name a prefix (data., state., event., log., metrics. or longer)",
                code="proxy.bad-topic",
                topic=value,
            )
        if len(value) > MAX_TOPIC_LENGTH:
            raise Problem(
                400,
                f"topic {shown!r} is {len(value)} characters long (at most {MAX_TOPIC_LENGTH})",
                code="proxy.bad-topic",
                topic=value,
            )
        if not all("!" <= char <= "~" for char in value):
            raise Problem(
                400,
                f"topic {shown!r} is not printable ASCII without spaces",
                code="proxy.bad-topic",
                topic=value,
            )
    return tuple(dict.fromkeys(values))


class EventStream(Response):
    """The ``text/event-stream`` answer of one client, for as long as it stays."""

    media_type = "text/event-stream"

    def __init__(
        self, hub: StreamHub, prefixes: tuple[str, ...], *, sees_audit: bool = True
    ) -> None:
        self.hub = hub
        self.prefixes = prefixes
        self.sees_audit = sees_audit
        self.status_code = 200
        self.background = None
        # no-cache: a stream is never stored; X-Accel-Buffering: no reverse proxy holds it back
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = self.hub.add(self.prefixes, sees_audit=self.sees_audit)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": _OPENED, "more_body": True})
            async with asyncio.TaskGroup() as tasks:
                writer = tasks.create_task(self._write(client, send))
                watcher = tasks.create_task(_until_disconnect(receive))
                # Whichever ends first ends the other: a client gone, or the stream ended.
                watcher.add_done_callback(lambda _: writer.cancel())
                writer.add_done_callback(lambda _: watcher.cancel())
        finally:
            self.hub.remove(client)

    async def _write(self, client: StreamClient, send: Send) -> None:
        # A write that fails (an ASGI 2.4 server says so with OSError) means the client left.
        with contextlib.suppress(OSError):
            await self._write_until_closed(client, send)

    async def _write_until_closed(self, client: StreamClient, send: Send) -> None:
        clock = self.hub.clock
        last_write = clock.monotonic()
        while not client.closed:
            now = clock.monotonic()
            if client.pending:
                if now < (write_at := last_write + WRITE_INTERVAL):  # more may come: one write
                    await clock.sleep(write_at - now)
                    continue
                chunk, events = client.take() or (b"", 0)
            elif now < (keepalive_at := last_write + KEEPALIVE_INTERVAL):
                await clock.wait(client.ready, keepalive_at - now)
                continue
            else:
                chunk, events = KEEPALIVE, 0
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            self.hub.events_sent += events
            last_write = clock.monotonic()
        # The hub stopped (a client that left does not get here: this task is cancelled).
        taken = client.take()
        if taken is not None:
            await send({"type": "http.response.body", "body": taken[0], "more_body": True})
            self.hub.events_sent += taken[1]
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def hub_of(ctx: ProxyContext) -> StreamHub:
    """The stream hub of ``ctx``, made (and hooked to its startup and shutdown) on first use;
    the proxy's metrics read its counters."""
    for hook in ctx.startup:
        owner = getattr(hook, "__self__", None)
        if isinstance(owner, StreamHub):
            return owner
    hub = StreamHub(
        ctx.config.bus.backend,
        clock=ctx.clock,
        queue_size=ctx.config.proxy.stream_queue,
        high_water_mark=ctx.config.bus.high_water_mark,
    )
    ctx.startup.append(hub.start)
    ctx.shutdown.append(hub.stop)
    return hub


def routes(ctx: ProxyContext) -> list[BaseRoute]:
    hub = hub_of(ctx)

    async def stream(request: Request) -> Response:
        user = require(request, "read")
        # The audit trail's events are as sensitive as the trail: only those who may query
        # org.plantd.Audit (admins, by the built-in rules) get them on a stream.
        sees_audit = user.may(ctx.people.access_of(AUDIT_SERVICE, "query"))
        topics = parse_topics(request.query_params.getlist("topic"))
        return EventStream(hub, topics, sees_audit=sees_audit)

    return [Route("/api/v1/stream", stream, methods=["GET"], name="stream")]


OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/stream": {
        "get": {
            "operationId": "proxy.stream",
            "summary": "Follow bus topics as Server-Sent Events",
            "description": (
                "A `text/event-stream` of every bus message whose topic starts with one of the "
                "`topic` prefixes. Events: `samples` (`{topic, samples: [{topic, point, value, "
                "quality, time, seq}]}`, a module's whole batch as one event), `record` "
                "(`{topic, record}`: state., event., log., metrics. records), `gap` "
                "(`{dropped: N}`: this client fell more than `proxy.stream_queue` events "
                "behind and its oldest were dropped); a `: keepalive` comment after 15 s of "
                "silence. `id` counts bus messages across the proxy. The audit trail's events "
                "(`event.audit.*`) reach only people who may query `org.plantd.Audit`. The "
                "stream never ends by itself."
            ),
            "tags": ["proxy"],
            "x-plantd-access": "read",
            "parameters": [
                {
                    "name": "topic",
                    "in": "query",
                    "required": True,
                    "style": "form",
                    "explode": True,
                    "description": (
                        "A bus topic prefix (`data.pump1.`, `data.pump1.flow`, `state.`, "
                        "`event.`…); repeat for more."
                    ),
                    "schema": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_TOPICS,
                        "items": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_TOPIC_LENGTH,
                            "pattern": "^[!-~]+$",
                        },
                    },
                }
            ],
            "responses": {
                "200": {
                    "description": "The stream, until the client leaves or the proxy stops.",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                **problems(400, 401, 403, 503),
            },
        }
    }
}
