"""Debouncing edges and deriving a pulse rate (sans-IO: edges and clock values in).

Debounce rule (stable time). A contact that bounces produces a burst of edges; the level it
settles at counts once it has held for ``interval`` since the burst's last edge:

  D1  Each raw edge sets the pending level and restarts the wait. If the pending level had
      already held for ``interval`` when the edge came (by the edges' own timestamps), it
      settles first (D2): edges read late, all at once, are judged as they happened.
  D2  When ``interval`` passed since the last raw edge (:meth:`Debouncer.poll` with ``now``),
      the pending level becomes the debounced level — one change, stamped with the time of
      the burst's *first* edge (when the contact actually moved).
  D3  A burst that settles back at the debounced level (a glitch, noise) is no change.
  D4  With ``interval`` 0 every edge that changes the level is a change, at once.

:class:`RateWindow` counts events in a sliding window: the rate is the events in the last
``window`` seconds divided by the window (or by the time since the start, while the window
is not yet full), so a flow meter's pulses become litres per second without a poll loop.
"""

from __future__ import annotations

from collections import deque

__all__ = ["Change", "Debouncer", "RateWindow"]


class Change(tuple[bool, int]):
    """A debounced change: (level, timestamp_ns)."""

    __slots__ = ()

    @property
    def level(self) -> bool:
        return self[0]

    @property
    def timestamp_ns(self) -> int:
        return self[1]


class Debouncer:
    def __init__(self, interval_ns: int, level: bool) -> None:
        self.interval_ns = interval_ns
        self.level = level  # the debounced level
        self.raw_edges = 0
        self._pending: bool | None = None
        self._first_ns = 0
        self._last_ns = 0

    def edge(self, level: bool, timestamp_ns: int) -> Change | None:
        """A raw edge to ``level``; returns a change if one settled before it (D1), or at once
        when there is no interval (D4)."""
        settled = self.poll(timestamp_ns)  # D1: judged by the edges' own timestamps
        self.raw_edges += 1
        if self._pending is None:
            self._first_ns = timestamp_ns
        self._pending = level
        self._last_ns = timestamp_ns
        if self.interval_ns == 0:
            return self.poll(timestamp_ns)  # D4
        return settled

    def deadline(self) -> int | None:
        """When :meth:`poll` may next report a change (None: nothing pending)."""
        return None if self._pending is None else self._last_ns + self.interval_ns

    def poll(self, now_ns: int) -> Change | None:
        if self._pending is None or now_ns < self._last_ns + self.interval_ns:
            return None
        level, self._pending = self._pending, None
        if level == self.level:
            return None  # D3
        self.level = level
        return Change((level, self._first_ns))  # D2


class RateWindow:
    def __init__(self, window_ns: int, start_ns: int) -> None:
        self.window_ns = window_ns
        self.start_ns = start_ns
        self._events: deque[int] = deque()

    def add(self, timestamp_ns: int) -> None:
        self._events.append(timestamp_ns)

    def rate(self, now_ns: int) -> float:
        """Events per second over the window ending at ``now_ns``."""
        horizon = now_ns - self.window_ns
        events = self._events
        while events and events[0] <= horizon:
            events.popleft()
        span = min(self.window_ns, now_ns - self.start_ns)
        if span <= 0:
            return 0.0
        return len(events) * 1e9 / span
