"""Drift-free poll deadlines: the n-th poll of a group is due at ``start + n × interval``.

A poll that runs past one or more deadlines does not shift the schedule; the deadlines it
missed are skipped and counted as overruns (visible in the module's ``status``), and the next
poll is due at the first deadline still ahead. Sans-IO: the caller passes ``now``.
"""

from __future__ import annotations

import math

__all__ = ["Schedule"]


class Schedule:
    __slots__ = ("_n", "interval", "overruns", "polls", "start")

    def __init__(self, interval: float, start: float) -> None:
        self.interval = interval
        self.start = start
        self.overruns = 0
        self.polls = 0
        self._n = 0

    @property
    def deadline(self) -> float:
        """When the next poll is due."""
        return self.start + self._n * self.interval

    def polled(self, now: float) -> float:
        """Record a poll that finished at ``now``; return when the next one is due."""
        self.polls += 1
        next_n = self._n + 1
        due = self.start + next_n * self.interval
        if now >= due:
            first_ahead = math.floor((now - self.start) / self.interval) + 1
            self.overruns += first_ahead - next_n
            next_n = first_ahead
        self._n = next_n
        return self.start + next_n * self.interval

    def restart(self, now: float) -> None:
        """Start again from ``now`` (after a reconnect), keeping the counters."""
        self.start = now
        self._n = 0
