"""The blocking MDP client: one request at a time, socket I/O around
:class:`~plantd.client._core.Call` (the same rules as the asyncio client; read the core's
theory of operation).

The client keeps one socket. An exchange that did not end cleanly (a timeout, a malformed
reply) closes it, and the next exchange opens a fresh one (RFC 18), so a late reply can never
be taken for the answer to a later request.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import TracebackType
from typing import Unpack

import zmq

from plantd._zmq import sync_context
from plantd.client._core import Call, ClientCore, ClientSettings, Exchange, Pause, Reply, Step
from plantd.errors import NoBroker, RequestTimeout, SecurityError, UsageError
from plantd.security import current_identity, secure
from plantd.security._refusals import RefusalWatch

__all__ = ["Client"]


class Client(ClientCore):
    """Blocking counterpart of :class:`~plantd.client.AsyncClient` (the same settings, but
    one socket: no ``max_idle_channels``). Use as ``with``."""

    def __init__(self, endpoint: str, **settings: Unpack[ClientSettings]) -> None:
        super().__init__(endpoint, **settings)
        self._socket: zmq.Socket[bytes] | None = None
        self._watch: RefusalWatch | None = None
        self._refused = ""  # whose key the broker refused, when it did
        self._closed = False

    def request(
        self,
        service: str | bytes,
        *body: bytes,
        timeout: float | None = None,
        retries: int | None = None,
        idempotent: bool = False,
    ) -> Reply:
        """Send ``body`` to ``service``; return the FINAL reply's frames."""
        final: Reply = []
        parts = self.stream(service, *body, timeout=timeout, retries=retries, idempotent=idempotent)
        for part in parts:
            final = part
        return final

    def stream(
        self,
        service: str | bytes,
        *body: bytes,
        timeout: float | None = None,
        retries: int | None = None,
        idempotent: bool = False,
    ) -> Iterator[Reply]:
        """Yield each reply part (PARTIALs, then the FINAL); retries only before the first."""
        if self._closed:
            raise UsageError("this client is closed")
        call = self._call(service, body, timeout, retries, idempotent)
        while not call.done:
            step = self._next_step(call)
            if isinstance(step, Pause):
                time.sleep(step.delay)
                continue
            sock = self._connected_socket()
            try:
                part = call.received(self._exchange(sock, step))
                while part is not None:
                    yield part.body
                    if part.final:
                        break
                    part = call.received(self._receive(sock, step.wait))
            finally:
                if not call.reusable:
                    self._reset()

    def _next_step(self, call: Call) -> Step:
        """The call's next step; a broker that refused this client's key is a SecurityError,
        not an absent broker or a timeout."""
        try:
            return call.next_step(time.monotonic())
        except (NoBroker, RequestTimeout):
            if self._refused:
                raise self._refusal() from None
            raise

    def _exchange(self, sock: zmq.Socket[bytes], step: Exchange) -> list[bytes] | None:
        """Send the step's frames and wait for the first reply; None if none came.

        A socket whose connection the broker refused (its key rotated or revoked) has nowhere
        to queue: the send times out within the step's wait, and the exchange with it.
        """
        sock.sndtimeo = int(step.wait * 1000)
        try:
            sock.send_multipart(step.frames)
        except zmq.Again:
            return None
        return self._receive(sock, step.wait)

    def _receive(self, sock: zmq.Socket[bytes], timeout: float) -> list[bytes] | None:
        if not sock.poll(int(timeout * 1000), zmq.POLLIN):
            return None
        return sock.recv_multipart()

    def _refusal(self) -> SecurityError:
        return SecurityError(
            f"the broker refused this client's key ({self._refused}): it is not admitted, "
            "or was revoked (an admin sees who is in `plant keys list`)"
        )

    def _connected_socket(self) -> zmq.Socket[bytes]:
        if self._socket is None:
            sock = sync_context().socket(zmq.DEALER)
            sock.linger = 0
            if secure(sock, self._credentials):
                # To say "your key was refused" rather than "no reply" (a person's CLI call).
                self._watch = RefusalWatch(sock)
            sock.connect(self.endpoint)
            self._socket = sock
        return self._socket

    def _reset(self) -> None:
        if self._watch is not None:
            if self._watch.refused():
                self._refused = self._principal()
            self._watch.close()
            self._watch = None
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def _principal(self) -> str:
        if self._credentials is not None:
            return self._credentials.principal
        identity = current_identity()
        return identity.principal if identity is not None else "?"

    def close(self) -> None:
        """Close the socket; the client takes no more requests."""
        self._closed = True
        self._reset()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
