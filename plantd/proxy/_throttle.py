"""Failed-login throttling: ``proxy.login_attempts`` per person and per client address within
``proxy.login_window``, then HTTP 429 until the window frees.

Theory of operation. Each key (``person:user.alice``, ``address:192.0.2.7``) keeps the times
of its last ``attempts`` failures, newest last. A key is refused while it holds ``attempts``
failures and the oldest of them is less than ``window`` old; it may try again when that one
leaves the window (a sliding window, so a patient guesser gets ``attempts`` tries per
``window``, never more). A refused attempt is not counted: refusals do not prolong
themselves, and they cost nothing (no password is checked).

An attempt is counted as a failure *before* its password is checked (:meth:`attempt`), and
taken back when it succeeds (:meth:`succeeded`): the check runs in a thread, and a guesser who
sends a hundred logins at once must not have them all checked before the first failure is
recorded. Success forgets the person's failures (they proved who they are) but only takes the
one attempt back from the address, so that whoever holds one account cannot use its
successes to keep guessing others from the same address.

IPv6 clients are counted by their /64, the block one household or host usually gets, so that
walking through one's own addresses does not reset the count.

Memory is bounded: at most ``capacity`` keys, the least recently failed forgotten first (a
key whose failures have all left the window is forgotten on its next look anyway). All times
are the injected clock's monotonic ones: nothing here outlives the process.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict, deque

from plantd.clock import Clock
from plantd.config import PlantdConfig

__all__ = ["DEFAULT_CAPACITY", "LoginThrottle", "address_key"]

DEFAULT_CAPACITY = 10_000  # keys remembered; each holds at most `attempts` floats


def address_key(address: str | None) -> str:
    """The key a client address is counted under: the address, an IPv6 one's /64."""
    if not address:
        return "address:unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"address:{address[:64]}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"address:{ip.ipv4_mapped}"
        return f"address:{ipaddress.IPv6Network((ip, 64), strict=False)}"
    return f"address:{ip}"


class LoginThrottle:
    """Counts failed logins; says how long to wait when there were too many."""

    def __init__(
        self,
        clock: Clock,
        *,
        attempts: int,
        window: float,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        if attempts < 1 or window <= 0 or capacity < 2:
            raise ValueError("attempts must be ≥ 1, window > 0 and capacity ≥ 2")
        self._clock = clock
        self.attempts = attempts
        self.window = window
        self.capacity = capacity
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    @classmethod
    def from_config(cls, config: PlantdConfig, clock: Clock) -> LoginThrottle:
        return cls(clock, attempts=config.proxy.login_attempts, window=config.proxy.login_window)

    def attempt(self, person: str, address: str | None) -> int | None:
        """May ``person`` try a password from ``address`` now? None: yes, and the attempt
        counts as a failure until :meth:`succeeded`; else the seconds to wait (≥ 1, for
        ``Retry-After``), and nothing is counted."""
        now = self._clock.monotonic()
        keys = (f"person:{person}", address_key(address))
        wait = max(self._wait(key, now) for key in keys)
        if wait > 0:
            return max(1, math.ceil(wait))
        for key in keys:
            self._record(key, now)
        return None

    def succeeded(self, person: str, address: str | None) -> None:
        """The attempt was right: forget ``person``'s failures, take it back from ``address``."""
        self._failures.pop(f"person:{person}", None)
        times = self._failures.get(address_key(address))
        if times:
            times.pop()
            if not times:
                del self._failures[address_key(address)]

    def failures(self, person: str | None = None, address: str | None = None) -> int:
        """Failures within the window for ``person`` or ``address`` (for tests and metrics)."""
        key = f"person:{person}" if person is not None else address_key(address)
        now = self._clock.monotonic()
        return sum(1 for t in self._failures.get(key, ()) if now - t < self.window)

    def __len__(self) -> int:
        """Keys remembered."""
        return len(self._failures)

    def _wait(self, key: str, now: float) -> float:
        times = self._failures.get(key)
        if times is None:
            return 0.0
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0.0
        if len(times) < self.attempts:
            return 0.0
        return times[0] + self.window - now

    def _record(self, key: str, now: float) -> None:
        times = self._failures.get(key)
        if times is None:
            self._forget_oldest(now)
            times = self._failures[key] = deque(maxlen=self.attempts)
        else:
            self._failures.move_to_end(key)
        times.append(now)

    def _forget_oldest(self, now: float) -> None:
        """Make room for one more key. Keys are in the order of their last failure, so those
        whose failures all left the window are at the front; then the least recently failed."""
        while self._failures:
            times = next(iter(self._failures.values()))
            if times and now - times[-1] < self.window and len(self._failures) < self.capacity:
                return
            self._failures.popitem(last=False)
