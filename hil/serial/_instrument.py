"""A simulated ASCII instrument, from YAML (sans-IO: lines in, lines out, time passed in).

    terminator: "\\r\\n"
    values:                               # what answers and streams show
      net: {value: 12.5, behaviour: random_walk, step: 0.01}
      co2: {value: 410, behaviour: sine, amplitude: 20, period: 60s}
    replies:                              # request/response (first match answers)
      - {match: '^SI$', answer: 'S S {net:9.2f} kg'}
      - {match: '^\\*IDN\\?$', answer: 'PLANTD,SIM,0,1.0'}
    streams:                              # free-running lines
      - {every: 1s, line: 'GPGGA,{clock},4807.038,N,01131.000,E,1,{sats},0.9', nmea: true}

Templates are Python format strings over the values (plus ``clock``: the time since the
simulator started, as NMEA's hhmmss.ss); ``nmea: true`` wraps a line as ``$LINE*HH`` with
its checksum.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from plantd.config import Duration, Gt, parse_dataclass, read_yaml
from plantd.errors import ConfigError

__all__ = ["Instrument", "InstrumentModel", "Reply", "Stream", "Value", "load_instrument", "nmea"]


@dataclass(frozen=True, kw_only=True)
class Value:
    value: float | int | str = 0
    behaviour: Literal["constant", "ramp", "sine", "counter", "random_walk"] = "constant"
    period: Annotated[float, Duration, Gt(0)] = 10.0
    amplitude: float = 1.0
    step: float = 1.0


@dataclass(frozen=True, kw_only=True)
class Reply:
    match: str
    answer: str
    nmea: bool = False


@dataclass(frozen=True, kw_only=True)
class Stream:
    every: Annotated[float, Duration, Gt(0)] = 1.0
    line: str
    nmea: bool = False


@dataclass(frozen=True, kw_only=True)
class InstrumentModel:
    terminator: str = "\r\n"
    encoding: str = "ascii"
    values: dict[str, Value] = field(default_factory=dict)
    replies: tuple[Reply, ...] = ()
    streams: tuple[Stream, ...] = ()


def load_instrument(path: Path) -> InstrumentModel:
    document = read_yaml(path)
    if document.problems:
        raise ConfigError(list(document.problems))
    return parse_dataclass(InstrumentModel, document.data, source=str(path), lines=document.lines)


def nmea(body: str) -> str:
    checksum = 0
    for byte in body.encode("ascii"):
        checksum ^= byte
    return f"${body}*{checksum:02X}"


class Instrument:
    """The model's state: current values, which stream lines are due, answers to requests."""

    def __init__(self, model: InstrumentModel, seed: int = 1) -> None:
        self.model = model
        self.values: dict[str, Any] = {name: v.value for name, v in model.values.items()}
        self.overrides: dict[str, Any] = {}
        self._replies = [(re.compile(r.match), r) for r in model.replies]
        self._next_due = [0.0 for _ in model.streams]
        self._rng = random.Random(seed)
        self._last_t = 0.0

    def advance(self, t: float) -> None:
        """Move moving values on to ``t`` seconds after start."""
        for name, spec in self.model.values.items():
            if name not in self.overrides:
                self.values[name] = _value_at(spec, t, self.values[name], self._rng)
        self._last_t = t

    def answer(self, line: str) -> str | None:
        for pattern, reply in self._replies:
            if pattern.search(line):
                return self.render(reply.answer, reply.nmea)
        return None

    def due(self, t: float) -> list[str]:
        """Stream lines due at ``t`` (each stream at most once per call)."""
        lines = []
        for index, stream in enumerate(self.model.streams):
            if t >= self._next_due[index]:
                self._next_due[index] = max(self._next_due[index] + stream.every, t)
                lines.append(self.render(stream.line, stream.nmea))
        return lines

    def next_due(self) -> float | None:
        return min(self._next_due) if self._next_due else None

    def render(self, template: str, wrap: bool = False) -> str:
        seconds = self._last_t % 86_400
        clock = f"{int(seconds // 3600):02d}{int(seconds % 3600 // 60):02d}{seconds % 60:05.2f}"
        text = template.format(clock=clock, **{**self.values, **self.overrides})
        return nmea(text) if wrap else text


def _value_at(spec: Value, t: float, previous: Any, rng: random.Random) -> Any:
    if spec.behaviour == "constant" or isinstance(spec.value, str):
        return previous
    base = float(spec.value)
    if spec.behaviour == "ramp":
        return base + spec.amplitude * ((t % spec.period) / spec.period)
    if spec.behaviour == "sine":
        return base + spec.amplitude * math.sin(2 * math.pi * t / spec.period)
    if spec.behaviour == "counter":
        return previous + spec.step
    return previous + rng.uniform(-spec.step, spec.step)
