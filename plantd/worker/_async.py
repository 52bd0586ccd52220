"""The asyncio MDP worker.

Theory of operation: one task owns the DEALER socket for a *session* (READY … DISCONNECT or
broker loss). A request runs its handler in a child task, so the socket task keeps answering
heartbeats however long the handler takes; PARTIALs the handler emits are queued and the socket
task sends them. A session ends on DISCONNECT from the broker, on its silence past the liveness
window, or on a protocol error; the worker then opens a fresh socket and sends READY again — it
never gives up. READY is sent at once even while the broker is down: ZeroMQ queues it and
delivers it the moment the broker is back, so workers re-register within a heartbeat of a broker
restart. Sessions that end without a word from the broker (a broker that keeps answering
DISCONNECT, say) are spaced by a capped, jittered backoff, reset by the next healthy session; a
silent broker needs no extra wait, since each attempt already lasts the liveness window. A handler
still running when its session is lost is allowed to finish, but its reply is dropped: the
broker that asked is gone, and MDP clients retry. A handler exception becomes an error reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import zmq
import zmq.asyncio

from plantd._zmq import async_context, backoff_delays
from plantd.config import WorkerConfig
from plantd.errors import PlantdError, ProtocolError
from plantd.mdp import Disconnect, RequestReceived, Version, WorkerProtocol
from plantd.security import Credentials, secure
from plantd.worker._request import Request, caller_of, handler_failure_body, validate_reply

__all__ = ["AsyncHandler", "AsyncWorker"]

log = logging.getLogger(__name__)

AsyncHandler = Callable[[Request], Awaitable[Sequence[bytes]]]


class _End(enum.Enum):
    STOPPED = "stopped"
    DISCONNECTED = "disconnected by the broker"
    LOST = "broker lost"
    PROTOCOL_ERROR = "protocol error"


class _Session:
    """One READY … end conversation's state, driven by the socket task."""

    def __init__(
        self, worker: AsyncWorker, sock: zmq.asyncio.Socket, session_id: int, secured: bool
    ) -> None:
        self.worker = worker
        self.sock = sock
        self.secured = secured
        self.id = session_id
        self.protocol = WorkerProtocol(
            worker.service.encode(),
            heartbeat_interval=worker.heartbeat_interval,
            liveness=worker.liveness,
            version=worker.version,
        )
        self.outbox: list[list[bytes]] = []
        self.handler: asyncio.Task[list[bytes]] | None = None
        self.healthy = False  # the broker accepted us: it sent a heartbeat or work

    def emit(self, body: list[bytes]) -> None:
        """A PARTIAL from the handler; one for a session that ended goes nowhere."""
        if self.worker.sessions == self.id:
            self.outbox.append(body)
            self.worker._poke()

    def on_message(self, frames: list[bytes], now: float) -> _End | None:
        try:
            event = self.protocol.receive(frames, now)
        except ProtocolError as exc:
            log.warning("%s: %s", self.worker.service, exc)
            return _End.PROTOCOL_ERROR
        if isinstance(event, Disconnect):
            return _End.DISCONNECTED
        self.healthy = True
        self.worker.connected.set()
        if isinstance(event, RequestReceived):
            principal = caller_of(event.client, self.secured)
            request = Request(event.client, event.body, self.emit, principal)
            self.handler = asyncio.get_running_loop().create_task(self.worker._handle(request))
        return None

    async def send(self, frames: list[bytes]) -> bool:
        """Send ``frames``; False if they could not go within the liveness window.

        A send waits while the socket has nowhere to queue the message: after the broker
        refused our key (rotated, revoked), libzmq gives up the connection for good and a
        send would wait forever — the session is over, and a new one starts with the key as
        it is now.
        """
        sock = self.sock
        if not cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLOUT:
            window = self.worker.heartbeat_interval * self.worker.liveness
            # (Not asyncio.wait_for: on Python 3.11 it may swallow a cancellation that
            # arrives as the send completes.) pyzmq's stub omits poll's flags argument.
            if not await sock.poll(int(window * 1000), zmq.POLLOUT):  # type: ignore[call-arg]
                return False
        await sock.send_multipart(frames)
        return True

    async def flush(self, now: float) -> _End | None:
        """Send queued PARTIALs, the FINAL of a finished handler, and a heartbeat if due."""
        for body in self.outbox:
            if not await self.send(self.protocol.reply(body, now, final=False)):
                return _End.LOST
        self.outbox.clear()
        if self.handler is not None and self.handler.done():
            if not await self.send(self.protocol.reply(self.handler.result(), now)):
                return _End.LOST
            self.worker.handled += 1
            self.handler = None
        tick = self.protocol.tick(now)
        for frames in tick.send:
            if not await self.send(frames):
                return _End.LOST
        return _End.LOST if tick.broker_lost else None


