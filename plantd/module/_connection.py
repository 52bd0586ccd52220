"""The connection's state machine: connect, lose, back off, connect again — for ever.

    CONNECTING --open() ok--> CONNECTED --DeviceUnavailable--> BACKOFF --delay--> CONNECTING
        |                                                         ^
        +------------------- open() failed ------------------------+

The backoff doubles from ``initial`` up to ``maximum``, each delay drawn from [d/2, d] so that
many modules restarting together spread out; it resets once a connection succeeds. Only
transitions are logged: the first failure once (with its cause), recovery once (with how long it
took), and the attempts in between at debug level. Sans-IO: callers pass ``now``.
"""

from __future__ import annotations

import enum
import logging
import random

__all__ = ["Connection", "ConnectionState"]

log = logging.getLogger(__name__)


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"


class Connection:
    def __init__(
        self,
        label: str,
        *,
        initial: float = 0.5,
        maximum: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.label = label
        self.initial = initial
        self.maximum = maximum
        self.state = ConnectionState.CONNECTING
        self.since = 0.0  # when the current state began
        self.attempts = 0  # failed attempts since the last success
        self.connects = 0  # successful connections in all
        self.last_error: str | None = None
        self._delay = initial
        self._down_since: float | None = None
        self._rng = rng or random.Random()

    def connected(self, now: float) -> None:
        if self._down_since is not None:
            log.warning(
                "%s: connected again after %d attempt(s), %.1f s unavailable",
                self.label,
                self.attempts,
                now - self._down_since,
            )
        elif self.connects == 0:
            log.info("%s: connected", self.label)
        self.state = ConnectionState.CONNECTED
        self.since = now
        self.connects += 1
        self.attempts = 0
        self.last_error = None
        self._down_since = None
        self._delay = self.initial

    def failed(self, now: float, error: str) -> float:
        """The connection failed or could not be made; returns how long to wait."""
        if self._down_since is None:
            log.warning("%s: unavailable: %s (retrying with backoff)", self.label, error)
            self._down_since = now
        else:
            log.debug("%s: attempt %d failed: %s", self.label, self.attempts + 1, error)
        self.attempts += 1
        self.last_error = error
        self.state = ConnectionState.BACKOFF
        self.since = now
        delay = self._rng.uniform(self._delay / 2, self._delay)
        self._delay = min(self._delay * 2, self.maximum)
        return delay

    def connecting(self, now: float) -> None:
        self.state = ConnectionState.CONNECTING
        self.since = now

    def as_status(self, now: float) -> dict[str, object]:
        return {
            "state": self.state.value,
            "for": round(now - self.since, 3),
            "connects": self.connects,
            "failed_attempts": self.attempts,
            "last_error": self.last_error,
        }
