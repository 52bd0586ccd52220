"""The functions an expression may call: their signatures, the pure ones, and the stateful ones.

Pure functions (``abs``, ``sqrt``, ``clamp`` …) map numbers to a number; one that cannot answer
(``sqrt(-1)``, ``ln(0)``) raises ``ValueError``, and the formula turns that into a BAD result.

Stateful functions (``avg_over``, ``min_over``, ``max_over``, ``integral``, ``rate``, ``delta``)
keep a series of their argument's values. Each call site in an expression gets its own state
(made by :func:`make_state` when the expression is bound), and is fed with :meth:`State.push`
every time one of its argument's inputs gets a new sample. Rules every state follows:

- A pushed value is a finite float, or NaN for "not a number" (the argument was BAD).
- A sample not newer than the last one taken (a duplicate or out of order) is ignored.
- :meth:`State.result` returns ``(value, quality)``; NaN means "no answer" (not enough samples,
  or a BAD value where it matters), which the formula reports as BAD.

Windows (``avg_over``/``min_over``/``max_over``) cover ``[end - width, end]`` where ``end`` is
``now`` (or the newest sample, if that is later). Values are held until the next sample (bus
points are reported by exception: a quiet point has not changed), so the sample just before the
window counts from the window's start, and ``avg_over`` is the time-weighted average. A window
keeps at most :data:`MAX_WINDOW_SAMPLES` samples; beyond that the oldest are dropped, the window
then covers less than its width, and its result is UNCERTAIN until the dropped samples would have
left the window anyway. A NaN value (the argument was BAD) is a gap: it counts for nothing, and
makes the result UNCERTAIN while it is in the window (a NaN before the first number is not
kept). Otherwise the quality is the worst of the samples in the window; a window with no number
in it is BAD.

``integral(x, unit)`` is a totaliser since the formula was bound: ``∫ x dt / unit`` by the
trapezoid rule between samples, and the last value held from its sample up to ``now`` (so the
total keeps growing while the input is quiet; when the next sample arrives, that last interval is
counted again as a trapezoid). Intervals with a BAD end count nothing. The quality is the last
sample's.

``rate(x)`` is ``(v2 - v1) / (t2 - t1)`` over the last two samples; a counter that went down was
reset (or wrapped), so that interval counts ``v2`` (counted up from zero), never a negative rate.
``delta(x)`` is ``v2 - v1``.
"""

from __future__ import annotations

import math
import operator
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from plantd.bus import Quality
from plantd.control._units import convert
from plantd.errors import PlantdError

__all__ = [
    "COMPARISONS",
    "FUNCTIONS",
    "MAX_WINDOW_SAMPLES",
    "OPERATORS",
    "PURE",
    "NotANumber",
    "Signature",
    "State",
    "finite",
    "make_state",
]

MAX_WINDOW_SAMPLES = 10_000

NAN = math.nan

OPERATORS: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": operator.mod,
    "**": math.pow,  # never a complex number: (-8) ** 0.5 raises ValueError
}
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


class NotANumber(PlantdError):
    """A value that is not a finite number: evaluation stops and the result is BAD (raised and
    caught inside a formula's evaluation only)."""


def finite(function: Callable[..., float], *args: Any) -> float:
    """``function(*args)``, or NotANumber if it fails (``x / 0``, ``sqrt(-1)``, an overflow) or
    is not finite."""
    try:
        result = float(function(*args))
    except (ArithmeticError, ValueError):
        raise NotANumber from None
    if not math.isfinite(result):
        raise NotANumber
    return result


@dataclass(frozen=True, slots=True)
class Signature:
    """What a function takes. ``kinds`` names each argument's kind ("number", "duration",
    "unit"); with ``variadic`` the last kind repeats. ``required`` arguments must be given."""

    name: str
    kinds: tuple[str, ...]
    required: int
    variadic: bool = False
    stateful: bool = False
    time_driven: bool = False  # its value depends on `now`, not only on samples

    def kind(self, index: int) -> str:
        return self.kinds[min(index, len(self.kinds) - 1)]

    def arity_problem(self, count: int) -> str | None:
        """None if ``count`` arguments fit, else e.g. ``"clamp() takes 3 arguments, got 2"``."""
        most = None if self.variadic else len(self.kinds)
        if self.required <= count and (most is None or count <= most):
            return None
        if most is None:
            wanted = f"at least {self.required}"
        elif most == self.required:
            wanted = str(most)
        else:
            wanted = f"{self.required} to {most}"
        plural = "" if wanted == "1" else "s"
        return f"{self.name}() takes {wanted} argument{plural}, got {count}"


def _round(value: float, digits: float = 0.0) -> float:
    if not float(digits).is_integer():
        raise ValueError("round() digits must be a whole number")
    return float(round(value, int(digits)))


def _clamp(value: float, low: float, high: float) -> float:
    if low > high:
        raise ValueError("clamp() low is above high")
    return min(max(value, low), high)


def _convert(value: float, from_unit: str, to_unit: str) -> float:
    return convert(value, from_unit, to_unit)


_N = "number"
PURE: dict[str, Callable[..., float]] = {
    "abs": abs,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "ln": math.log,
    "log10": math.log10,
    "round": _round,
    "floor": lambda x: float(math.floor(x)),
    "ceil": lambda x: float(math.ceil(x)),
    "clamp": _clamp,
    "convert": _convert,
}
"""The pure functions by name; each takes floats (``convert`` also two unit names)."""

