"""Records written by an AuditLog reach a subscriber of ``event.audit.`` through a real
XSUB/XPUB forwarder (the broker's bus, bound on ZeroMQ-chosen ports)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from plantd import _sqlite
from plantd._zmq import sync_context
from plantd.audit import AuditEvent, AuditLog
from plantd.audit._store import query_records
from plantd.bus import BusSubscriber, Record
from plantd.config import AuditConfig


class Forwarder:
    """XSUB (publishers) → XPUB (subscribers) in a thread, as ``BusProxy`` runs it, with both
    ends bound to ``tcp://127.0.0.1:*`` and the ports ZeroMQ chose read back."""

    def __init__(self) -> None:
        self.frontend = self.backend = ""
        self._control = f"inproc://audit-test-bus-{id(self)}"
        self._bound = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Forwarder:
        self._thread.start()
        assert self._bound.wait(10), "the forwarder did not bind"
        return self

    def __exit__(self, *exc_info: object) -> None:
        control = sync_context().socket(zmq.PAIR)
        try:
            control.connect(self._control)
            control.send(b"TERMINATE")
        finally:
            control.close(linger=0)
        self._thread.join(5)

    def _run(self) -> None:
        context = sync_context()
        frontend, backend = context.socket(zmq.XSUB), context.socket(zmq.XPUB)
        control = context.socket(zmq.PAIR)
        try:
            control.bind(self._control)
            frontend.bind("tcp://127.0.0.1:*")
            backend.bind("tcp://127.0.0.1:*")
            self.frontend = frontend.last_endpoint.decode()
            self.backend = backend.last_endpoint.decode()
            self._bound.set()
            zmq.proxy_steerable(frontend, backend, None, control)
        finally:
            for sock in (frontend, backend, control):
                sock.close(linger=0)


@pytest.fixture
def forwarder() -> Iterator[Forwarder]:
    with Forwarder() as running:
        yield running


async def test_each_written_record_is_published_as_event_audit_action(
    forwarder: Forwarder, tmp_path: Path
) -> None:
    path = tmp_path / "audit.db"
    subscriber = BusSubscriber(forwarder.backend, ["event.audit."])
    log = AuditLog(path, AuditConfig(), bus_endpoint=forwarder.frontend, flush_interval=0.05)
    log.start()
    try:
        # The slow joiner: a subscription takes a moment to reach the publisher through the
        # forwarder. Record warm-up events until one comes through.
        deadline = time.monotonic() + 10
        while True:
            assert time.monotonic() < deadline, "no audit record reached the subscriber"
            log.record(AuditEvent("warmup", "key", "warmup", "ok"))
            assert await asyncio.to_thread(log.flush)
            if await subscriber.receive_within(0.1) is not None:
                break
        log.record(AuditEvent("alice", "call", "org.plantd.State set", "ok", '{"key":"a"}', "mdp"))
        for _ in range(3):
            log.record(AuditEvent("-", "connect", "tcp://127.0.0.1:9797", "denied", "no key", "z"))
        log.record(AuditEvent("bob", "register", "org.plantd.module.pump1", "denied", "role"))
        assert await asyncio.to_thread(log.flush)
        received: dict[str, dict[str, object]] = {}
        deadline = time.monotonic() + 10
        while len(received) < 3:
            message = await subscriber.receive_within(max(0.0, deadline - time.monotonic()))
            assert message is not None, f"only {sorted(received)} arrived"
            assert isinstance(message.payload, Record)
            if message.payload.fields["principal"] != "warmup":
                received[message.topic] = message.payload.fields
    finally:
        log.stop()
        subscriber.close()
    assert sorted(received) == ["event.audit.call", "event.audit.connect", "event.audit.register"]
    assert received["event.audit.connect"]["count"] == 3
    assert received["event.audit.call"]["detail"] == '{"key":"a"}'
    conn = _sqlite.connect(path, readonly=True)
    try:
        on_disk = {r["id"]: r for r in query_records(conn)}
    finally:
        conn.close()
    for fields in received.values():  # what the bus carries is the record, id and hash included
        assert on_disk[fields["id"]] == fields  # type: ignore[index]
