"""The blocking MDP client: one request at a time, the same retry rules as the asyncio one.

A timed-out attempt closes the socket and the next attempt opens a fresh one (RFC 18), so a
late reply can never be taken for the answer to a later request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from types import TracebackType

import zmq

from plantd._zmq import backoff_delays, sync_context
from plantd.config import ClientConfig
from plantd.errors import RemoteProtocolError, RequestTimeout, SecurityError, UsageError
from plantd.mdp import ClientProtocol, Version
from plantd.security import Credentials, current_identity, secure
from plantd.security._refusals import RefusalWatch

__all__ = ["Client"]

log = logging.getLogger(__name__)


class Client:
    """Blocking counterpart of :class:`~plantd.client.AsyncClient`. Use as ``with``."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        backoff_initial: float = 0.1,
        backoff_max: float = 2.0,
        version: Version = Version.V2,
        credentials: Credentials | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._credentials = credentials
        self.timeout = timeout
        self.retries = retries
        self.version = version
        self._backoff = (backoff_initial, backoff_max)
        self._socket: zmq.Socket[bytes] | None = None
        self._watch: RefusalWatch | None = None
        self._refused = ""  # whose key the broker refused, when it did
        self._protocol = ClientProtocol(version)
        self._closed = False

    @classmethod
    def from_config(cls, endpoint: str, config: ClientConfig, **overrides: object) -> Client:
        kwargs: dict[str, object] = {
            "timeout": config.timeout,
            "retries": config.retries,
            "backoff_initial": config.backoff_initial,
            "backoff_max": config.backoff_max,
        }
        kwargs.update(overrides)
        return cls(endpoint, **kwargs)  # type: ignore[arg-type]

    def request(
        self,
        service: str | bytes,
        *body: bytes,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> list[bytes]:
        """Send ``body`` to ``service``; return the FINAL reply's frames."""
        final: list[bytes] = []
        for part in self.stream(service, *body, timeout=timeout, retries=retries):
            final = part
        return final

    def stream(
        self,
        service: str | bytes,
        *body: bytes,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> Iterator[list[bytes]]:
        """Yield each reply part (PARTIALs, then the FINAL); retries only before the first."""
        if self._closed:
            raise UsageError("this client is closed")
        name = service.encode() if isinstance(service, str) else service
        attempt_timeout = self.timeout if timeout is None else timeout
        attempts_allowed = 1 + (self.retries if retries is None else retries)
        delays = backoff_delays(*self._backoff)
        for attempt in range(1, attempts_allowed + 1):
            sock = self._connected_socket()
            clean = received_any = False
            try:
                # A socket whose connection the broker refused (its key rotated or revoked)
                # has nowhere to queue: the send times out, and the attempt with it.
                sock.sndtimeo = int(attempt_timeout * 1000)
                sock.send_multipart(self._protocol.request(name, list(body)))
                while sock.poll(int(attempt_timeout * 1000), zmq.POLLIN):
                    reply = self._protocol.receive(sock.recv_multipart())
                    received_any = True
                    clean = reply.final
                    yield reply.body
                    if reply.final:
                        return
            except zmq.Again:
                pass  # not sent within the attempt's time: a fresh socket next time
            except RemoteProtocolError as exc:
                log.warning("dropping the client socket after a protocol error: %s", exc)
            finally:
                if not clean:
                    self._reset()
            if received_any:
                raise RequestTimeout(name.decode(), attempt, attempt_timeout)
            if attempt < attempts_allowed:
                delay = next(delays)
                log.debug("no reply from %r (attempt %d), retrying in %.2f s", name, attempt, delay)
                time.sleep(delay)
        if self._refused:
            raise SecurityError(
                f"the broker refused this client's key ({self._refused}): it is not admitted, "
                "or was revoked (an admin sees who is in `plant keys list`)"
            )
        raise RequestTimeout(name.decode(), attempts_allowed, attempt_timeout)

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
        self._protocol.abandon()
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
