"""The asyncio MDP worker: socket I/O and tasks around :class:`~plantd.worker._core.Session`.

One task owns the DEALER socket of a session; a request's handler runs in a child task, so the
socket task keeps answering heartbeats however long the handler takes, and PARTIALs and the
handler's end wake it. The session and reconnect rules are the core's (read its theory of
operation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Unpack, cast

import zmq
import zmq.asyncio

from plantd._zmq import async_context
from plantd.security import secure
from plantd.worker._core import Session, WorkerCore, WorkerSettings
from plantd.worker._request import Request, validate_reply

__all__ = ["AsyncHandler", "AsyncWorker"]

log = logging.getLogger(__name__)

AsyncHandler = Callable[[Request], Awaitable[Sequence[bytes]]]


class AsyncWorker(WorkerCore[AsyncHandler]):
    """Serve ``service`` through the broker at ``endpoint`` until :meth:`stop` or cancellation.

    Takes the settings of :class:`~plantd.worker._core.WorkerCore`. :attr:`connected` is set
    while registered: from the broker's first word (it answers READY with a HEARTBEAT) until
    the session ends.
    """

    def __init__(
        self,
        endpoint: str,
        service: str,
        handler: AsyncHandler,
        **settings: Unpack[WorkerSettings],
    ) -> None:
        super().__init__(endpoint, service, handler, **settings)
        self._context: zmq.asyncio.Context | None = None
        self._stop_requested = False
        self._wake: asyncio.Future[None] | None = None
        self.connected = asyncio.Event()

    def stop(self) -> None:
        """Finish the request in hand, send DISCONNECT, and let :meth:`run` return."""
        self._stop_requested = True
        self._poke()

    async def run(self) -> None:
        """Register and serve, session after session, until stopped."""
        self._context = async_context()
        reconnect = self._reconnection()
        while not self._stop_requested:
            delay = reconnect.after(await self._session_on_a_fresh_socket(self._context))
            if delay is None:
                break
            if delay:
                await self._sleep_unless_stopped(delay)
        log.info("%s: worker stopped", self.service)

    async def _session_on_a_fresh_socket(self, context: zmq.asyncio.Context) -> Session:
        sock = context.socket(zmq.DEALER)
        sock.linger = 0
        session = self._new_session(secure(sock, self.credentials), self._poke)
        sock.connect(self.endpoint)
        try:
            await self._converse(sock, session)
        finally:
            self.connected.clear()
            sock.close(linger=0)
        return session

    async def _converse(self, sock: zmq.asyncio.Socket, session: Session) -> None:
        """Drive ``session`` from READY until it ends."""
        loop = asyncio.get_running_loop()
        if not await self._send(sock, session, session.open(loop.time())):
            return
        receiving = cast("asyncio.Future[list[bytes]]", sock.recv_multipart())
        handler: asyncio.Task[list[bytes]] | None = None
        try:
            while session.ended is None:
                goodbye = session.farewell(self._stop_requested)
                if goodbye is not None:
                    await self._send(sock, session, goodbye)
                    return
                self._wake = loop.create_future()
                waiting: set[asyncio.Future[Any]] = {receiving, self._wake}
                if handler is not None:
                    waiting.add(handler)
                timeout = max(0.0, session.deadline() - loop.time())
                await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                now = loop.time()
                if receiving.done():
                    request = session.received(receiving.result(), now)
                    receiving = cast("asyncio.Future[list[bytes]]", sock.recv_multipart())
                    if session.healthy:
                        self.connected.set()
                    if request is not None:
                        handler = loop.create_task(self._handle(request))
                final = None
                if handler is not None and handler.done():
                    final, handler = handler.result(), None
                if session.ended is None:
                    await self._flush(sock, session, now, final)
        finally:
            receiving.cancel()
            if handler is not None:
                await self._finish_orphan(handler)

    async def _flush(
        self, sock: zmq.asyncio.Socket, session: Session, now: float, final: list[bytes] | None
    ) -> None:
        for frames in session.outgoing(now, final):
            if not await self._send(sock, session, frames):
                return
        if final is not None:
            self.handled += 1

    async def _send(self, sock: zmq.asyncio.Socket, session: Session, frames: list[bytes]) -> bool:
        """Send ``frames``; False (and the session lost) if they could not go within its
        send window.

        A send waits while the socket has nowhere to queue the message: after the broker
        refused our key (rotated, revoked), libzmq gives up the connection for good and a
        send would wait forever — the session is over, and a new one starts with the key as
        it is now.
        """
        if not cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLOUT:
            # (Not asyncio.wait_for: on Python 3.11 it may swallow a cancellation that
            # arrives as the send completes.) pyzmq's stub omits poll's flags argument.
            window_ms = int(session.send_window * 1000)
            if not await sock.poll(window_ms, zmq.POLLOUT):  # type: ignore[call-arg]
                session.lost()
                return False
        await sock.send_multipart(frames)
        return True

    async def _handle(self, request: Request) -> list[bytes]:
        try:
            return validate_reply(await self.handler(request))
        except Exception as exc:
            return self._failure_reply(exc)

    async def _finish_orphan(self, handler: asyncio.Task[list[bytes]]) -> None:
        """Let a handler whose session ended finish (cancel it only if we are cancelled)."""
        if handler.done():
            return
        try:
            await asyncio.shield(handler)
            log.warning("%s: dropped a reply, its broker session ended first", self.service)
        except asyncio.CancelledError:
            handler.cancel()
            raise

    async def _sleep_unless_stopped(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._wake = loop.create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._wake), delay)

    def _poke(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