class AsyncWorker:
    """Serve ``service`` through the broker at ``endpoint`` until :meth:`stop` or cancellation."""

    def __init__(
        self,
        endpoint: str,
        service: str,
        handler: AsyncHandler,
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
        self.heartbeat_interval = heartbeat_interval
        self.liveness = liveness
        self._reconnect = (reconnect_initial, reconnect_max)
        self._context: zmq.asyncio.Context | None = None
        self._stop_requested = False
        self._wake: asyncio.Future[None] | None = None
        # Set while registered: from the broker's first word (it answers READY with a
        # HEARTBEAT) until the session ends.
        self.connected = asyncio.Event()
        self.sessions = 0  # READYs sent so far
        self.handled = 0  # requests answered

    @classmethod
    def from_config(
        cls, endpoint: str, service: str, handler: AsyncHandler, config: WorkerConfig
    ) -> AsyncWorker:
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
        """Finish the request in hand, send DISCONNECT, and let :meth:`run` return."""
        self._stop_requested = True
        self._poke()

    async def run(self) -> None:
        self._context = async_context()
        delays = backoff_delays(*self._reconnect)
        while not self._stop_requested:
            sock = self._context.socket(zmq.DEALER)
            sock.linger = 0
            secured = secure(sock, self.credentials)
            sock.connect(self.endpoint)
            try:
                end, healthy = await self._session(sock, secured)
            finally:
                self.connected.clear()
                sock.close(linger=0)
            if end is _End.STOPPED:
                break
            if healthy or end is _End.LOST:
                if healthy:
                    delays = backoff_delays(*self._reconnect)
                log.warning("%s: %s; registering again", self.service, end.value)
                continue
            delay = next(delays)
            log.warning("%s: %s; registering again in %.2f s", self.service, end.value, delay)
            await self._sleep_unless_stopped(delay)
        log.info("%s: worker stopped", self.service)

    async def _session(self, sock: zmq.asyncio.Socket, secured: bool) -> tuple[_End, bool]:
        """One READY … end conversation. Returns how it ended and whether it was healthy."""
        loop = asyncio.get_running_loop()
        self.sessions += 1
        session = _Session(self, sock, self.sessions, secured)
        if not await session.send(session.protocol.connect(loop.time())):
            return _End.LOST, False
        receiving = cast("asyncio.Future[list[bytes]]", sock.recv_multipart())
        try:
            while True:
                if self._stop_requested and session.handler is None:
                    await session.send(session.protocol.disconnect())
                    return _End.STOPPED, session.healthy
                self._wake = loop.create_future()
                waiting: set[asyncio.Future[Any]] = {receiving, self._wake}
                if session.handler is not None:
                    waiting.add(session.handler)
                timeout = max(0.0, session.protocol.next_tick() - loop.time())
                await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                now = loop.time()
                end: _End | None = None
                if receiving.done():
                    frames = receiving.result()
                    receiving = cast("asyncio.Future[list[bytes]]", sock.recv_multipart())
                    end = session.on_message(frames, now)
                end = end or await session.flush(now)
                if end is not None:
                    return end, session.healthy
        finally:
            receiving.cancel()
            if session.handler is not None:
                await self._finish_orphan(session.handler)

    async def _handle(self, request: Request) -> list[bytes]:
        try:
            return validate_reply(await self.handler(request))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The supervisor edge: a handler bug must not take the worker down.
            if not isinstance(exc, PlantdError):
                log.exception("%s: handler failed", self.service)
            return handler_failure_body(exc)

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
