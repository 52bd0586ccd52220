"""The module's picture of its points: last readings, publishing, and what changed for state.

Every reading the runtime gets (from a poll, a fresh read, or a failure marking points bad)
passes through :meth:`PointTable.record`: it becomes the point's last value, and if its
:class:`PublishFilter` says so it joins the batch for the bus and is remembered for the next
state sync. :meth:`PointTable.flush` sends the batch, one bus message on ``data.<module>`` for
everything one poll (or one push delivery, or one failure) changed; the table's own methods
that take many readings flush when they are done.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NamedTuple

from plantd.bus import BusPublisher, Quality, SampleValue
from plantd.clock import SYSTEM_CLOCK, Clock
from plantd.module._config import GroupConfig, ModuleConfig, PointConfig
from plantd.module._driver import Reading
from plantd.module._publishing import PublishFilter

__all__ = ["LastValue", "PointTable"]

_BAD = Quality.BAD


class LastValue(NamedTuple):
    """A point's last reading. A named tuple: one is made per point per poll, and a tuple is
    the cheapest record Python builds."""

    value: SampleValue
    quality: Quality
    timestamp: float
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """Plain JSON: NaN and infinities (valid samples, not valid JSON) become text."""
        value = self.value
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        data: dict[str, Any] = {
            "value": value,
            "quality": self.quality.label,
            "timestamp": self.timestamp,
        }
        if self.error:
            data["error"] = self.error
        return data


class PointTable:
    """``clock`` stamps the readings that come without a timestamp of their own."""

    def __init__(
        self, module: ModuleConfig, publisher: BusPublisher, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.module = module
        self.clock = clock
        self.publisher = publisher
        self.points: dict[str, PointConfig] = {}
        self.group_of: dict[str, GroupConfig] = {}
        self._filters: dict[str, PublishFilter] = {}
        for group, point in module.points():
            self.points[point.name] = point
            self.group_of[point.name] = group
            self._filters[point.name] = PublishFilter(point, module.defaults)
        self._topic = f"data.{module.name}"
        self._batch: list[tuple[str, SampleValue, float, Quality]] = []
        self.last: dict[str, LastValue] = {}
        self.changed: set[str] = set()
        self.published = 0
        self.suppressed = 0

    def record(self, name: str, reading: Reading, now: float | None = None) -> None:
        """Take one reading of point ``name`` (the caller guarantees the name exists); what is
        to be published waits in the batch for :meth:`flush`."""
        stamp = reading.timestamp if reading.timestamp is not None else (now or self.clock.now())
        quality = reading.quality
        value = reading.value if quality is not _BAD else None
        self.last[name] = LastValue(value, quality, stamp, reading.error)
        if self._filters[name].offer(value, quality, stamp):
            self._batch.append((name, value, stamp, quality))
            self.published += 1
            # Only what was published goes to the state service: the deadband that spares the
            # bus spares the flash too.
            self.changed.add(name)
        else:
            self.suppressed += 1

    def record_group(self, group: GroupConfig, readings: dict[str, Reading] | Any) -> int:
        """Take a driver's answer for ``group``; points it left out are bad. Returns bad count."""
        now = self.clock.now()
        bad = 0
        for point in group.points:
            reading = readings.get(point.name)
            if reading is None:
                reading = Reading.bad("the driver returned no value for this point")
            if reading.quality is Quality.BAD:
                bad += 1
            self.record(point.name, reading, now)
        self.flush()
        return bad

    def flush(self) -> None:
        """Send what :meth:`record` gathered as one batch (nothing if nothing changed)."""
        if self._batch:
            batch, self._batch = self._batch, []
            self.publisher.publish_batch(self._topic, batch)

    def mark_bad(self, names: Iterable[str], error: str) -> None:
        """A failure touched these points: they are bad until read again."""
        now = self.clock.now()
        for name in names:
            last = self.last.get(name)
            if last is None or last.quality is not Quality.BAD or last.error != error:
                self.record(name, Reading.bad(error), now)
        self.flush()

    def heartbeat(self, names: Iterable[str], now: float) -> None:
        """Publish again, stamped ``now``, the last value of every point in ``names`` silent
        past its ``max_silence``: pushed points (subscriptions, edge events) are only read
        when they change, so nothing else would say that a steady value is still current."""
        for name in names:
            last = self.last.get(name)
            if last is not None and self._filters[name].silent_for_too_long(now):
                self.record(name, Reading(last.value, last.quality, now, last.error), now)
        self.flush()

    def republish_bad(self, now: float) -> None:
        """Publish again every bad point silent past its ``max_silence``. A failure (a lost
        connection, a failing group) marks points bad once and then nothing reads them: without
        this a subscriber could not tell a dead device (bad samples keep coming) from a dead
        module (nothing comes)."""
        bad = [name for name, last in self.last.items() if last.quality is _BAD]
        self.heartbeat(bad, now)

    def silence_period(self, names: Iterable[str]) -> float | None:
        """The shortest ``max_silence`` among ``names`` (None if none has one)."""
        periods = [s for n in names if (s := self._filters[n].max_silence) is not None]
        return min(periods) if periods else None

    def take_changed(self) -> dict[str, LastValue]:
        changed = {name: self.last[name] for name in self.changed if name in self.last}
        self.changed.clear()
        return changed
