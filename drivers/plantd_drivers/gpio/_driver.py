"""The GPIO driver: the module door over a :class:`~plantd_drivers.gpio._chip.Chip`.

Theory of operation. ``open`` requests every line: outputs at their safe state first, then
inputs. Inputs of ``events`` groups and every counter get a :class:`Watcher` thread that
debounces edges; each debounced change reaches :meth:`GpioDriver._changed` in the event loop,
which updates the point (inputs: the level; counters: pulses × scale, and their rate windows)
and pushes it to the group's streams. Rates are computed when read, and pushed every group
``interval``. ``poll`` groups are read on demand (inputs raw, without debounce).

Outputs and the safe state. An output is at ``safe_state`` from ``open``; ``write`` sets it and
(with ``hold_timeout``) arms a timer that any later write re-arms. The safe state is applied

- at start (``open``), before any write can reach the line;
- on orderly shutdown and whenever the runtime closes the driver (a lost chip: ``close``);
- on loss of the controlling service: no write to the output for ``hold_timeout`` seconds
  (a controller that means to hold a value re-writes it, as a heartbeat).

A process that is killed cannot apply anything: the kernel releases its lines, and most chips
then keep the last level. Pull resistors (or the hardware's own default) must make the safe
state the released state; see docs/drivers/gpio.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from plantd.bus import SampleValue
from plantd.errors import DeviceUnavailable
from plantd.module import ModuleConfig, Reading
from plantd.streams import Fanout
from plantd_drivers.gpio._backends import load_chip_backend
from plantd_drivers.gpio._chip import Chip, Line
from plantd_drivers.gpio._config import GpioGroup, GpioModule, GpioPoint
from plantd_drivers.gpio._debounce import Change, RateWindow
from plantd_drivers.gpio._watch import Watcher

__all__ = ["GpioDriver"]

log = logging.getLogger(__name__)


class GpioDriver:
    """The ``gpio`` driver: digital inputs, pulse counters with rates, and outputs with a safe
    state, on the lines of one GPIO chip.

    Config (:class:`GpioModule`): ``connection`` names the chip (``chip``, ``backend``,
    ``label``); each group is ``mode: events`` (pushed, the default) or ``poll``; its points are
    ``input``, ``counter``, ``rate`` or ``output`` (see :mod:`plantd_drivers.gpio._config`).

    - read: outputs and polled inputs are read from their lines now; watched inputs and
      counters answer their last debounced value, rates are computed from their window now.
    - write: outputs only, ``true``/``false`` (or 1/0); re-arms the output's ``hold_timeout``.
    - stream (``events`` groups): first the whole group, then each debounced change as it
      comes, and the group's rates every ``interval``; a stalled consumer loses the oldest
      changes (10 000 kept). The stream raises DeviceUnavailable when the chip fails or the
      driver is closed.
    """

    config_type: ClassVar[type[ModuleConfig]] = GpioModule

    def __init__(self, config: GpioModule, chip: Chip | None = None) -> None:
        """``chip`` given (a test's) is used as it is; otherwise ``open`` makes one from
        ``connection.backend``."""
        self.config = config
        self.connection = config.connection
        self.chip: Chip | None = chip
        self.group_of = {p.name: g for g in config.groups for p in g.points}
        self.lines: dict[str, Line] = {}
        self.watchers: dict[str, Watcher] = {}
        self.values: dict[str, Reading] = {}
        self.failure: DeviceUnavailable | None = None
        self.safe_states_applied = 0
        self.last_safe_reason: str | None = None
        self._hold: dict[str, asyncio.TimerHandle] = {}
        # Group name → its streams' feeds. Edges can come faster than a consumer takes them;
        # a stalled one loses the oldest (a bounded 10 000 each), never the producer's time.
        self._streams: Fanout[str, dict[str, Reading]] = Fanout(maxsize=10_000)
        self._open = False

    # -- opening and closing ---------------------------------------------------------------------

    async def open(self) -> None:
        """Request every line (outputs at their safe state first) and start watching the
        inputs and counters of ``events`` groups. DeviceFault for a line another consumer
        holds, DeviceUnavailable for a chip that cannot be reached; what was requested so far
        is released again."""
        await self.close()
        chip = self.chip = self.chip or self._make_chip()
        self.failure = None
        try:
            await asyncio.to_thread(self._request_all, chip)
        except BaseException:
            await self.close()
            raise
        loop = asyncio.get_running_loop()
        for watcher in self.watchers.values():
            watcher.start(loop, self._changed, self._fail)
        self._open = True

    def _make_chip(self) -> Chip:
        # Loaded by the name the module file gives (the back end's package is imported only now).
        return load_chip_backend(self.connection.backend)(self.connection.chip)

    def _request_all(self, chip: Chip) -> None:
        label = self.connection.label
        points = [p for g in self.config.groups for p in g.points]
        for point in (p for p in points if p.kind == "output"):
            assert point.line is not None
            assert point.safe_state is not None
            self.lines[point.name] = chip.request_output(
                point.line, value=point.safe_state, drive=point.drive,
                active_low=point.active_low, label=label,
            )  # fmt: skip
            self.values[point.name] = Reading(point.safe_state)
        for point in (p for p in points if p.kind in ("input", "counter")):
            assert point.line is not None
            watched = point.kind == "counter" or self.group_of[point.name].mode == "events"
            line = self.lines[point.name] = chip.request_input(
                point.line, edge="both" if watched else "none", bias=point.bias,
                active_low=point.active_low, label=label,
            )  # fmt: skip
            level = line.read()
            if watched:
                self.watchers[point.name] = Watcher(point, line, chip, level)
            self.values[point.name] = Reading(level if point.kind == "input" else 0.0)
        now = chip.now_ns()
        for point in (p for p in points if p.kind == "rate"):
            assert point.counter is not None
            window = RateWindow(round(point.window * 1e9), now)
            self.watchers[point.counter].windows.append((point, window))

    async def close(self) -> None:
        """Stop the watchers, apply every output's safe state, release the lines and end the
        streams. Idempotent."""
        was_open, self._open = self._open, False
        for handle in self._hold.values():
            handle.cancel()
        self._hold.clear()
        watchers, self.watchers = self.watchers, {}
        threads = [t for t in (w.stop() for w in watchers.values()) if t is not None]
        for thread in threads:
            await asyncio.to_thread(thread.join, 2.0)
        lines, self.lines = self.lines, {}
        if was_open or lines:
            await asyncio.to_thread(self._release, lines)
        self._streams.end()

    def _release(self, lines: dict[str, Line]) -> None:
        for name, line in lines.items():
            point = self._point(name)
            try:
                try:
                    if point.kind == "output" and point.safe_state is not None:
                        line.write(point.safe_state)
                        self.safe_states_applied += 1
                finally:
                    # Closed even when a vanished chip could not be written: the open line
                    # would keep the chip's device, so that it came back under another number.
                    line.close()
            except Exception:
                log.warning("gpio: could not release %s cleanly", name, exc_info=True)

    # -- the door --------------------------------------------------------------------------------

    async def read(self, group: GpioGroup) -> dict[str, Reading]:
        """Every point of ``group``: lines read now where nothing watches them, the last
        debounced value where a watcher does, rates over their window as of now."""
        self._check()
        raw = [p.name for p in group.points if p.kind == "output" or self._polled(p)]
        levels = await asyncio.to_thread(self._read_lines, raw) if raw else {}
        readings: dict[str, Reading] = {}
        for point in group.points:
            if point.name in levels:
                readings[point.name] = Reading(levels[point.name])
            elif point.kind == "rate":
                readings[point.name] = Reading(self._rate(point))
            else:
                readings[point.name] = self.values[point.name]
        return readings

    def _read_lines(self, names: list[str]) -> dict[str, bool]:
        try:
            return {name: self.lines[name].read() for name in names}
        except Exception as exc:
            raise DeviceUnavailable(f"reading {self.connection.chip}: {exc}") from exc

    async def write(self, point: GpioPoint, value: Any) -> SampleValue:
        """Drive output ``point`` to ``value`` (logical: ``active_low`` inverts on the line)
        and re-arm its hold timer; ValueError for a point that is not a writable output or a
        value that is not a level, DeviceUnavailable if the line cannot be written."""
        self._check()
        refusal = point.check_write(value)
        if refusal is not None or point.name not in self.lines:
            raise ValueError(refusal or f"{point.name!r} is not an output")
        level = bool(value)
        try:
            await asyncio.to_thread(self.lines[point.name].write, level)
        except Exception as exc:
            raise DeviceUnavailable(f"writing {point.name}: {exc}") from exc
        self.values[point.name] = Reading(level)
        self._arm_hold(point)
        return level

    def pushes(self, group: GpioGroup) -> bool:
        """``events`` groups are streamed; ``poll`` groups are read every interval."""
        return group.mode == "events"

    async def stream(self, group: GpioGroup) -> AsyncIterator[dict[str, Reading]]:
        """The whole group first, then each change as it is debounced (one point per
        mapping) and the rates every ``interval``; raises DeviceUnavailable when the chip fails
        or the driver closes."""
        self._check()
        loop = asyncio.get_running_loop()
        rates = [p for p in group.points if p.kind == "rate"]
        with self._streams.subscribe(group.name) as feed:
            yield await self.read(group)
            next_rates = loop.time() + group.interval
            while True:
                try:
                    async with asyncio.timeout_at(next_rates if rates else None):
                        batch = await feed.get()
                except TimeoutError:
                    next_rates += group.interval
                    yield {p.name: Reading(self._rate(p)) for p in rates}
                    continue
                if batch is None:  # closed or failed: say which
                    self._check()
                    return
                yield batch

    def status(self) -> dict[str, Any]:
        """The chip and back end, whether it is open, raw edges and pulses per watched line,
        and how often (and last why) a safe state was applied."""
        return {
            "chip": self.connection.chip,
            "backend": self.connection.backend,
            "open": self._open,
            "failure": str(self.failure) if self.failure else None,
            "raw_edges": {n: w.debouncer.raw_edges for n, w in self.watchers.items()},
            "pulses": {n: w.count for n, w in self.watchers.items() if w.point.kind == "counter"},
            "safe_states_applied": self.safe_states_applied,
            "last_safe_state_reason": self.last_safe_reason,
        }

    # -- events (in the event loop) --------------------------------------------------------------

    def _changed(self, watcher: Watcher, change: Change) -> None:
        point = watcher.point
        assert self.chip is not None
        stamp = self.chip.to_unix(change.timestamp_ns)
        if point.kind == "input":
            reading = Reading(change.level, timestamp=stamp)
        else:
            if not _counts(point, change.level):
                return
            watcher.count += 1
            for _, window in watcher.windows:
                window.add(change.timestamp_ns)
            reading = Reading(watcher.count * point.scale, timestamp=stamp)
        self.values[point.name] = reading
        self._push(point.name, reading)

    def _push(self, name: str, reading: Reading) -> None:
        self._streams.publish(self.group_of[name].name, {name: reading})

    def _rate(self, point: GpioPoint) -> float:
        assert point.counter is not None
        assert self.chip is not None
        watcher = self.watchers[point.counter]
        window = next(w for p, w in watcher.windows if p is point)
        return window.rate(self.chip.now_ns()) * watcher.point.scale * point.per

    # -- outputs: the hold timer -----------------------------------------------------------------

    def _arm_hold(self, point: GpioPoint) -> None:
        if point.hold_timeout is None:
            return
        previous = self._hold.pop(point.name, None)
        if previous is not None:
            previous.cancel()
        loop = asyncio.get_running_loop()
        self._hold[point.name] = loop.call_later(point.hold_timeout, self._hold_expired, point)

    def _hold_expired(self, point: GpioPoint) -> None:
        """No write for hold_timeout: the controlling service is taken for lost."""
        self._hold.pop(point.name, None)
        assert point.safe_state is not None
        reason = f"no write to {point.name} for {point.hold_timeout:g} s"
        log.warning("gpio: %s: applying the safe state (%s)", reason, point.safe_state)
        try:
            self.lines[point.name].write(point.safe_state)  # one ioctl: too quick for a thread
        except Exception as exc:
            self._fail(DeviceUnavailable(f"applying the safe state of {point.name}: {exc}"))
            return
        self.safe_states_applied += 1
        self.last_safe_reason = reason
        self.values[point.name] = Reading(point.safe_state)
        self._push(point.name, self.values[point.name])

    # -- helpers ---------------------------------------------------------------------------------

    def _polled(self, point: GpioPoint) -> bool:
        return point.kind == "input" and point.name not in self.watchers

    def _point(self, name: str) -> GpioPoint:
        return next(p for p in self.group_of[name].points if p.name == name)

    def _fail(self, error: DeviceUnavailable) -> None:
        if self.failure is None:
            self.failure = error
        self._streams.end()

    def _check(self) -> None:
        if self.failure is not None:
            raise self.failure
        if not self._open:
            raise DeviceUnavailable(f"{self.connection.chip} is not open")


def _counts(point: GpioPoint, level: bool) -> bool:
    return point.edge == "both" or (point.edge == "rising") == level