FUNCTIONS: dict[str, Signature] = {
    sig.name: sig
    for sig in (
        Signature("abs", (_N,), 1),
        Signature("min", (_N,), 2, variadic=True),
        Signature("max", (_N,), 2, variadic=True),
        Signature("sqrt", (_N,), 1),
        Signature("exp", (_N,), 1),
        Signature("ln", (_N,), 1),
        Signature("log10", (_N,), 1),
        Signature("round", (_N, _N), 1),
        Signature("floor", (_N,), 1),
        Signature("ceil", (_N,), 1),
        Signature("clamp", (_N, _N, _N), 3),
        Signature("convert", (_N, "unit", "unit"), 3),
        Signature("avg_over", (_N, "duration"), 2, stateful=True, time_driven=True),
        Signature("min_over", (_N, "duration"), 2, stateful=True, time_driven=True),
        Signature("max_over", (_N, "duration"), 2, stateful=True, time_driven=True),
        Signature("integral", (_N, "duration"), 1, stateful=True, time_driven=True),
        Signature("rate", (_N,), 1, stateful=True),
        Signature("delta", (_N,), 1, stateful=True),
    )
}
"""Every function an expression may call (besides ``point("name")``), by name."""


class State(Protocol):
    """The series one stateful call site keeps."""

    def push(self, timestamp: float, value: float, quality: Quality) -> None: ...

    def result(self, now: float) -> tuple[float, Quality]: ...


class _Window:
    """avg_over / min_over / max_over (see the module docstring)."""

    def __init__(self, kind: str, width: float, cap: int = MAX_WINDOW_SAMPLES) -> None:
        self.kind = kind
        self.width = width
        self.cap = cap
        self.samples: deque[tuple[float, float, Quality]] = deque()
        self.lost_until = -math.inf  # newest timestamp dropped because of the cap

    def push(self, timestamp: float, value: float, quality: Quality) -> None:
        if not self.samples and math.isnan(value):
            return  # nothing to mark as a gap yet (e.g. rate() before its second sample)
        if self.samples and timestamp <= self.samples[-1][0]:
            return
        self.samples.append((timestamp, value, quality))
        self._prune(timestamp - self.width)
        if len(self.samples) > self.cap:
            self.lost_until = self.samples.popleft()[0]

    def _prune(self, start: float) -> None:
        # keep one sample at or before the start: its value is held into the window
        samples = self.samples
        while len(samples) > 1 and samples[1][0] <= start:
            samples.popleft()

    def result(self, now: float) -> tuple[float, Quality]:
        if not self.samples:
            return NAN, Quality.BAD
        end = max(now, self.samples[-1][0])
        start = end - self.width
        self._prune(start)
        usable = [(t, v, q) for t, v, q in self.samples if not math.isnan(v)]
        if not usable:
            return NAN, Quality.BAD
        quality = max(q for _, _, q in usable)
        if len(usable) < len(self.samples) or self.lost_until > start:
            quality = max(quality, Quality.UNCERTAIN)  # a gap in the window
        if self.kind == "min_over":
            return min(v for _, v, _ in usable), quality
        if self.kind == "max_over":
            return max(v for _, v, _ in usable), quality
        return self._average(start, end), quality

    def _average(self, start: float, end: float) -> float:
        """Time-weighted: each value counts from its sample (or the start) to the next sample
        (or the end); the intervals of NaN samples count nothing."""
        area = covered = 0.0
        samples = list(self.samples)
        for index, (timestamp, value, _) in enumerate(samples):
            begin = max(timestamp, start)
            until = samples[index + 1][0] if index + 1 < len(samples) else end
            if until > begin and not math.isnan(value):
                area += value * (until - begin)
                covered += until - begin
        if covered > 0:
            return area / covered
        return next(v for _, v, _ in reversed(samples) if not math.isnan(v))


class _Integral:
    def __init__(self, unit: float) -> None:
        self.unit = unit
        self.total = 0.0
        self.last: tuple[float, float, Quality] | None = None

    def push(self, timestamp: float, value: float, quality: Quality) -> None:
        last = self.last
        if last is not None:
            if timestamp <= last[0]:
                return
            if math.isfinite(value) and math.isfinite(last[1]):
                self.total += (value + last[1]) / 2 * (timestamp - last[0])
        self.last = (timestamp, value, quality)

    def result(self, now: float) -> tuple[float, Quality]:
        if self.last is None:
            return NAN, Quality.BAD
        timestamp, value, quality = self.last
        held = value * (now - timestamp) if now > timestamp and math.isfinite(value) else 0.0
        return (self.total + held) / self.unit, quality


class _Difference:
    """rate (per second, counter resets) and delta: the last two samples."""

    def __init__(self, per_second: bool) -> None:
        self.per_second = per_second
        self.previous: tuple[float, float, Quality] | None = None
        self.last: tuple[float, float, Quality] | None = None

    def push(self, timestamp: float, value: float, quality: Quality) -> None:
        if self.last is not None and timestamp <= self.last[0]:
            return
        self.previous, self.last = self.last, (timestamp, value, quality)

    def result(self, now: float) -> tuple[float, Quality]:
        if self.previous is None or self.last is None:
            return NAN, Quality.BAD
        (t1, v1, q1), (t2, v2, q2) = self.previous, self.last
        quality = max(q1, q2)
        if not self.per_second:
            return v2 - v1, quality
        change = v2 - v1
        if change < 0:  # the counter was reset or wrapped: it counted v2 since
            change = max(v2, 0.0)
        return change / (t2 - t1), quality


def make_state(name: str, durations: tuple[float, ...]) -> State:
    """A fresh state for a call of stateful function ``name`` with its duration arguments."""
    if name in ("avg_over", "min_over", "max_over"):
        return _Window(name, durations[0])
    if name == "integral":
        return _Integral(durations[0] if durations else 1.0)
    if name in ("rate", "delta"):
        return _Difference(per_second=name == "rate")
    raise ValueError(f"{name!r} is not a stateful function")
