"""The worker side of MDP as a sans-IO state machine.

    DISCONNECTED --connect()--> IDLE --REQUEST--> BUSY --reply(final=True)--> IDLE
          ^                       |                 |
          +---- DISCONNECT from the broker, or no word from it for ----+
                heartbeat_interval × liveness (tick reports broker_lost)

Rules:
  R1  ``connect`` sends READY; it is the only way out of DISCONNECTED.
  R2  Any command from the broker proves it alive; HEARTBEAT does nothing else.
  R3  REQUEST is valid only when IDLE; a REQUEST while BUSY breaks the protocol.
  R4  ``reply`` is valid only when BUSY; ``final=False`` sends a PARTIAL and stays BUSY.
  R5  HEARTBEAT goes out every interval in which nothing else was sent, busy or not, so the
      broker sees us alive while a long handler runs.
  R6  DISCONNECT from the broker, or its silence past the liveness window, returns to
      DISCONNECTED; the I/O shell then opens a new socket and calls ``connect`` again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from plantd.errors import LocalProtocolError, RemoteProtocolError
from plantd.mdp._frames import (
    Disconnect,
    Heartbeat,
    Version,
    WorkerReady,
    WorkerReply,
    WorkerRequest,
    decode,
    encode,
    is_valid_service_name,
)

__all__ = ["RequestReceived", "TickResult", "WorkerProtocol", "WorkerState"]


class WorkerState(enum.Enum):
    DISCONNECTED = "disconnected"
    IDLE = "idle"
    BUSY = "busy"


@dataclass(frozen=True, slots=True)
class RequestReceived:
    client: bytes
    body: list[bytes]


@dataclass(slots=True)
class TickResult:
    send: list[list[bytes]] = field(default_factory=list)
    broker_lost: bool = False


class WorkerProtocol:
    def __init__(
        self,
        service: bytes,
        *,
        heartbeat_interval: float,
        liveness: int,
        version: Version = Version.V2,
    ) -> None:
        if not is_valid_service_name(service):
            raise LocalProtocolError(f"invalid service name {service!r}")
        if service.startswith(b"mmi."):
            raise LocalProtocolError("the mmi. namespace belongs to the broker")
        self.service = service
        self.version = version
        self.interval = heartbeat_interval
        self.liveness = liveness
        self.state = WorkerState.DISCONNECTED
        self.client: bytes | None = None  # whose request we are handling
        self._broker_expiry = 0.0
        self._last_sent = 0.0

    def connect(self, now: float) -> list[bytes]:
        """READY frames for a fresh socket (R1)."""
        self.state = WorkerState.IDLE
        self.client = None
        self._broker_expiry = now + self.interval * self.liveness
        self._last_sent = now
        return encode(WorkerReady(self.version, self.service))

    def receive(self, frames: list[bytes], now: float) -> RequestReceived | Disconnect | None:
        """Read one message from the broker; returns the request to handle, if any."""
        if self.state is WorkerState.DISCONNECTED:
            raise LocalProtocolError("receive() before connect()")
        message = decode(frames)
        if message.version is not self.version:
            raise RemoteProtocolError(f"broker answered in MDP/0.{message.version.value}")
        self._broker_expiry = now + self.interval * self.liveness  # R2
        if isinstance(message, Heartbeat):
            return None
        if isinstance(message, Disconnect):
            self.state = WorkerState.DISCONNECTED  # R6
            return message
        if isinstance(message, WorkerRequest):
            if self.state is WorkerState.BUSY:
                raise RemoteProtocolError("broker sent a REQUEST while we were busy")  # R3
            self.state = WorkerState.BUSY
            self.client = message.client
            return RequestReceived(message.client, message.body)
        raise RemoteProtocolError(f"a worker does not accept {type(message).__name__}")

    def reply(self, body: list[bytes], now: float, *, final: bool = True) -> list[bytes]:
        """PARTIAL or FINAL frames for the current request (R4)."""
        if self.state is not WorkerState.BUSY or self.client is None:
            raise LocalProtocolError("reply() without a request in hand")
        frames = encode(WorkerReply(self.version, self.client, body, final=final))
        if final:
            self.state = WorkerState.IDLE
            self.client = None
        self._last_sent = now
        return frames

    def disconnect(self) -> list[bytes]:
        """DISCONNECT frames for an orderly goodbye."""
        self.state = WorkerState.DISCONNECTED
        self.client = None
        return encode(Disconnect(self.version))

    def tick(self, now: float) -> TickResult:
        """Heartbeat (R5) and broker liveness (R6)."""
        result = TickResult()
        if self.state is WorkerState.DISCONNECTED:
            return result
        if now >= self._broker_expiry:
            self.state = WorkerState.DISCONNECTED
            self.client = None
            result.broker_lost = True
            return result
        if now - self._last_sent >= self.interval:
            result.send.append(encode(Heartbeat(self.version)))
            self._last_sent = now
        return result

    def next_tick(self) -> float:
        """When ``tick`` has something to do next."""
        return min(self._last_sent + self.interval, self._broker_expiry)
