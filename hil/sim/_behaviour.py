"""How a point's value moves: sans-IO generators, stepped by the plant model with a clock value.

Each behaviour answers ``step(ctx)`` with the point's next value, from ``ctx.t`` (seconds since
the start), ``ctx.dt`` (seconds since the last step), ``ctx.value`` (the point's current value)
and the other points' values (``ctx.values``). None reads a clock or sleeps, so tests step them
with literal times.

=============  ==========================================================================
``ramp``       ``start`` → ``end`` over ``period``; ``repeat`` (sawtooth), ``bounce``
               (triangle) or ``once`` (then stays at ``end``)
``sine``       ``mean + amplitude × sin(2π t / period + phase)``
``random_walk`` moves by at most ``step`` per second at random, reflected at ``min``/``max``
``steps``      ``values`` in turn, each held ``every`` seconds; ``repeat`` or stay on the last
``expr``       an expression of other points, recomputed each step (algebraic)
``integrate``  ``value + rate × dt``, kept within ``min``/``max`` (a level from flows)
``follow``     first-order lag towards ``target`` with ``time_constant`` (a speed after its
               setpoint), optionally limited to ``rate_limit`` per second
=============  ==========================================================================

Time-driven behaviours (ramp, sine, steps) depend on ``t`` only: a value set by hand is replaced
at the next step. Stateful ones (random_walk, integrate, follow) carry on from whatever value the
point has, including one set by hand or written by a client.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from hil.sim._expr import Context, Evaluator, parse_expr
from hil.sim._schema import Follow, Integrate, Ramp, RandomWalk, SimPoint, Sine, Steps

__all__ = ["Behaviour", "build_behaviour"]


class Behaviour(Protocol):
    stateful: bool
    """True if the next value depends on the current one (not only on time and other points)."""

    def step(self, ctx: Context) -> Any: ...


@dataclass(frozen=True)
class _Ramp:
    spec: Ramp
    stateful = False

    def step(self, ctx: Context) -> Any:
        spec = self.spec
        cycles = ctx.t / spec.period
        if spec.mode == "once":
            progress = min(cycles, 1.0)
        elif spec.mode == "repeat":
            progress = cycles % 1.0
        else:
            phase = cycles % 2.0
            progress = phase if phase <= 1.0 else 2.0 - phase
        return spec.start + (spec.end - spec.start) * progress


@dataclass(frozen=True)
class _Sine:
    spec: Sine
    stateful = False

    def step(self, ctx: Context) -> Any:
        spec = self.spec
        angle = 2 * math.pi * ctx.t / spec.period + math.radians(spec.phase)
        return spec.mean + spec.amplitude * math.sin(angle)


@dataclass(frozen=True)
class _RandomWalk:
    spec: RandomWalk
    stateful = True

    def step(self, ctx: Context) -> Any:
        spec = self.spec
        current = float(ctx.value)
        moved = current + ctx.rng.uniform(-1.0, 1.0) * spec.step * ctx.dt
        if moved > spec.max:
            moved = 2 * spec.max - moved  # reflect, so the walk does not stick to the bound
        if moved < spec.min:
            moved = 2 * spec.min - moved
        return min(max(moved, spec.min), spec.max)


@dataclass(frozen=True)
class _Steps:
    spec: Steps
    stateful = False

    def step(self, ctx: Context) -> Any:
        values = self.spec.values
        index = int(ctx.t // self.spec.every)
        return (
            values[index % len(values)] if self.spec.repeat else values[min(index, len(values) - 1)]
        )


@dataclass(frozen=True)
class _Expr:
    evaluate: Evaluator
    stateful = False

    def step(self, ctx: Context) -> Any:
        return self.evaluate(ctx)


@dataclass(frozen=True)
class _Integrate:
    spec: Integrate
    rate: Evaluator
    stateful = True

    def step(self, ctx: Context) -> Any:
        value = float(ctx.value) + float(self.rate(ctx)) * ctx.dt
        if self.spec.min is not None:
            value = max(value, self.spec.min)
        if self.spec.max is not None:
            value = min(value, self.spec.max)
        return value


@dataclass(frozen=True)
class _Follow:
    spec: Follow
    target: Evaluator
    stateful = True

    def step(self, ctx: Context) -> Any:
        current = float(ctx.value)
        target = float(self.target(ctx))
        change = (target - current) * (1.0 - math.exp(-ctx.dt / self.spec.time_constant))
        if self.spec.rate_limit is not None:
            limit = self.spec.rate_limit * ctx.dt
            change = min(max(change, -limit), limit)
        return current + change


def build_behaviour(point: SimPoint, resolve: Callable[[str], str]) -> Behaviour | None:
    """The behaviour of ``point``, its expressions compiled with ``resolve`` (None: it holds)."""
    if point.ramp is not None:
        return _Ramp(point.ramp)
    if point.sine is not None:
        return _Sine(point.sine)
    if point.random_walk is not None:
        return _RandomWalk(point.random_walk)
    if point.steps is not None:
        return _Steps(point.steps)
    if point.expr is not None:
        return _Expr(parse_expr(point.expr).compile(resolve))
    if point.integrate is not None:
        return _Integrate(point.integrate, parse_expr(point.integrate.rate).compile(resolve))
    if point.follow is not None:
        return _Follow(point.follow, parse_expr(point.follow.target).compile(resolve))
    return None
