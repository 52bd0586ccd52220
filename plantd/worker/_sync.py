"""The blocking MDP worker, for code that is not asyncio.

The calling thread owns the socket and keeps heartbeats flowing; the handler runs on one
helper thread, so a slow handler never silences the worker. Completion and PARTIALs wake the
socket thread through a socketpair. Otherwise it follows :mod:`plantd.worker._async` (read its
theory of operation): sessions, READY again at once after broker loss, capped jittered backoff
between sessions the broker ended without a word, DISCONNECT on :meth:`Worker.stop`, a handler
exception becomes an error reply.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import zmq

from plantd._zmq import backoff_delays, sync_context
from plantd.config import WorkerConfig
from plantd.errors import PlantdError, ProtocolError
from plantd.mdp import Disconnect, RequestReceived, Version, WorkerProtocol
from plantd.security import Credentials, secure
from plantd.worker._request import Request, caller_of, handler_failure_body, validate_reply

__all__ = ["SyncHandler", "Worker"]

log = logging.getLogger(__name__)

SyncHandler = Callable[[Request], Sequence[bytes]]


class Worker:
    """Serve ``service`` from the calling thread's :meth:`run` until :meth:`stop`."""

    def __init__(
        self,
        endpoint: str,
        service: str,
        handler: SyncHandler,
        *,
        heartbeat_interval: float = 2.5,
        liveness: int = 3,
        reconnect_initial: float = 0.1,
        reconnect_max: float = 5.0,
        version: Version = Version.V2,
        credentials: Credentials | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.credentials = credentials  # None: the process's identity (plantd.security)
        self.service = service
        self.handler = handler
        self.version = version
        self._interval = heartbeat_interval
        self._liveness = liveness
        self._reconnect = (reconnect_initial, reconnect_max)
        self._stop_requested = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{service}-handler")
        self.connected = threading.Event()
        self.sessions = 0
        self.handled = 0
        self._secured = False  # this session's socket is a CURVE client

    @classmethod
    def from_config(
        cls, endpoint: str, service: str, handler: SyncHandler, config: WorkerConfig
    ) -> Worker:
        return cls(
            endpoint,
            service,
            handler,
            heartbeat_interval=config.heartbeat_interval,
            liveness=config.heartbeat_liveness,
            reconnect_initial=config.reconnect_initial,
            reconnect_max=config.reconnect_max,
        )

    def stop(self) -> None:
        """Finish the request in hand, send DISCONNECT and return from :meth:`run`."""
        self._stop_requested.set()
        self._poke()

    def run(self) -> None:
        delays = backoff_delays(*self._reconnect)
        try:
            while not self._stop_requested.is_set():
                sock = sync_context().socket(zmq.DEALER)
                sock.linger = 0
                # A send that cannot go within the liveness window means the broker is lost
                # (after refusing our key, libzmq gives the connection up for good).
                sock.sndtimeo = int(self._interval * self._liveness * 1000)
                self._secured = secure(sock, self.credentials)
                sock.connect(self.endpoint)
                try:
                    ended, healthy = self._session(sock)
                finally:
                    self.connected.clear()
                    sock.close(linger=0)
                if ended == "stopped":
                    break
                if healthy or ended == "broker lost":
                    if healthy:
                        delays = backoff_delays(*self._reconnect)
                    log.warning("%s: %s; registering again", self.service, ended)
                    continue
                delay = next(delays)
                log.warning("%s: %s; registering again in %.2f s", self.service, ended, delay)
                self._stop_requested.wait(delay)
        finally:
            self._pool.shutdown(wait=True)
            self._wake_r.close()
            self._wake_w.close()

    def _session(self, sock: zmq.Socket[bytes]) -> tuple[str, bool]:
        protocol = WorkerProtocol(
            self.service.encode(),
            heartbeat_interval=self._interval,
            liveness=self._liveness,
            version=self.version,
        )
        outbox: collections.deque[list[bytes]] = collections.deque()
        self.sessions += 1
        session_id = self.sessions

        def emit(body: list[bytes]) -> None:  # runs on the handler thread
            if self.sessions == session_id:
                outbox.append(body)
                self._poke()

        try:
            sock.send_multipart(protocol.connect(time.monotonic()))
        except zmq.Again:
            return "broker lost", False
        healthy = False
        handler: Future[list[bytes]] | None = None
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        try:
            while True:
                if self._stop_requested.is_set() and handler is None:
                    with contextlib.suppress(zmq.Again):
                        sock.send_multipart(protocol.disconnect())
                    return "stopped", healthy
                timeout_ms = max(0.0, (protocol.next_tick() - time.monotonic()) * 1000)
                ready = dict(poller.poll(int(timeout_ms)))
                now = time.monotonic()
                if self._wake_r.fileno() in ready:
                    self._drain_wakeups()
                if sock in ready:
                    try:
                        event = protocol.receive(sock.recv_multipart(), now)
                    except ProtocolError as exc:
                        log.warning("%s: %s", self.service, exc)
                        return "protocol error", healthy
                    if isinstance(event, Disconnect):
                        return "disconnected by the broker", healthy
                    healthy = True  # the broker accepted us: it sent a heartbeat or work
                    self.connected.set()
                    if isinstance(event, RequestReceived):
                        principal = caller_of(event.client, self._secured)
                        request = Request(event.client, event.body, emit, principal)
                        handler = self._pool.submit(self._handle, request)
                        handler.add_done_callback(lambda _: self._poke())
                try:
                    lost = self._flush(sock, protocol, outbox, handler, now)
                except zmq.Again:  # sndtimeo: nowhere to send within the liveness window
                    return "broker lost", healthy
                if handler is not None and handler.done():
                    handler = None
                if lost:
                    return "broker lost", healthy
        finally:
            if handler is not None and not handler.done():
                handler.result()  # let it finish; its reply has nowhere to go
                log.warning("%s: dropped a reply, its broker session ended first", self.service)

    def _flush(
        self,
        sock: zmq.Socket[bytes],
        protocol: WorkerProtocol,
        outbox: collections.deque[list[bytes]],
        handler: Future[list[bytes]] | None,
        now: float,
    ) -> bool:
        """Send queued PARTIALs, the FINAL of a finished handler, and a heartbeat if due.
        True if the broker is lost."""
        while outbox:
            sock.send_multipart(protocol.reply(outbox.popleft(), now, final=False))
        if handler is not None and handler.done():
            sock.send_multipart(protocol.reply(handler.result(), now))
            self.handled += 1
        tick = protocol.tick(now)
        for frames in tick.send:
            sock.send_multipart(frames)
        return tick.broker_lost

    def _handle(self, request: Request) -> list[bytes]:
        try:
            return validate_reply(self.handler(request))
        except Exception as exc:
            # The supervisor edge: a handler bug must not take the worker down.
            if not isinstance(exc, PlantdError):
                log.exception("%s: handler failed", self.service)
            return handler_failure_body(exc)

    def _poke(self) -> None:
        with contextlib.suppress(OSError):  # full (already awake) or closed (stopping)
            self._wake_w.send(b"\0")

    def _drain_wakeups(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(512):
                pass
