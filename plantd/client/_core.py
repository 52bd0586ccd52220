"""The rules of an MDP client, without I/O: written once, driven by both clients.

Theory of operation: MDP replies carry no request id, so a connection (a DEALER socket) can
have only one request outstanding. A request is tried in *attempts*; each attempt goes out on
a connection that no other request uses, and an attempt that times out leaves its connection
unfit for reuse — a late reply must never be read as the answer to the next request — so the
next attempt goes out on a fresh one after a capped, jittered backoff (RFC 18's advice). A
broker restart is therefore survived as long as it comes back within the retries.

An *idempotent* request (a read, or a write the service deduplicates by request id) is also
sent again when the broker answers ``broker.worker-lost``: after a kill -9 the broker routes to
the dead process's workers until their heartbeats expire, and the retry reaches the new ones.
With ``check_presence`` the client asks the broker (MMI) whether anybody serves a service
before its first call and before each retry, so that "nobody there" is said at once instead
of after every attempt has timed out (see ``_verdicts``).

:class:`Call` is one request's course as a state machine: the I/O layer asks it for the next
:class:`Exchange` (frames to send, then how long to wait for each reply) or :class:`Pause`,
reports what came back, and yields the reply parts it hands out. It reads no clock (``now``
comes in) and touches no socket.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Self, TypedDict

from plantd._zmq import backoff_delays
from plantd.client._verdicts import (
    PRESENCE_GRACE,
    PRESENCE_RECHECK,
    PRESENCE_SERVICE,
    asks_broker,
    presence_verdict,
    retry_after,
)
from plantd.config import ClientConfig
from plantd.errors import LocalProtocolError, RemoteProtocolError, RequestTimeout
from plantd.mdp import ClientProtocol, ReplyReceived, Version
from plantd.security import Credentials

__all__ = ["Call", "ClientCore", "ClientSettings", "Exchange", "Pause", "Reply", "Step"]

log = logging.getLogger(__name__)

Reply = list[bytes]
"""A reply part's body frames, as both clients hand them out."""


class ClientSettings(TypedDict, total=False):
    """The keyword arguments every client takes (see :class:`ClientCore`)."""

    timeout: float
    retries: int
    backoff_initial: float
    backoff_max: float
    version: Version
    credentials: Credentials | None
    check_presence: bool
    presence_timeout: float
    presence_grace: float


