"""The rules of an MDP worker, without I/O: written once, driven by both workers.

Theory of operation: a worker talks to the broker in *sessions* (READY … DISCONNECT or broker
loss), each on a fresh socket. A request runs its handler beside the socket's owner, so
heartbeats keep flowing however long the handler takes; PARTIALs the handler emits are queued
and go out with the next flush. A session ends on DISCONNECT from the broker, on its silence
past the liveness window, on a protocol error, or on a send that cannot go within that window;
the worker then opens a fresh socket and sends READY again — it never gives up. READY is sent
at once even while the broker is down: ZeroMQ queues it and delivers it the moment the broker
is back, so workers re-register within a heartbeat of a broker restart. Sessions that end
without a word from the broker (a broker that keeps answering DISCONNECT, say) are spaced by a
capped, jittered backoff, reset by the next healthy session; a silent broker needs no extra
wait, since each attempt already lasts the liveness window. A handler still running when its
session is lost is allowed to finish, but its reply is dropped: the broker that asked is gone,
and MDP clients retry. A handler exception becomes an error reply.

:class:`Session` holds one session's rules (frames and ``now`` in, frames and requests out),
:class:`Reconnect` the choice between sessions, :class:`WorkerCore` what both workers share.
No sockets, no clock, no threads or tasks here.
"""

from __future__ import annotations

import collections
import enum
import logging
import random
from collections.abc import Callable
from typing import Generic, Self, TypedDict, TypeVar

from plantd._zmq import backoff_delays
from plantd.config import WorkerConfig
from plantd.errors import LocalProtocolError, PlantdError, ProtocolError
from plantd.mdp import Disconnect, RequestReceived, Version, WorkerProtocol, WorkerState
from plantd.security import Credentials
from plantd.worker._request import Request, caller_of, handler_failure_body

__all__ = ["Reconnect", "Session", "SessionEnd", "WorkerCore", "WorkerSettings"]

log = logging.getLogger(__name__)

H = TypeVar("H")


class WorkerSettings(TypedDict, total=False):
    """The keyword arguments every worker takes (see :class:`WorkerCore`)."""

    heartbeat_interval: float
    liveness: int
    reconnect_initial: float
    reconnect_max: float
    version: Version
    credentials: Credentials | None


class SessionEnd(enum.Enum):
    """How a session ended (the value is what the log says)."""

    STOPPED = "stopped"
    DISCONNECTED = "disconnected by the broker"
    LOST = "broker lost"
    PROTOCOL_ERROR = "protocol error"


