"""The per-unit circuit breaker: a unit that stops answering is quarantined, not waited for.

On a shared line every request waits for the one before it, so a dead unit that is asked every
cycle costs every other unit a timeout per cycle. The breaker stops asking it, and tries again
later with a single request (no retries), backing off while it stays silent.

Transitions (``now`` is the caller's monotonic clock; nothing here sleeps or reads a clock):

    CLOSED   --failed-->                 OPEN until now + delay
    OPEN     --allow, once now >= until--> PROBING (this request is the probe)
    PROBING  --succeeded-->              CLOSED, delay back to the initial delay
    PROBING  --failed-->                 OPEN until now + 2 × delay (capped at the maximum)
    PROBING  --abandoned-->              OPEN until now (the probe was cancelled: probe again)
    CLOSED   --succeeded-->              CLOSED

While OPEN, and while a probe is out, :meth:`Breaker.allow` refuses: the caller answers for the
unit at once (its points are ``bad``) without touching the line. A unit that answers with an
exception code is alive: that is a success here.
"""

from __future__ import annotations

import enum

__all__ = ["Breaker", "BreakerState"]


class BreakerState(enum.Enum):
    CLOSED = "ok"
    OPEN = "quarantined"
    PROBING = "probing"


class Breaker:
    __slots__ = ("delay", "initial", "maximum", "state", "trips", "until")

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self.state = BreakerState.CLOSED
        self.delay = initial
        self.until = 0.0
        self.trips = 0
        """Times the unit went from answering to quarantined."""

    def allow(self, now: float) -> bool:
        """May a request go to the unit now? An OPEN breaker whose time is up lets one probe out."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and now >= self.until:
            self.state = BreakerState.PROBING
            return True
        return False

    def retries(self, configured: int) -> int:
        """Retries for the request just allowed: none for a probe."""
        return 0 if self.state is BreakerState.PROBING else configured

    def succeeded(self) -> bool:
        """The unit answered; True if that ends a quarantine."""
        recovered = self.state is not BreakerState.CLOSED
        self.state = BreakerState.CLOSED
        self.delay = self.initial
        return recovered

    def failed(self, now: float) -> bool:
        """The unit did not answer (after the retries); True if it was answering until now."""
        tripped = self.state is BreakerState.CLOSED
        if self.state is BreakerState.PROBING:
            self.delay = min(2 * self.delay, self.maximum)
        if tripped:
            self.trips += 1
        self.state = BreakerState.OPEN
        self.until = now + self.delay
        return tripped

    def abandoned(self, now: float) -> None:
        """A probe that never finished (cancelled): let the next request probe again."""
        if self.state is BreakerState.PROBING:
            self.state = BreakerState.OPEN
            self.until = now

    def reset(self) -> None:
        self.state = BreakerState.CLOSED
        self.delay = self.initial
        self.until = 0.0

    @property
    def down(self) -> bool:
        return self.state is not BreakerState.CLOSED

    def next_probe_in(self, now: float) -> float | None:
        if self.state is BreakerState.OPEN:
            return max(0.0, self.until - now)
        return None