@dataclass(frozen=True, slots=True)
class Exchange:
    """Send ``frames`` on a connection of the call's own, then wait up to ``wait`` seconds for
    each reply; report each (None: silence, or frames that could not be sent) to
    :meth:`Call.received` until it returns None or a FINAL."""

    frames: list[bytes]
    wait: float


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait ``delay`` seconds before asking for the next step."""

    delay: float


Step = Exchange | Pause


class _Phase(enum.Enum):
    ASK = "a presence question goes out next"
    ASKING = "a presence question is out"
    ANSWERED = "the presence answer is in"
    SEND = "an attempt goes out next"
    SENDING = "an attempt is out"
    ATTEMPT_OVER = "an attempt ended without a FINAL"
    DONE = "the FINAL arrived"


class ClientCore:
    """What both clients know, without I/O: their settings, and which services were seen served.

    ``timeout`` bounds each attempt (seconds until the first reply part, and between parts);
    ``retries`` is how many more attempts follow a timeout. ``credentials`` (default: the
    process's identity, see :mod:`plantd.security`) prove who calls. ``check_presence``: ask
    the broker whether a service has a worker before the first call to it and before each
    retry, waiting at most ``presence_timeout`` for the broker; raises ``NoBroker`` or
    ``NoWorker`` (a person's command wants that at once; a service would rather wait for the
    other to start).
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
        credentials: Credentials | None = None,
        check_presence: bool = False,
        presence_timeout: float = 1.0,
        presence_grace: float = PRESENCE_GRACE,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.retries = retries
        self.version = version
        self.check_presence = check_presence
        self.presence_timeout = presence_timeout
        self.presence_grace = presence_grace
        self.present: set[bytes] = set()  # services a worker was seen for
        self._credentials = credentials
        self._backoff = (backoff_initial, backoff_max)

    @classmethod
    def from_config(cls, endpoint: str, config: ClientConfig, **overrides: object) -> Self:
        """A client with the timeouts and backoff of ``config`` (``overrides`` win)."""
        kwargs: dict[str, object] = {
            "timeout": config.timeout,
            "retries": config.retries,
            "backoff_initial": config.backoff_initial,
            "backoff_max": config.backoff_max,
        }
        kwargs.update(overrides)
        return cls(endpoint, **kwargs)  # type: ignore[arg-type]

    def _call(
        self,
        service: str | bytes,
        body: Sequence[bytes],
        timeout: float | None,
        retries: int | None,
        idempotent: bool,
    ) -> Call:
        """A request's course with this client's defaults where the caller gave none."""
        return Call(
            self,
            service.encode() if isinstance(service, str) else service,
            body,
            timeout=self.timeout if timeout is None else timeout,
            attempts=1 + (self.retries if retries is None else retries),
            idempotent=idempotent,
            delays=backoff_delays(*self._backoff),
        )


class Call:
    """One request's course: presence questions, attempts, backoff pauses and the verdict.

    Drive it as ``step = next_step(now)``: a :class:`Pause` is waited out; an
    :class:`Exchange` is sent and every reply reported to :meth:`received`, which returns the
    part to hand out (None when the exchange is over). After a FINAL, :attr:`done` is true.
    ``next_step`` raises the verdicts: ``RequestTimeout`` when the attempts are spent (or a
    stream broke off after a part was seen: re-sending would repeat what the caller has),
    ``NoBroker``/``NoWorker`` from a presence question.
    """

    def __init__(
        self,
        client: ClientCore,
        service: bytes,
        body: Sequence[bytes],
        *,
        timeout: float,
        attempts: int,
        idempotent: bool,
        delays: Iterator[float],
    ) -> None:
        self.service = service
        self.timeout = timeout
        self.attempts = attempts
        self.attempt = 0  # attempts sent so far
        self.reusable = False  # the last exchange's connection may carry another request
        self._client = client
        self._body = list(body)
        self._idempotent = idempotent
        self._delays = delays
        self._protocol = ClientProtocol(client.version)
        self._phase = _Phase.ASK if self._must_ask() else _Phase.SEND
        self._answer: list[bytes] | None = None
        # Until when a 404 is asked about again (a restarting service registers within that).
        self._grace_ends: float | None = None
        self._received_any = False  # a part of the reply arrived during this attempt

    @property
    def done(self) -> bool:
        """The FINAL arrived: the request is answered."""
        return self._phase is _Phase.DONE

    @property
    def presence_wait(self) -> float:
        """How long a presence question waits for the broker."""
        return min(self._client.presence_timeout, self.timeout)

    def next_step(self, now: float) -> Step:
        """What to do next; raises when the request has failed (see the class docstring)."""
        if self._phase is _Phase.ANSWERED:
            return self._after_answer(now)
        if self._phase is _Phase.ATTEMPT_OVER:
            return self._after_attempt(now)
        if self._phase is _Phase.ASK:
            return self._ask(now)
        if self._phase is _Phase.SEND:
            return self._send()
        raise LocalProtocolError(f"next_step() while {self._phase.value}")

    def received(self, frames: list[bytes] | None) -> ReplyReceived | None:
        """Report a reply of the current exchange (None: nothing within its wait, or it could
        not be sent). Returns the part to hand out; None when the exchange is over.

        A malformed reply to the request ends the attempt (the connection is dropped, as
        RFC 18 advises for a confused peer); a malformed answer to a presence question raises
        :class:`RemoteProtocolError`.
        """
        if self._phase is _Phase.ASKING:
            self._phase = _Phase.ANSWERED
            reply = None if frames is None else self._protocol.receive(frames)
            self._answer = None if reply is None else reply.body
            self.reusable = reply is not None and reply.final
            return None
        if self._phase is not _Phase.SENDING:
            raise LocalProtocolError(f"received() while {self._phase.value}")
        reply = self._decode(frames)
        if reply is None:
            self._attempt_over(reusable=False)
            return None
        if self._worth_resending(reply):
            log.info("the worker for %r was lost; sending the request again", self.service)
            self._attempt_over(reusable=True)  # a whole reply: the connection is fit for reuse
            return None
        self._received_any = True
        if reply.final:
            self._phase = _Phase.DONE
            self.reusable = True
        return reply

    def _after_answer(self, now: float) -> Step:
        if self._answer == [b"404"] and self._grace_ends is not None and now < self._grace_ends:
            # A service that is restarting registers again within the grace: ask again.
            self._phase = _Phase.ASK
            return Pause(PRESENCE_RECHECK)
        self._conclude_presence()
        return self._send() if self.attempt == 0 else self._backoff()

    def _after_attempt(self, now: float) -> Step:
        if self._received_any:
            raise RequestTimeout(self.service.decode(), self.attempt, self.timeout)
        if self.attempt >= self.attempts:
            raise RequestTimeout(self.service.decode(), self.attempts, self.timeout)
        if not self._client.check_presence:
            return self._backoff()
        self._client.present.discard(self.service)
        return self._ask(now)

    def _ask(self, now: float) -> Exchange:
        if self._grace_ends is None:  # a new question, not a 404's second asking
            self._grace_ends = now + min(self._client.presence_grace, self.timeout)
        question = [self.service]
        return self._exchange(_Phase.ASKING, PRESENCE_SERVICE, question, self.presence_wait)

    def _send(self) -> Exchange:
        self.attempt += 1
        self._received_any = False
        return self._exchange(_Phase.SENDING, self.service, self._body, self.timeout)

    def _must_ask(self) -> bool:
        return self._client.check_presence and self.service not in self._client.present

    def _conclude_presence(self) -> None:
        """Raise ``NoBroker``/``NoWorker`` unless the broker says a worker serves the service."""
        self._grace_ends = None
        # The broker answers mmi.* itself: that it answered at all is what counts.
        if self._answer is None or not asks_broker(self.service):
            name = self.service.decode(errors="replace")
            presence_verdict(self._answer, name, self._client.endpoint, self.presence_wait)
        self._client.present.add(self.service)

    def _worth_resending(self, reply: ReplyReceived) -> bool:
        """An idempotent request whose worker the broker lost goes again (``_verdicts``), as
        long as an attempt remains and nothing of the reply was handed out yet."""
        return (
            self._idempotent
            and self.attempt < self.attempts
            and not self._received_any
            and reply.final
            and retry_after(reply.body)
        )

    def _decode(self, frames: list[bytes] | None) -> ReplyReceived | None:
        if frames is None:
            return None
        try:
            return self._protocol.receive(frames)
        except RemoteProtocolError as exc:
            log.warning("dropping a client socket after a protocol error: %s", exc)
            return None

    def _attempt_over(self, *, reusable: bool) -> None:
        self._phase = _Phase.ATTEMPT_OVER
        self.reusable = reusable

    def _backoff(self) -> Pause:
        delay = next(self._delays)
        log.debug(
            "no reply from %r (attempt %d), retrying in %.2f s", self.service, self.attempt, delay
        )
        self._phase = _Phase.SEND
        return Pause(delay)

    def _exchange(self, phase: _Phase, service: bytes, body: list[bytes], wait: float) -> Exchange:
        # Each exchange goes out on a connection with nothing outstanding: a fresh protocol.
        self._protocol = ClientProtocol(self._client.version)
        frames = self._protocol.request(service, body)
        self._phase = phase
        self.reusable = False
        return Exchange(frames, wait)
