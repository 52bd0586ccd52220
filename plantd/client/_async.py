"""The asyncio MDP client.

Theory of operation: MDP replies carry no request id, so a DEALER socket can have only one
request outstanding. The client therefore keeps a small pool of *channels* (a DEALER socket and
its sans-IO :class:`~plantd.mdp.ClientProtocol`): each request borrows one, and many requests
can be in flight at once on as many channels. When an attempt times out, its channel is closed
rather than returned — a late reply must never be read as the answer to the next request — and
the request is sent again on a fresh channel after a capped, jittered backoff (RFC 18's advice).
A broker restart is therefore survived as long as it comes back within the retries.

An *idempotent* request (a read, or a write the service deduplicates by request id) is also
sent again when the broker answers ``broker.worker-lost``: after a kill -9 the broker routes to
the dead process's workers until their heartbeats expire, and the retry reaches the new ones.
With ``check_presence`` the client asks the broker (MMI) whether anybody serves a service
before its first call and before each retry, so that "nobody there" is said at once instead
of after every attempt has timed out (see ``_verdicts``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from types import TracebackType

import zmq
import zmq.asyncio

from plantd._zmq import async_context, backoff_delays
from plantd.client._verdicts import (
    PRESENCE_GRACE,
    PRESENCE_RECHECK,
    PRESENCE_SERVICE,
    asks_broker,
    presence_verdict,
    retry_after,
)
from plantd.config import ClientConfig
from plantd.errors import RemoteProtocolError, RequestTimeout, UsageError
from plantd.mdp import ClientProtocol, ReplyReceived, Version
from plantd.security import Credentials, secure

__all__ = ["AsyncClient", "Reply"]

log = logging.getLogger(__name__)

Reply = list[bytes]


class _Channel:
    __slots__ = ("protocol", "socket")

    def __init__(
        self,
        context: zmq.asyncio.Context,
        endpoint: str,
        version: Version,
        credentials: Credentials | None,
    ) -> None:
        self.socket = context.socket(zmq.DEALER)
        self.socket.linger = 0
        secure(self.socket, credentials)
        self.socket.connect(endpoint)
        self.protocol = ClientProtocol(version)

    def close(self) -> None:
        self.socket.close(linger=0)


class AsyncClient:
    """Send requests to MDP services through the broker at ``endpoint``.

    ``timeout`` bounds each attempt (seconds until the first reply part, and between parts);
    ``retries`` is how many more attempts follow a timeout. ``credentials`` (default: the
    process's identity, see :mod:`plantd.security`) prove who calls. ``check_presence``: ask
    the broker whether a service has a worker before the first call to it and before each
    retry, waiting at most ``presence_timeout`` for the broker; raises ``NoBroker`` or
    ``NoWorker`` (a person's command wants that at once; a service would rather wait for the
    other to start). Use as ``async with``.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        backoff_initial: float = 0.1,
        backoff_max: float = 2.0,
        version: Version = Version.V2,
        max_idle_channels: int = 16,
        credentials: Credentials | None = None,
        check_presence: bool = False,
        presence_timeout: float = 1.0,
        presence_grace: float = PRESENCE_GRACE,
    ) -> None:
        self.endpoint = endpoint
        self.check_presence = check_presence
        self.presence_timeout = presence_timeout
        self.presence_grace = presence_grace
        self._present: set[bytes] = set()  # services a worker was seen for
        self.timeout = timeout
        self.retries = retries
        self.version = version
        self._backoff = (backoff_initial, backoff_max)
        self._context = async_context()
        self._idle: list[_Channel] = []
        self._busy: set[_Channel] = set()
        self._max_idle = max_idle_channels
        self._credentials = credentials
        self._closed = False

    @classmethod
    def from_config(cls, endpoint: str, config: ClientConfig, **overrides: object) -> AsyncClient:
        kwargs: dict[str, object] = {
            "timeout": config.timeout,
            "retries": config.retries,
            "backoff_initial": config.backoff_initial,
            "backoff_max": config.backoff_max,
        }
        kwargs.update(overrides)
        return cls(endpoint, **kwargs)  # type: ignore[arg-type]

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
        name = service.encode() if isinstance(service, str) else service
        attempt_timeout = self.timeout if timeout is None else timeout
        attempts_allowed = 1 + (self.retries if retries is None else retries)
        delays = backoff_delays(*self._backoff)
        if self.check_presence and name not in self._present:
            await self._ask_presence(name, attempt_timeout)
        for attempt in range(1, attempts_allowed + 1):
            last = attempt == attempts_allowed
            channel = self._borrow()
            clean = False
            received_any = False
            try:
                request = channel.protocol.request(name, list(body))
                sent = await self._send(channel, request)
                while sent:
                    frames = await self._receive(channel, attempt_timeout)
                    if frames is None:
                        break  # timed out: this channel is abandoned
                    reply = channel.protocol.receive(frames)
                    if idempotent and not last and not received_any and _lost(reply):
                        clean = True  # a whole reply: the channel is fit for reuse
                        log.info("the worker for %r was lost; sending the request again", name)
                        break
                    received_any = True
                    if reply.final:
                        clean = True
                    yield reply.body
                    if reply.final:
                        return
            except RemoteProtocolError as exc:
                log.warning("dropping a client socket after a protocol error: %s", exc)
            finally:
                self._give_back(channel, clean)
            if received_any:
                raise RequestTimeout(name.decode(), attempt, attempt_timeout)
            if not last:
                if self.check_presence:
                    self._present.discard(name)
                    await self._ask_presence(name, attempt_timeout)
                delay = next(delays)
                log.debug("no reply from %r (attempt %d), retrying in %.2f s", name, attempt, delay)
                await asyncio.sleep(delay)
        raise RequestTimeout(name.decode(), attempts_allowed, attempt_timeout)

    async def _ask_presence(self, name: bytes, attempt_timeout: float) -> None:
        """Raise ``NoBroker``/``NoWorker`` unless the broker says a worker serves ``name``;
        a service with no worker is asked about again for ``presence_grace`` seconds (one
        that is restarting registers again within that)."""
        waited = min(self.presence_timeout, attempt_timeout)
        grace_ends = time.monotonic() + min(self.presence_grace, attempt_timeout)
        while True:
            reply = await self._probe_presence(name, waited)
            if reply != [b"404"] or time.monotonic() >= grace_ends:
                break
            await asyncio.sleep(PRESENCE_RECHECK)
        # The broker answers mmi.* itself: that it answered at all is what counts.
        if reply is None or not asks_broker(name):
            presence_verdict(reply, name.decode(errors="replace"), self.endpoint, waited)
        self._present.add(name)

    async def _probe_presence(self, name: bytes, waited: float) -> list[bytes] | None:
        """The broker's ``mmi.service`` answer about ``name``; None if none within ``waited``."""
        channel = self._borrow()
        reply: list[bytes] | None = None
        try:
            probe = channel.protocol.request(PRESENCE_SERVICE, [name])
            if await self._send(channel, probe):
                frames = await self._receive(channel, waited)
                if frames is not None:
                    reply = channel.protocol.receive(frames).body
        finally:
            self._give_back(channel, reply is not None)
        return reply

    async def _send(self, channel: _Channel, frames: list[bytes]) -> bool:
        """False if ``frames`` cannot be queued: a channel whose connection the broker refused
        (its key rotated or revoked) has nowhere to queue, for good. A channel carries one
        request at a time, so it never waits on a full queue otherwise. (Not
        ``asyncio.wait_for``: on Python 3.11 it may swallow a cancellation that arrives as
        the send completes.)"""
        try:
            await channel.socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    async def _receive(self, channel: _Channel, timeout: float) -> list[bytes] | None:
        if not await channel.socket.poll(int(timeout * 1000)):
            return None
        return await channel.socket.recv_multipart()

    def _borrow(self) -> _Channel:
        if self._closed:
            raise UsageError("this client is closed")
        channel = self._idle.pop() if self._idle else None
        if channel is None:
            channel = _Channel(self._context, self.endpoint, self.version, self._credentials)
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


def _lost(reply: ReplyReceived) -> bool:
    """A FINAL saying the broker lost the worker (see ``_verdicts.retry_after``)."""
    return reply.final and retry_after(reply.body)
