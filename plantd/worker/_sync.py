"""The blocking MDP worker, for code that is not asyncio: socket I/O and a handler thread
around :class:`~plantd.worker._core.Session`.

The calling thread owns the socket and keeps heartbeats flowing; the handler runs on one
helper thread, so a slow handler never silences the worker. Completion and PARTIALs wake the
socket thread through a socketpair. The session and reconnect rules are the core's (read its
theory of operation).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Unpack

import zmq

from plantd._zmq import sync_context
from plantd.security import secure
from plantd.worker._core import Session, WorkerCore, WorkerSettings
from plantd.worker._request import Request, validate_reply

__all__ = ["Handler", "SyncHandler", "Worker"]

log = logging.getLogger(__name__)

Handler = Callable[[Request], Sequence[bytes]]
SyncHandler = Handler  # the name before Handler/AsyncHandler, kept for existing imports


class Worker(WorkerCore[Handler]):
    """Serve ``service`` from the calling thread's :meth:`run` until :meth:`stop`.

    Takes the settings of :class:`~plantd.worker._core.WorkerCore`; :attr:`connected` is set
    while registered, as for :class:`~plantd.worker.AsyncWorker`.
    """

    def __init__(
        self, endpoint: str, service: str, handler: Handler, **settings: Unpack[WorkerSettings]
    ) -> None:
        super().__init__(endpoint, service, handler, **settings)
        self._stop_requested = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{service}-handler")
        self.connected = threading.Event()

    def stop(self) -> None:
        """Finish the request in hand, send DISCONNECT and return from :meth:`run`."""
        self._stop_requested.set()
        self._poke()

    def run(self) -> None:
        """Register and serve, session after session, until stopped."""
        reconnect = self._reconnection()
        try:
            while not self._stop_requested.is_set():
                delay = reconnect.after(self._session_on_a_fresh_socket())
                if delay is None:
                    break
                self._stop_requested.wait(delay)
        finally:
            self._pool.shutdown(wait=True)
            self._wake_r.close()
            self._wake_w.close()

    def _session_on_a_fresh_socket(self) -> Session:
        sock = sync_context().socket(zmq.DEALER)
        sock.linger = 0
        session = self._new_session(secure(sock, self.credentials), self._poke)
        # A send that cannot go within the window raises zmq.Again: the broker is lost.
        sock.sndtimeo = int(session.send_window * 1000)
        sock.connect(self.endpoint)
        try:
            self._converse(sock, session)
        finally:
            self.connected.clear()
            sock.close(linger=0)
        return session

    def _converse(self, sock: zmq.Socket[bytes], session: Session) -> None:
        """Drive ``session`` from READY until it ends."""
        if not self._send(sock, session, session.open(time.monotonic())):
            return
        handler: Future[list[bytes]] | None = None
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        try:
            while session.ended is None:
                goodbye = session.farewell(self._stop_requested.is_set())
                if goodbye is not None:
                    self._send(sock, session, goodbye)
                    return
                timeout_ms = max(0.0, (session.deadline() - time.monotonic()) * 1000)
                ready = dict(poller.poll(int(timeout_ms)))
                now = time.monotonic()
                if self._wake_r.fileno() in ready:
                    self._drain_wakeups()
                if sock in ready:
                    request = session.received(sock.recv_multipart(), now)
                    if session.healthy:
                        self.connected.set()
                    if request is not None:
                        handler = self._pool.submit(self._handle, request)
                        handler.add_done_callback(lambda _: self._poke())
                # Whether the handler finished is read before its PARTIALs are taken, so that
                # none it queued can come after its FINAL.
                final = None
                if handler is not None and handler.done():
                    final, handler = handler.result(), None
                if session.ended is None:
                    self._flush(sock, session, now, final)
        finally:
            if handler is not None and not handler.done():
                handler.result()  # let it finish; its reply has nowhere to go
                log.warning("%s: dropped a reply, its broker session ended first", self.service)

    def _flush(
        self, sock: zmq.Socket[bytes], session: Session, now: float, final: list[bytes] | None
    ) -> None:
        sent = all(self._send(sock, session, frames) for frames in session.outgoing(now, final))
        if sent and final is not None:
            self.handled += 1

    def _send(self, sock: zmq.Socket[bytes], session: Session, frames: list[bytes]) -> bool:
        """Send ``frames``; False (and the session lost) if they could not go within its
        send window (the socket's ``sndtimeo``)."""
        try:
            sock.send_multipart(frames)
        except zmq.Again:
            session.lost()
            return False
        return True

    def _handle(self, request: Request) -> list[bytes]:
        try:
            return validate_reply(self.handler(request))
        except Exception as exc:
            return self._failure_reply(exc)

    def _poke(self) -> None:
        with contextlib.suppress(OSError):  # full (already awake) or closed (stopping)
            self._wake_w.send(b"\0")

    def _drain_wakeups(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(512):
                pass
