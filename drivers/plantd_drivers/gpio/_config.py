"""The GPIO module file: a chip, and its lines as inputs, counters, rates and outputs.

    driver: gpio
    connection:
      chip: /dev/gpiochip0
    groups:
      - name: panel                     # mode: events (edges pushed; the default) or poll
        interval: 1s                    # how often rates are published
        points:
          - {name: door, kind: input, line: 17, active_low: true, bias: pull_up, debounce: 20ms}
          - {name: water_l, kind: counter, line: 27, edge: rising, debounce: 2ms, scale: 0.5}
          - {name: water_l_min, kind: rate, counter: water_l, window: 10s, per: 1m}
          - {name: pump, kind: output, line: 22, writable: true, safe_state: false,
             hold_timeout: 30s}

Outputs go to ``safe_state`` when the module starts, when it stops in order, when it loses its
connection to the chip, and when no write reached them for ``hold_timeout`` (the controlling
service is taken for lost). See docs/drivers/gpio.md for what a killed process leaves behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from plantd.config import Duration, Ge, Gt, KeyPath
from plantd.module import GroupConfig, ModuleConfig, PointConfig
from plantd_drivers.gpio._backends import chip_backends, unknown_backend

__all__ = ["GpioConnection", "GpioGroup", "GpioModule", "GpioPoint"]


@dataclass(frozen=True, kw_only=True)
class GpioConnection:
    chip: str = "/dev/gpiochip0"
    backend: str = "cdev"
    """The chip's back end, by its name in the ``plantd.gpio_chips`` entry-point group:
    ``cdev``, the kernel's GPIO character device (python-periphery); ``simulated``, an
    in-process chip (``hil.gpio``) for demos and tests."""
    label: str = "plantd"
    """The consumer name the kernel shows for the lines (``gpioinfo``)."""

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if self.backend not in chip_backends():
            yield ("backend",), unknown_backend(self.backend)


@dataclass(frozen=True, kw_only=True)
class GpioPoint(PointConfig):
    kind: Literal["input", "counter", "rate", "output"] = "input"
    line: Annotated[int, Ge(0)] | None = None
    active_low: bool = False
    bias: Literal["default", "pull_up", "pull_down", "disable"] = "default"
    debounce: Annotated[float, Duration, Ge(0)] = 0.0
    edge: Literal["rising", "falling", "both"] = "rising"
    """Counters: which debounced edges count."""
    scale: float = 1.0
    """Counters: what one pulse is worth (litres, Wh…); the published total is pulses × scale."""
    counter: str | None = None
    """Rates: the counter point they derive from."""
    window: Annotated[float, Duration, Gt(0)] = 10.0
    per: Annotated[float, Duration, Gt(0)] = 1.0
    """Rates: the time unit (1s: per second, 1m: per minute)."""
    drive: Literal["push_pull", "open_drain", "open_source"] = "push_pull"
    safe_state: bool | None = None
    """Outputs: the level applied at start, on shutdown and on loss of control."""
    hold_timeout: Annotated[float, Duration, Gt(0)] | None = None
    """Outputs: without a write for this long, go to the safe state (None: hold for ever)."""

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        yield from super().cross_check()
        if self.kind == "rate":
            if self.counter is None:
                yield ("counter",), "a rate needs the counter point it derives from"
        elif self.line is None:
            yield (
                ("line",),
                f"a {self.kind} needs its line (offset on the chip)"
                if self.kind == "counter"
                else f"an {self.kind} needs its line (offset on the chip)",
            )
        if self.kind == "output":
            if self.safe_state is None:
                yield ("safe_state",), "an output needs a safe_state (true or false)"
            if not self.writable:
                yield ("writable",), "an output is written: say writable: true"
        elif self.writable:
            yield ("writable",), f"only outputs can be written, this is an {self.kind}"

    def check_write(self, value: Any) -> str | None:
        refusal = super().check_write(value)
        if refusal is None and not (isinstance(value, bool) or value in (0, 1)):
            return f"output {self.name!r} takes true or false (or 1 or 0), got {value!r}"
        return refusal


@dataclass(frozen=True, kw_only=True)
class GpioGroup(GroupConfig):
    mode: Literal["events", "poll"] = "events"
    """``events``: inputs and counters are pushed as their (debounced) edges come, rates every
    ``interval``; ``poll``: the group is read every ``interval`` (inputs without debounce)."""
    points: tuple[GpioPoint, ...] = ()


@dataclass(frozen=True, kw_only=True)
class GpioModule(ModuleConfig):
    connection: GpioConnection
    groups: tuple[GpioGroup, ...] = ()

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        yield from super().cross_check()
        lines: dict[int, str] = {}
        kinds = {p.name: p.kind for g in self.groups for p in g.points}
        for g, group in enumerate(self.groups):
            for p, point in enumerate(group.points):
                where = ("groups", g, "points", p)
                if point.line is not None:
                    if point.line in lines:
                        yield (*where, "line"), f"line {point.line} is also {lines[point.line]!r}"
                    lines.setdefault(point.line, point.name)
                if point.counter is not None and kinds.get(point.counter) != "counter":
                    yield (*where, "counter"), f"{point.counter!r} is not a counter point"
