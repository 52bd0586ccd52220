"""The blocking MDP client: one request at a time, the same retry rules as the asyncio one.

A timed-out attempt closes the socket and the next attempt opens a fresh one (RFC 18), so a
late reply can never be taken for the answer to a later request. ``idempotent`` requests and
``check_presence`` work as in the asyncio client (its module docstring says why).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from types import TracebackType

import zmq

from plantd._zmq import backoff_delays, sync_context
from plantd.client._verdicts import (
    PRESENCE_GRACE,
    PRESENCE_RECHECK,
    PRESENCE_SERVICE,
    asks_broker,
    presence_verdict,
    retry_after,
)
from plantd.config import ClientConfig
from plantd.errors import RemoteProtocolError, RequestTimeout, SecurityError, UsageError
from plantd.mdp import ClientProtocol, ReplyReceived, Version
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
        check_presence: bool = False,
        presence_timeout: float = 1.0,
        presence_grace: float = PRESENCE_GRACE,
    ) -> None:
        self.endpoint = endpoint
        self.check_presence = check_presence
        self.presence_timeout = presence_timeout
        self.presence_grace = presence_grace
        self._present: set[bytes] = set()  # services a worker was seen for
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
        idempotent: bool = False,
    ) -> list[bytes]:
        """Send ``body`` to ``service``; return the FINAL reply's frames."""
        final: list[bytes] = []
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
    ) -> Iterator[list[bytes]]:
        """Yield each reply part (PARTIALs, then the FINAL); retries only before the first."""
        if self._closed:
            raise UsageError("this client is closed")
        name = service.encode() if isinstance(service, str) else service
        attempt_timeout = self.timeout if timeout is None else timeout
        attempts_allowed = 1 + (self.retries if retries is None else retries)
        delays = backoff_delays(*self._backoff)
        if self.check_presence and name not in self._present:
            self._ask_presence(name, attempt_timeout)
        for attempt in range(1, attempts_allowed + 1):
            last = attempt == attempts_allowed
            sock = self._connected_socket()
            clean = received_any = False
            try:
                # A socket whose connection the broker refused (its key rotated or revoked)
                # has nowhere to queue: the send times out, and the attempt with it.
                sock.sndtimeo = int(attempt_timeout * 1000)
                sock.send_multipart(self._protocol.request(name, list(body)))
                while sock.poll(int(attempt_timeout * 1000), zmq.POLLIN):
                    reply = self._protocol.receive(sock.recv_multipart())
                    if idempotent and not last and not received_any and _lost(reply):
                        clean = True  # a whole reply: the socket is fit for reuse
                        log.info("the worker for %r was lost; sending the request again", name)
                        break
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
            if not last:
                if self.check_presence:
                    self._present.discard(name)
                    self._ask_presence(name, attempt_timeout)
                delay = next(delays)
                log.debug("no reply from %r (attempt %d), retrying in %.2f s", name, attempt, delay)
                time.sleep(delay)
        if self._refused:
            raise self._refusal()
        raise RequestTimeout(name.decode(), attempts_allowed, attempt_timeout)

    def _ask_presence(self, name: bytes, attempt_timeout: float) -> None:
        """Raise ``NoBroker``/``NoWorker`` unless the broker says a worker serves ``name``; a
        broker that refused this client's key is a SecurityError, not an absent broker. A
        service that has no worker is asked about again for ``presence_grace`` seconds: one
        that is restarting registers again within that."""
        waited = min(self.presence_timeout, attempt_timeout)
        grace_ends = time.monotonic() + min(self.presence_grace, attempt_timeout)
        while True:
            reply = self._probe_presence(name, waited)
            if reply is None and self._refused:
                raise self._refusal()
            if reply != [b"404"] or time.monotonic() >= grace_ends:
                break
            time.sleep(PRESENCE_RECHECK)
        # The broker answers mmi.* itself: that it answered at all is what counts.
        if reply is None or not asks_broker(name):
            presence_verdict(reply, name.decode(errors="replace"), self.endpoint, waited)
        self._present.add(name)

    def _probe_presence(self, name: bytes, waited: float) -> list[bytes] | None:
        """The broker's ``mmi.service`` answer about ``name``; None if none within ``waited``."""
        sock = self._connected_socket()
        reply: list[bytes] | None = None
        try:
            sock.sndtimeo = int(waited * 1000)
            sock.send_multipart(self._protocol.request(PRESENCE_SERVICE, [name]))
            if sock.poll(int(waited * 1000), zmq.POLLIN):
                reply = self._protocol.receive(sock.recv_multipart()).body
        except zmq.Again:
            pass  # not even queued: nobody took the connection
        finally:
            if reply is None:
                self._reset()
        return reply

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


def _lost(reply: ReplyReceived) -> bool:
    """A FINAL saying the broker lost the worker (see ``_verdicts.retry_after``)."""
    return reply.final and retry_after(reply.body)
