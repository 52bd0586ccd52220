"""Is an alarm's condition present? Detection per alarm type, with deadband and delays; sans-IO.

Two stages. **Detection** turns each sample into the *raw* condition, with hysteresis so a value
hovering at the limit does not chatter:

    high, high-high   raises when value > limit;   clears when value < limit - deadband
    low, low-low      raises when value < limit;   clears when value > limit + deadband
    rate              r = |Δvalue / Δt| between consecutive good samples (Δt by the samples'
                      own timestamps; a sample not newer than the last is skipped):
                      raises when r > limit; clears when r < limit - deadband
    deviation         d = |pv - setpoint| (setpoint: a number, or the latest good value of a
                      point): raises when d > limit; clears when d < limit - deadband
    discrete          raw = (value == state)
    bad-quality       raw = (sample quality is BAD). UNCERTAIN is *not* bad: it is the normal
                      state of substituted or stale-but-plausible data, and alarming on it
                      would flood; a limit alarm on such data still works as usual.

Bad data on every type but bad-quality (a sample that is not GOOD, or whose value is not a
finite number -- text, None, a list, NaN; for discrete: None, a list or a mapping) keeps the raw
condition as it was: bad data neither raises nor clears an alarm. Reporting bad data is the
bad-quality type's job. (A pending delay goes on running meanwhile.)

**Delays** then debounce the raw condition into the alarm's condition: it becomes active only
once the raw condition has held *continuously* for ``on_delay``, and clear once it has been gone
for ``off_delay``. Delays are measured in the ``now`` given to :meth:`Condition.observe` and
:meth:`Condition.tick` (wall time), not in sample timestamps; :meth:`Condition.next_due` says
when a pending delay ends, so the caller can tick then.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from plantd.bus import Quality, Sample, SampleValue

__all__ = ["Condition", "Detection"]


@dataclass(frozen=True, slots=True)
class Detection:
    """What to detect (the fields of an alarm's config that matter here)."""

    type: str
    point: str
    limit: float | None = None
    deadband: float = 0.0
    on_delay: float = 0.0
    off_delay: float = 0.0
    setpoint: float | str | None = None
    state: bool | int | float | str | None = None


def _number(sample: Sample) -> float | None:
    """The sample's value as a finite float, or None if it is bad data for a numeric alarm."""
    value = sample.value
    if sample.quality is not Quality.GOOD or not isinstance(value, bool | int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class Condition:
    """The condition of one alarm, fed with samples; see the module docstring."""

    def __init__(self, detection: Detection, *, active: bool = False) -> None:
        self.detection = detection
        sp = detection.setpoint
        self._sp_point = sp if isinstance(sp, str) else None
        self._sp_value: float | None = float(sp) if isinstance(sp, int | float) else None
        self.inputs = frozenset(p for p in (detection.point, self._sp_point) if p is not None)
        self.raw = active
        self.active = active
        self._since: float | None = None  # when raw began to differ from active
        self._pv: float | None = None
        self._last: tuple[float, float] | None = None  # rate: (timestamp, value) of last sample
        self.value: SampleValue = None
        """The last value of the alarm's point (for the records)."""
        self.sample_time: float | None = None

    def observe(self, point: str, sample: Sample, now: float) -> bool | None:
        """Take one sample of ``point``; returns the new condition if it changed, else None."""
        if point == self._sp_point:
            self._sp_value = _number(sample)
            if self._pv is not None:
                self._detect(abs(self._pv - self._sp_value) if self._sp_value is not None else None)
        if point == self.detection.point:
            self.value = sample.value
            self.sample_time = sample.timestamp
            self._detect_sample(sample)
        return self._settle(now)

    def tick(self, now: float) -> bool | None:
        """Let a pending delay end; returns the new condition if it changed, else None."""
        return self._settle(now)

    def next_due(self) -> float | None:
        """When the pending delay ends (None if none is pending)."""
        if self._since is None:
            return None
        return self._since + self._delay()

    def _delay(self) -> float:
        return self.detection.on_delay if self.raw else self.detection.off_delay

    def _detect_sample(self, sample: Sample) -> None:
        kind = self.detection.type
        if kind == "bad-quality":
            self.raw = sample.quality is Quality.BAD
            return
        if kind == "discrete":
            value = sample.value
            if sample.quality is Quality.GOOD and isinstance(value, bool | int | float | str):
                self.raw = value == self.detection.state
            return
        number = _number(sample)
        if kind == "rate":
            self._detect_rate(sample.timestamp, number)
        elif kind == "deviation":
            self._pv = number
            if number is not None and self._sp_value is not None:
                self._detect(abs(number - self._sp_value))
        elif kind in ("low", "low-low"):
            # mirrored: a low alarm on v is a high alarm on -v
            self._detect(None if number is None else -number, mirrored=True)
        else:
            self._detect(number)

    def _detect_rate(self, timestamp: float, number: float | None) -> None:
        if number is None:
            return
        last, self._last = self._last, (timestamp, number)
        if last is None:
            return
        if timestamp <= last[0]:
            self._last = last  # out of order or repeated: no rate from it
            return
        self._detect(abs((number - last[1]) / (timestamp - last[0])))

    def _detect(self, measure: float | None, *, mirrored: bool = False) -> None:
        """Hysteresis on ``measure`` (None: bad data, keep the raw condition)."""
        if measure is None or self.detection.limit is None:
            return
        limit = -self.detection.limit if mirrored else self.detection.limit
        if measure > limit:
            self.raw = True
        elif measure < limit - self.detection.deadband:
            self.raw = False

    def _settle(self, now: float) -> bool | None:
        if self.raw == self.active:
            self._since = None
            return None
        if self._since is None:
            self._since = now
        if now - self._since >= self._delay():
            self.active = self.raw
            self._since = None
            return self.active
        return None