class Session:
    """One READY … end conversation with the broker, without I/O.

    The driver sends :meth:`open`'s READY, then loops until :attr:`ended` is set: it sends
    :meth:`farewell` when it wants to stop, waits for a message, a PARTIAL or a finished handler
    until :meth:`deadline`, reports a message to :meth:`received` (which may hand it a
    :class:`Request` to run), and sends what :meth:`outgoing` returns. A send that cannot go
    within :attr:`send_window` seconds is reported to :meth:`lost`.
    """

    def __init__(
        self,
        service: str,
        *,
        heartbeat_interval: float,
        liveness: int,
        version: Version = Version.V2,
        secured: bool = False,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.service = service
        self.protocol = WorkerProtocol(
            service.encode(),
            heartbeat_interval=heartbeat_interval,
            liveness=liveness,
            version=version,
        )
        self.secured = secured  # the socket is a CURVE client: addresses carry principals
        self.send_window = heartbeat_interval * liveness
        self.healthy = False  # the broker accepted us: it sent a heartbeat or work
        self.ended: SessionEnd | None = None
        self._wake = wake  # called when a PARTIAL is queued (from the handler's thread or task)
        self._partials: collections.deque[list[bytes]] = collections.deque()

    @property
    def busy(self) -> bool:
        """A request is in hand (its FINAL has not gone out yet)."""
        return self.protocol.state is WorkerState.BUSY

    def open(self, now: float) -> list[bytes]:
        """READY: the session's first message."""
        return self.protocol.connect(now)

    def deadline(self) -> float:
        """When :meth:`outgoing` has something to do even if nothing else happens."""
        return self.protocol.next_tick()

    def farewell(self, stop_requested: bool) -> list[bytes] | None:
        """DISCONNECT, which ends the session, once a stop was asked for and no request is
        in hand (the request in hand is finished first); None otherwise."""
        if not stop_requested or self.busy:
            return None
        self.ended = SessionEnd.STOPPED
        return self.protocol.disconnect()

    def received(self, frames: list[bytes], now: float) -> Request | None:
        """Read a message from the broker; returns the request to run, if it is one."""
        try:
            event = self.protocol.receive(frames, now)
        except ProtocolError as exc:
            log.warning("%s: %s", self.service, exc)
            self.ended = SessionEnd.PROTOCOL_ERROR
            return None
        if isinstance(event, Disconnect):
            self.ended = SessionEnd.DISCONNECTED
            return None
        self.healthy = True
        if not isinstance(event, RequestReceived):
            return None
        principal = caller_of(event.client, self.secured)
        return Request(event.client, event.body, self._queue_partial, principal)

    def outgoing(self, now: float, final: list[bytes] | None = None) -> list[list[bytes]]:
        """The messages due now, in order: queued PARTIALs, the FINAL (``final``: the reply of
        the handler that finished), and a heartbeat if one is due. Ends the session (LOST)
        when the broker has been silent past the liveness window."""
        if self.ended is not None:
            raise LocalProtocolError(f"outgoing() after the session ended ({self.ended.value})")
        # The handler queued all its PARTIALs before it finished, so they precede its FINAL.
        due = [
            self.protocol.reply(self._partials.popleft(), now, final=False)
            for _ in range(len(self._partials))
        ]
        if final is not None:
            due.append(self.protocol.reply(final, now))
        tick = self.protocol.tick(now)
        due.extend(tick.send)
        if tick.broker_lost:
            self.ended = SessionEnd.LOST
        return due

    def lost(self) -> None:
        """A send could not go within :attr:`send_window`: the broker is gone (after refusing
        our key, libzmq gives the connection up for good)."""
        if self.ended is None:
            self.ended = SessionEnd.LOST

    def _queue_partial(self, body: list[bytes]) -> None:
        # A PARTIAL for a session that ended goes nowhere: the broker that asked is gone.
        if self.ended is None:
            self._partials.append(body)
            self._wake()


class Reconnect:
    """What follows a session: nothing (the worker stopped), a new session at once, or one
    after a backoff delay, reset by every healthy session."""

    def __init__(
        self, service: str, initial: float, maximum: float, rng: random.Random | None = None
    ) -> None:
        self.service = service  # for the log
        self._backoff = (initial, maximum, rng)
        self._delays = backoff_delays(*self._backoff)

    def after(self, session: Session) -> float | None:
        """Seconds to wait before the next session (0: none); None when the worker stopped."""
        end = session.ended
        if end is None:
            raise LocalProtocolError("after() a session that has not ended")
        if end is SessionEnd.STOPPED:
            return None
        if session.healthy or end is SessionEnd.LOST:
            # A silent broker needs no extra wait: the session already lasted the window.
            if session.healthy:
                self._delays = backoff_delays(*self._backoff)
            log.warning("%s: %s; registering again", self.service, end.value)
            return 0.0
        delay = next(self._delays)
        log.warning("%s: %s; registering again in %.2f s", self.service, end.value, delay)
        return delay


class WorkerCore(Generic[H]):
    """What both workers know, without I/O: the service, its handler and the timing.

    The broker is expected to speak every ``heartbeat_interval`` seconds; after ``liveness``
    intervals of silence it is taken for lost. ``reconnect_initial``/``reconnect_max`` bound
    the backoff between sessions the broker ended. ``credentials`` (None: the process's
    identity, see :mod:`plantd.security`) prove who serves.
    """

    def __init__(
        self,
        endpoint: str,
        service: str,
        handler: H,
        *,
        heartbeat_interval: float = 2.5,
        liveness: int = 3,
        reconnect_initial: float = 0.1,
        reconnect_max: float = 5.0,
        version: Version = Version.V2,
        credentials: Credentials | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.credentials = credentials
        self.service = service
        self.handler = handler
        self.version = version
        self.heartbeat_interval = heartbeat_interval
        self.liveness = liveness
        self._reconnect = (reconnect_initial, reconnect_max)
        self.sessions = 0  # READYs sent so far
        self.handled = 0  # requests answered

    @classmethod
    def from_config(cls, endpoint: str, service: str, handler: H, config: WorkerConfig) -> Self:
        """A worker with the heartbeat and reconnect timing of ``config``."""
        return cls(
            endpoint,
            service,
            handler,
            heartbeat_interval=config.heartbeat_interval,
            liveness=config.heartbeat_liveness,
            reconnect_initial=config.reconnect_initial,
            reconnect_max=config.reconnect_max,
        )

    def _new_session(self, secured: bool, wake: Callable[[], None]) -> Session:
        self.sessions += 1
        return Session(
            self.service,
            heartbeat_interval=self.heartbeat_interval,
            liveness=self.liveness,
            version=self.version,
            secured=secured,
            wake=wake,
        )

    def _reconnection(self) -> Reconnect:
        return Reconnect(self.service, *self._reconnect)

    def _failure_reply(self, exc: Exception) -> list[bytes]:
        """The reply for a handler that raised (call from its ``except`` block)."""
        # The supervisor edge: a handler bug must not take the worker down.
        if not isinstance(exc, PlantdError):
            log.exception("%s: handler failed", self.service)
        return handler_failure_body(exc)
