"""The plant model: every point's value, stepped with a clock value, written by clients.

Sans-IO: :meth:`Plant.step` takes ``now`` (seconds, any monotonic origin) and returns the keys
(``device.point``) whose values changed; the runner puts those on the wire. Values are kept in
engineering units at full precision (a level that rises 0.1 mm per step still rises, though its
register holds millimetres); rounding to the wire's raw step is the device binding's job.

One step, in this order, so that every point sees a consistent picture:

1. stateful behaviours (``random_walk``, ``integrate``, ``follow``), from the values of the last
   step — a loop through them is a feedback with one step of delay, as in a sampled controller;
2. time-driven behaviours (``ramp``, ``sine``, ``steps``);
3. ``expr`` points, each after the points it uses (the file was checked to have no cycle).

A client's write (:meth:`write`) stores the value and runs the point's ``on_write`` handlers;
points without a behaviour keep what was written. :meth:`reset` is a device restart: its held
points go back to their initial values (a process value moved by behaviours carries on).
An expression that fails at run time (a division by zero, say) keeps the point's last value
and is recorded in :attr:`Plant.errors` until it succeeds again.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import Any

from hil.sim._behaviour import Behaviour, build_behaviour
from hil.sim._checks import Names
from hil.sim._expr import Context, Evaluator, parse_expr
from hil.sim._schema import SimFile, SimPoint

__all__ = ["Keys", "Plant", "coerce", "initial_value"]

Keys = set[str]
"""Point keys (``device.point``); named, as :meth:`Plant.set` shadows ``set`` in the class."""


def initial_value(point: SimPoint) -> Any:
    if point.value is not None:
        return coerce(point, point.value)
    if point.random_walk is not None:
        walk = point.random_walk
        return walk.start if walk.start is not None else (walk.min + walk.max) / 2
    if point.ramp is not None:
        return point.ramp.start
    kind = point.value_type
    return False if kind == "bool" else "" if kind == "string" else 0


def coerce(point: SimPoint, value: Any) -> Any:
    """``value`` as the kind of value ``point`` holds; ValueError if it cannot be."""
    kind = point.value_type
    if kind == "bool":
        if isinstance(value, str):
            raise ValueError(f"{point.name} holds true/false, not {value!r}")
        return bool(value)
    if kind == "string":
        return str(value)
    if kind is None:
        return value
    if isinstance(value, bool):
        return int(value)
    if not isinstance(value, int | float):
        raise ValueError(f"{point.name} holds a number ({kind}), not {value!r}")
    return value


class Plant:
    def __init__(self, file: SimFile) -> None:
        self.file = file
        self.names = Names(file)
        self.points: dict[str, SimPoint] = {}
        self.device_of: dict[str, str] = {}
        self.unit_of: dict[str, int] = {}
        self.values: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self._behaviours: dict[str, Behaviour] = {}
        self._handlers: dict[str, list[tuple[str, Evaluator]]] = {}
        self._rng = random.Random(file.seed)
        self._ctx = Context(self.values, self._rng)
        self._start: float | None = None
        self._last = 0.0
        for device in file.devices:
            for unit in device.units:
                for point in unit.points:
                    key = f"{device.name}.{point.name}"
                    self.points[key] = point
                    self.device_of[key] = device.name
                    self.unit_of[key] = unit.unit
                    self.values[key] = initial_value(point)
        for key, point in self.points.items():
            owner = self.device_of[key]

            def resolve(name: str, owner: str = owner) -> str:
                return self.names.resolve(owner, name)

            behaviour = build_behaviour(point, resolve)
            if behaviour is not None:
                self._behaviours[key] = behaviour
            self._handlers[key] = [
                (resolve(handler.set), _compile_to(handler.to, resolve))
                for handler in point.on_write
            ]
        self._order = self._evaluation_order()

    @property
    def t(self) -> float:
        """Seconds since the first step."""
        return self._last - (self._start if self._start is not None else self._last)

    def held(self, key: str) -> bool:
        """True if the point keeps what is written (it has no behaviour)."""
        return key not in self._behaviours

    def step(self, now: float) -> Keys:
        """Advance to ``now``; the keys whose value changed."""
        if self._start is None:
            self._start = self._last = now
        ctx = self._ctx
        ctx.dt = max(0.0, now - self._last)
        ctx.t = now - self._start
        self._last = now
        changed: Keys = set()
        for key in self._order:
            ctx.value = self.values[key]
            try:
                new = coerce(self.points[key], self._behaviours[key].step(ctx))
            except (ArithmeticError, ValueError, TypeError) as exc:
                self.errors[key] = f"{type(exc).__name__}: {exc}"
                continue
            self.errors.pop(key, None)
            if _differs(new, self.values[key]):
                self.values[key] = new
                changed.add(key)
        return changed

    def write(self, key: str, value: Any) -> Keys:
        """A client wrote ``value`` to ``key``: store it, run the point's handlers."""
        changed = self.set(key, value)
        ctx = self._ctx
        for target, evaluate in self._handlers.get(key, ()):
            ctx.value = value
            try:
                result = coerce(self.points[target], evaluate(ctx))
            except (ArithmeticError, ValueError, TypeError) as exc:
                self.errors[key] = f"on_write: {type(exc).__name__}: {exc}"
                continue
            changed |= self.set(target, result)
        return changed

    def set(self, key: str, value: Any) -> Keys:
        """Set ``key`` by hand (time-driven behaviours replace it at the next step)."""
        new = coerce(self.points[key], value)
        if not _differs(new, self.values[key]):
            return set()
        self.values[key] = new
        return {key}

    def reset(self, keys: Iterable[str]) -> Keys:
        """Held points among ``keys`` back to their initial values (a restart)."""
        changed: Keys = set()
        for key in keys:
            if self.held(key):
                changed |= self.set(key, initial_value(self.points[key]))
        return changed

    def _evaluation_order(self) -> list[str]:
        stateful = [k for k, b in self._behaviours.items() if b.stateful]
        exprs = {k for k, p in self.points.items() if p.expr is not None}
        timed = [k for k in self._behaviours if k not in exprs and k not in stateful]
        ordered: list[str] = []
        done: set[str] = set()

        def visit(key: str) -> None:
            done.add(key)
            point = self.points[key]
            assert point.expr is not None
            for name in sorted(parse_expr(point.expr).names):
                dep = self.names.resolve(self.device_of[key], name)
                if dep in exprs and dep not in done:
                    visit(dep)
            ordered.append(key)

        for key in sorted(exprs):
            if key not in done:
                visit(key)
        return [*stateful, *timed, *ordered]


def _compile_to(to: Any, resolve: Any) -> Evaluator:
    if isinstance(to, str):
        return parse_expr(to).compile(resolve)
    return lambda ctx: to


def _differs(new: Any, old: Any) -> bool:
    if isinstance(new, float) and isinstance(old, float) and math.isnan(new) and math.isnan(old):
        return False
    return bool(new != old or type(new) is not type(old))
