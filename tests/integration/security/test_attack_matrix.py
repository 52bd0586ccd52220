"""The attack matrix: every way in without an admitted key, 100 attempts each, against a real
CURVE broker — a request to a service, a READY for a protected service, a bus publication.

Nothing gets through, every refusal is in the audit trail (counted exactly, refusals folded
into one record keep their count), and a well-behaved client and publisher working meanwhile
lose nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from urllib.parse import urlparse

import pytest
import zmq

from plantd.bus import BusPublisher, BusSubscriber, GapTracker, Sample
from plantd.client import Client
from plantd.security import Credentials
from plantd.service import call, encode_call
from plantd.worker import AsyncWorker, Request
from tests.conftest import Stack

pytestmark = [pytest.mark.stack(security={"mode": "curve"}), pytest.mark.slow]

ATTEMPTS = 100
ECHO = "org.plantd.module.Echo"
STATE = "org.plantd.State"


# -- the attackers --------------------------------------------------------------------------


def _zmtp_greeting(mechanism: bytes) -> bytes:
    """A ZMTP 3.0 greeting (64 bytes) as the client side sends it."""
    return b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + mechanism.ljust(20, b"\0") + b"\0" * 32


def _frame(body: bytes, *, more: bool = False, command: bool = False) -> bytes:
    flags = (0x01 if more else 0) | (0x04 if command else 0)
    return bytes((flags, len(body))) + body


def _message(frames: list[bytes]) -> bytes:
    return b"".join(_frame(f, more=i < len(frames) - 1) for i, f in enumerate(frames))


def _raw(endpoint: str, payload: bytes) -> None:
    """Send ``payload`` over a plain TCP connection, read what comes back, close."""
    address = urlparse(endpoint.replace("tcp://", "http://"))
    with socket.create_connection((address.hostname, address.port), timeout=2) as sock:
        sock.sendall(payload)
        sock.settimeout(0.5)
        try:
            while sock.recv(4096):
                pass
        except (TimeoutError, ConnectionResetError):
            pass


def _null_bytes(frames: list[bytes], socket_type: bytes) -> bytes:
    """A NULL-mechanism ZMTP peer: greeting, READY command, then the message."""
    ready = b"\x05READY" + b"\x0bSocket-Type" + struct.pack(">I", len(socket_type)) + socket_type
    return _zmtp_greeting(b"NULL") + _frame(ready, command=True) + _message(frames)


def _curve_junk(frames: list[bytes]) -> bytes:
    """A peer that claims CURVE and sends a HELLO that is not one, then the message."""
    return (
        _zmtp_greeting(b"CURVE")
        + _frame(b"\x05HELLO" + b"\x01" * 60, command=True)
        + (_message(frames))
    )


class Attacker:
    """One way of connecting; ``send(endpoint, frames, socket_type)`` makes one attempt."""

    def __init__(
        self,
        name: str,
        setup: Callable[[zmq.Socket[bytes]], None] | None = None,
        raw: Callable[[list[bytes], bytes], bytes] | None = None,
    ) -> None:
        self.name = name
        self._setup = setup
        self._raw = raw

    def send(self, context: zmq.Context[zmq.Socket[bytes]], endpoint: str, frames: list[bytes],
             socket_type: int) -> None:  # fmt: skip
        if self._raw is not None:
            kind = b"DEALER" if socket_type == zmq.DEALER else b"PUB"
            _raw(endpoint, self._raw(frames, kind))
            return
        sock = context.socket(socket_type)
        sock.linger = 0
        sock.reconnect_ivl = -1  # one connection, one handshake: the audit count is exact
        if self._setup is not None:
            self._setup(sock)
        monitor = sock.get_monitor_socket(_ENDED)
        sock.connect(endpoint)
        with contextlib.suppress(zmq.Again):  # no connection to queue on: refused already
            sock.send_multipart(frames, zmq.NOBLOCK)
        assert monitor.poll(5000), f"{self.name}: the broker neither refused nor dropped us"
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)


# What the attacker's own socket sees when its one connection ends.
_ENDED = (
    zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


def _curve(keys: tuple[bytes, bytes], server: bytes) -> Callable[[zmq.Socket[bytes]], None]:
    def setup(sock: zmq.Socket[bytes]) -> None:
        sock.curve_serverkey = server
        sock.curve_publickey, sock.curve_secretkey = keys

    return setup


def _plain(sock: zmq.Socket[bytes]) -> None:
    sock.plain_username = b"admin"
    sock.plain_password = b"admin"


# -- the test ----------------------------------------------------------------------------------


class CountingEcho:
    """An Echo worker in this process that counts the requests it sees, by sender tag."""

    def __init__(self, endpoint: str, credentials: Credentials) -> None:
        self.seen: dict[str, int] = {}
        self.worker = AsyncWorker(endpoint, ECHO, self.handle, heartbeat_interval=0.25,
                                  credentials=credentials)  # fmt: skip
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete,
                                       args=(self.worker.run(),), daemon=True)  # fmt: skip

    async def handle(self, request: Request) -> list[bytes]:
        tag = json.loads(request.body[1]).get("tag", "?") if len(request.body) > 1 else "?"
        self.seen[tag] = self.seen.get(tag, 0) + 1
        return [json.dumps({"ok": True, "result": tag}).encode()]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.worker.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def _audited_refusals(admin: Client, ours: list[Credentials]) -> dict[str, int]:
    """Refused connections in the audit trail: sum of counts by target (the socket). Refusals
    of our own keys (tried while the broker had not yet re-read the keys) are not attacks."""
    result = call(admin, "org.plantd.Audit", "query",
                  {"action": "connect", "result": "denied", "limit": 10_000})  # fmt: skip
    not_attacks = {f"unknown key {c.public.decode()}" for c in ours}
    totals: dict[str, int] = {}
    for record in result["records"]:
        if record["detail"] not in not_attacks:
            totals[record["target"]] = totals.get(record["target"], 0) + record["count"]
    return totals


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.1)


def test_nothing_gets_in_without_an_admitted_key(stack: Stack) -> None:
    stack.start_broker()
    endpoint, bus = stack.endpoint, stack.settings["bus"]
    echo = CountingEcho(endpoint, stack.credentials("service.echo"))
    echo.thread.start()
    admin = Client(endpoint, timeout=5, retries=1)
    _wait_for(lambda: json.loads(admin.request("mmi.workers", ECHO.encode())[0])
              .get(ECHO, {}).get("idle", 0) == 1, 10, "the Echo worker registers")  # fmt: skip

    broker_key = stack.credentials("service.echo").server
    module = stack.credentials("module.m1")  # a well-behaved publisher, below
    mallory = stack.credentials("user.mallory", ("admin",))
    stack.keyset().revoke("user.mallory")
    time.sleep(0.6)  # the broker re-reads the keys every 0.25 s
    attackers = [
        Attacker("no key"),
        Attacker("unknown key", _curve(zmq.curve_keypair(), broker_key)),
        Attacker("NULL mechanism", raw=_null_bytes),
        Attacker("PLAIN", _plain),
        Attacker("revoked key", _curve((mallory.public, mallory.secret), broker_key)),
        Attacker("raw ZMTP bytes", raw=lambda frames, kind: _curve_junk(frames)),
    ]

    # Well-behaved peers, working all along: a client and a module's publisher.
    subscriber_ready = threading.Event()
    received: list[str] = []
    gaps = GapTracker()
    stop = threading.Event()  # the client and the publisher
    stop_listening = threading.Event()
    good_replies: list[str] = []
    failures: list[str] = []

    def good_client() -> None:
        with Client(endpoint, timeout=5, retries=0) as client:
            while not stop.is_set():
                try:
                    good_replies.append(call(client, ECHO, "echo", {"tag": "good"}))
                except Exception as exc:
                    failures.append(repr(exc))

    async def subscribe() -> None:
        subscriber = BusSubscriber(bus["backend"], ["data."])
        subscriber_ready.set()
        while not stop_listening.is_set():
            message = await subscriber.receive_within(0.2)
            if message is not None:
                received.append(message.topic)
                if isinstance(message.payload, Sample):
                    gaps.observe(message.topic, message.payload)
        subscriber.close()

    published = 0
    publishing = threading.Event()

    def publish() -> None:
        nonlocal published
        publisher = BusPublisher(bus["frontend"], credentials=module)
        if asyncio.run(publisher.wait_for_subscribers(10.0)):
            publishing.set()
        while not stop.is_set():
            publisher.publish_sample("data.m1.level", float(published))
            published += 1
            time.sleep(0.002)
        publisher.close()

    threads = [threading.Thread(target=good_client),
               threading.Thread(target=lambda: asyncio.run(subscribe())),
               threading.Thread(target=publish)]  # fmt: skip
    threads[1].start()
    subscriber_ready.wait(5)
    for thread in (threads[0], threads[2]):
        thread.start()
    assert publishing.wait(10), "the module's publisher never saw the subscriber"
    _wait_for(lambda: len(good_replies) > 0, 10, "the good client is answered")

    context = zmq.Context()
    request = [b"MDPC02", b"\x01", ECHO.encode(), *encode_call("echo", {"tag": "evil"})]
    ready = [b"MDPW02", b"\x01", STATE.encode()]
    forged = [b"data.m1.level", b"forged"]
    try:
        for attacker in attackers:
            for _ in range(ATTEMPTS):
                attacker.send(context, endpoint, request, zmq.DEALER)
                attacker.send(context, endpoint, ready, zmq.DEALER)
                attacker.send(context, bus["frontend"], forged, zmq.PUB)
    finally:
        stop.set()
        for thread in (threads[0], threads[2]):
            thread.join(timeout=15)
        _wait_for(lambda: len(received) >= published, 10, "every good sample arrives")
        stop_listening.set()
        threads[1].join(timeout=15)
        context.destroy(linger=0)

    # 0 delivered: no request reached a worker, no worker registered, no sample went out.
    assert echo.seen.get("evil", 0) == 0
    workers = json.loads(admin.request("mmi.workers", STATE.encode())[0])
    assert workers.get(STATE, {"idle": 0, "busy": 0}) in ({"idle": 0, "busy": 0, "queued": 0},
                                                          {"idle": 0, "busy": 0})  # fmt: skip
    assert received
    assert all(topic == "data.m1.level" for topic in received)
    assert gaps.missing == 0  # every forged "sample" was stopped: none took a number
    assert gaps.duplicates == 0
    # Well-behaved peers unaffected: every call answered, every sample through.
    assert failures == []
    assert len(good_replies) > 10
    assert echo.seen["good"] == len(good_replies)
    assert len(received) == published

    # Every refusal audited: one connection per attempt, on two sockets.
    expected = {endpoint: 2 * ATTEMPTS * len(attackers), bus["frontend"]: ATTEMPTS * len(attackers)}
    deadline = time.monotonic() + 15
    ours = [module, mallory]
    while (audited := _audited_refusals(admin, ours)) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    admin.close()
    echo.stop()
    assert audited == expected
