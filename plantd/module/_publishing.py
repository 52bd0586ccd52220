"""Which readings become bus samples: publish on change, with deadbands and a heartbeat.

Rules, per point (sans-IO: readings and ``now`` in, a yes or no out):

  P1  The first reading is published.
  P2  A change of quality is published (a point going bad, or coming back, is news).
  P3  A numeric value is published when it moved at least ``deadband`` (absolute) or
      ``deadband_percent`` of the last published value; with both 0, any change is published.
  P4  A non-numeric value (text, bool, lists…) is published when it differs at all.
  P5  Whatever the value, a point silent for ``max_silence`` seconds is published again, so
      subscribers can tell a steady value from a dead publisher.
  NaN compares unequal to everything; it is treated as equal to a previous NaN.
"""

from __future__ import annotations

import math

from plantd.bus import Quality, SampleValue
from plantd.module._config import PointConfig, PointDefaults

__all__ = ["PublishFilter"]


class PublishFilter:
    __slots__ = ("_absolute", "_last_quality", "_last_time", "_last_value", "_percent", "_silence")

    def __init__(self, point: PointConfig, defaults: PointDefaults) -> None:
        self._absolute = point.deadband if point.deadband is not None else defaults.deadband
        percent = (
            point.deadband_percent
            if point.deadband_percent is not None
            else defaults.deadband_percent
        )
        self._percent = percent / 100.0
        self._silence = point.max_silence if point.max_silence is not None else defaults.max_silence
        self._last_value: SampleValue = None
        self._last_quality: Quality | None = None
        self._last_time = 0.0

    def offer(self, value: SampleValue, quality: Quality, now: float) -> bool:
        """True if this reading should be published (and remember it as published)."""
        if self._should_publish(value, quality, now):
            self._last_value = value
            self._last_quality = quality
            self._last_time = now
            return True
        return False

    @property
    def max_silence(self) -> float | None:
        return self._silence

    def silent_for_too_long(self, now: float) -> bool:
        """P5 for a point nobody reads: was its last publication ``max_silence`` ago?"""
        return (
            self._silence is not None
            and self._last_quality is not None
            and now - self._last_time >= self._silence
        )

    def _should_publish(self, value: SampleValue, quality: Quality, now: float) -> bool:
        if self._last_quality is None or quality is not self._last_quality:
            return True  # P1, P2
        if self._silence is not None and now - self._last_time >= self._silence:
            return True  # P5
        last = self._last_value
        # type() rather than isinstance: bool is an int subclass but not a number here, and
        # this runs for every point on every poll.
        if type(value) in _NUMBERS and type(last) in _NUMBERS:
            assert isinstance(value, int | float)
            assert isinstance(last, int | float)
            value_nan, last_nan = math.isnan(value), math.isnan(last)
            if value_nan or last_nan:
                return not (value_nan and last_nan)
            moved = abs(value - last)
            if self._absolute == 0 and self._percent == 0:
                return moved > 0  # P3 without a deadband
            threshold = max(self._absolute, abs(last) * self._percent)
            return moved >= threshold and moved > 0
        return value != last  # P4


_NUMBERS = frozenset({int, float})
