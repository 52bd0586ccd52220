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
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence

import zmq
import zmq.asyncio

from plantd._zmq import async_context, backoff_delays
from plantd.config import WorkerConfig
from plantd.errors import PlantdError, ProtocolError
from plantd.mdp import Disconnect, RequestReceived, Version, WorkerProtocol
from plantd.worker._request import Request, handler_failure_body, validate_reply

__all__ = ["AsyncHandler", "AsyncWorker"]

log = logging.getLogger(__name__)

AsyncHandler = Callable[[Request], Awaitable[Sequence[bytes]]]


class _End(enum.Enum):
    STOPPED = "stopped"
    DISCONNECTED = "disconnected by the broker"
    LOST = "broker lost"
    PROTOCOL_ERROR = "protocol error"


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
    ) -> None:
        self.endpoint = endpoint
        self.service = service
        self.handler = handler
        self.version = version
        self._interval = heartbeat_interval
        self._liveness = liveness
        self._reconnect = (reconnect_initial, reconnect_max)
        self._context: zmq.asyncio.Context | None = None
        self._stop_requested = False
        self._wake: asyncio.Future[None] | None = None
        self.connected = asyncio.Event()  # set while a session is open
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
            sock.connect(self.endpoint)
            try:
                end, healthy = await self._session(sock)
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

    async def _session(self, sock: zmq.asyncio.Socket) -> tuple[_End, bool]:
        """One READY … end conversation. Returns how it ended and whether it was healthy."""
        loop = asyncio.get_running_loop()
        protocol = WorkerProtocol(
            self.service.encode(),
            heartbeat_interval=self._interval,
            liveness=self._liveness,
            version=self.version,
        )
        outbox: list[list[bytes]] = []
        session_id = self.sessions = self.sessions + 1

        def emit(body: list[bytes]) -> None:
            if self.sessions == session_id:  # a PARTIAL for a lost session goes nowhere
                outbox.append(body)
                self._poke()

        await sock.send_multipart(protocol.connect(loop.time()))
        self.connected.set()
        healthy = False
        receiving: asyncio.Future[list[bytes]] = sock.recv_multipart()
        handler: asyncio.Task[list[bytes]] | None = None
        try:
            while True:
                if self._stop_requested and handler is None:
                    await sock.send_multipart(protocol.disconnect())
                    return _End.STOPPED, healthy
                self._wake = loop.create_future()
                waiting: set[asyncio.Future[object]] = {receiving, self._wake}  # type: ignore[arg-type]
                if handler is not None:
                    waiting.add(handler)  # type: ignore[arg-type]
                timeout = max(0.0, protocol.next_tick() - loop.time())
                await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                now = loop.time()
                if receiving.done():
                    frames = receiving.result()
                    receiving = sock.recv_multipart()
                    try:
                        event = protocol.receive(frames, now)
                    except ProtocolError as exc:
                        log.warning("%s: %s", self.service, exc)
                        return _End.PROTOCOL_ERROR, healthy
                    if isinstance(event, Disconnect):
                        return _End.DISCONNECTED, healthy
                    healthy = True  # the broker accepted us: it sent a heartbeat or work
                    if isinstance(event, RequestReceived):
                        request = Request(event.client, event.body, emit)
                        handler = loop.create_task(self._handle(request))
                for body in outbox:
                    await sock.send_multipart(protocol.reply(body, now, final=False))
                outbox.clear()
                if handler is not None and handler.done():
                    await sock.send_multipart(protocol.reply(handler.result(), now))
                    self.handled += 1
                    handler = None
                tick = protocol.tick(now)
                for frames in tick.send:
                    await sock.send_multipart(frames)
                if tick.broker_lost:
                    return _End.LOST, healthy
        finally:
            receiving.cancel()
            if handler is not None:
                await self._finish_orphan(handler)

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
        try:
            await asyncio.wait_for(asyncio.shield(self._wake), delay)
        except TimeoutError:
            pass

    def _poke(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
