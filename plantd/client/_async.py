"""The asyncio MDP client: socket I/O around :class:`~plantd.client._core.Call`.

The client keeps a small pool of *channels* (DEALER sockets): each exchange borrows one, so
many requests can be in flight at once on as many channels. A channel goes back to the pool
only when the core says its exchange ended cleanly (a whole reply read); otherwise it is
closed. The retry, presence and verdict rules are the core's (read its theory of operation).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Unpack

import zmq
import zmq.asyncio

from plantd._zmq import async_context
from plantd.client._core import ClientCore, ClientSettings, Exchange, Pause, Reply
from plantd.errors import UsageError
from plantd.security import Credentials, secure

__all__ = ["AsyncClient", "Reply"]


class _Channel:
    __slots__ = ("socket",)

    def __init__(
        self, context: zmq.asyncio.Context, endpoint: str, credentials: Credentials | None
    ) -> None:
        self.socket = context.socket(zmq.DEALER)
        self.socket.linger = 0
        secure(self.socket, credentials)
        self.socket.connect(endpoint)

    def close(self) -> None:
        self.socket.close(linger=0)


class AsyncClient(ClientCore):
    """Send requests to MDP services through the broker at ``endpoint``; many at once.

    Takes the settings of :class:`~plantd.client._core.ClientCore` (``timeout``, ``retries``,
    ``check_presence`` …), and ``max_idle_channels``: how many idle sockets to keep for the
    next requests. Use as ``async with``.
    """

    def __init__(
        self, endpoint: str, *, max_idle_channels: int = 16, **settings: Unpack[ClientSettings]
    ) -> None:
        super().__init__(endpoint, **settings)
        self._context = async_context()
        self._idle: list[_Channel] = []
        self._busy: set[_Channel] = set()
        self._max_idle = max_idle_channels
        self._closed = False

    async def request(
        self,
        service: str | bytes,
        *body: bytes,
        timeout: float | None = None,
        retries: int | None = None,
        idempotent: bool = False,
    ) -> Reply:
        """Send ``body`` to ``service`` and return the FINAL reply's frames.

        PARTIAL replies, if the service streams, are skipped; use :meth:`stream` to see them.
        Raises :class:`RequestTimeout` when every attempt timed out.
        """
        final: Reply = []
        parts = self.stream(service, *body, timeout=timeout, retries=retries, idempotent=idempotent)
        async for part in parts:
            final = part
        return final

    async def stream(
        self,
        service: str | bytes,
        *body: bytes,
        timeout: float | None = None,
        retries: int | None = None,
        idempotent: bool = False,
    ) -> AsyncIterator[Reply]:
        """Yield every reply part (each PARTIAL, then the FINAL) as it arrives.

        Retries happen only before the first part arrives: once a part was seen, a timeout
        raises, because re-sending would repeat what the caller already received. An
        ``idempotent`` request is retried on ``broker.worker-lost`` too (within the same
        attempts), since running it twice does no harm.
        """
        call = self._call(service, body, timeout, retries, idempotent)
        while not call.done:
            step = call.next_step(time.monotonic())
            if isinstance(step, Pause):
                await asyncio.sleep(step.delay)
                continue
            channel = self._borrow()
            try:
                part = call.received(await self._exchange(channel, step))
                while part is not None:
                    yield part.body
                    if part.final:
                        break
                    part = call.received(await self._receive(channel, step.wait))
            finally:
                self._give_back(channel, call.reusable)

    async def _exchange(self, channel: _Channel, step: Exchange) -> list[bytes] | None:
        """Send the step's frames and wait for the first reply; None if none came.

        A channel whose connection the broker refused (its key rotated or revoked) has nowhere
        to queue, for good: the send fails at once (NOBLOCK) rather than wait. A channel carries
        one request at a time, so it never waits on a full queue otherwise. (Not
        ``asyncio.wait_for``: on Python 3.11 it may swallow a cancellation that arrives as
        the send completes.)
        """
        try:
            await channel.socket.send_multipart(step.frames, zmq.NOBLOCK)
        except zmq.Again:
            return None
        return await self._receive(channel, step.wait)

    async def _receive(self, channel: _Channel, timeout: float) -> list[bytes] | None:
        if not await channel.socket.poll(int(timeout * 1000)):
            return None
        return await channel.socket.recv_multipart()

    def _borrow(self) -> _Channel:
        if self._closed:
            raise UsageError("this client is closed")
        channel = self._idle.pop() if self._idle else None
        if channel is None:
            channel = _Channel(self._context, self.endpoint, self._credentials)
        self._busy.add(channel)
        return channel

    def _give_back(self, channel: _Channel, clean: bool) -> None:
        self._busy.discard(channel)
        if clean and not self._closed and len(self._idle) < self._max_idle:
            self._idle.append(channel)
        else:
            channel.close()

    async def aclose(self) -> None:
        """Close every socket; requests still in flight fail."""
        self._closed = True
        for channel in itertools.chain(self._idle, self._busy):
            channel.close()
        self._idle.clear()
        self._busy.clear()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
