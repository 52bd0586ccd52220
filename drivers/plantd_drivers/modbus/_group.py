"""Reading one group: its plan of requests, their decoders, and what each answer means.

A :class:`GroupReader` is built once per group. It keeps the group's plan and one compiled
decoder per request, and plans again only when the :class:`Learned` cuts change. A read walks
the plan through the :class:`Line`:

- an answer is decoded into a :class:`Reading` for each of the request's points;
- a refusal with exception 2 or 3 of a request of several points is split (``_planner``) and
  both parts are read at once; other refusals, and answers that do not fit the question, make
  that request's points ``bad`` and the others carry on;
- a request refused for a reason that does not go away by itself (exception 1, 2 or 3 once it
  cannot be split: a point the device does not map, a function it does not have) is not asked
  again every cycle: its points stay ``bad`` with the refusal, and it is asked again after
  10 s, then 20 s, 40 s… up to 5 minutes (:class:`Refusals`), so a device whose map changes
  (a firmware update, a module plugged in) is noticed without a restart;
- a unit that does not answer (:class:`UnitDown`) makes the group's remaining points ``bad``;
- if the device refused every request of the group, the read raises
  :class:`~plantd.errors.DeviceFault`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from plantd.errors import DeviceFault
from plantd.module import Reading
from plantd_drivers.modbus._codec import BitDecoder, BlockDecoder, PointCodec
from plantd_drivers.modbus._config import (
    ModbusConnection,
    ModbusGroup,
    ModbusPoint,
    point_order,
    point_table,
    point_type,
)
from plantd_drivers.modbus._line import Line, UnitDown
from plantd_drivers.modbus._planner import Item, Learned, Limits, Request, plan
from plantd_drivers.modbus._transport import BadAnswer, Refused, Transport
from plantd_drivers.modbus._types import BIT_TABLES, TABLES, Table, describe_exception

__all__ = ["GroupReader", "Refusals", "build_codec"]

Decoder = BlockDecoder | BitDecoder

LASTING_REFUSALS: Final = frozenset({1, 2, 3})
"""Exception codes that say the question is wrong, not that the device is busy."""
_WHY_LASTING: Final = {
    1: "the device does not support this function code",
    2: "the device does not map this address",
    3: "the device refuses this count at this address",
}


def build_codec(point: ModbusPoint, group: ModbusGroup, connection: ModbusConnection) -> PointCodec:
    table = point_table(point, group)
    clamp = (point.clamp.min, point.clamp.max) if point.clamp else (None, None)
    return PointCodec(
        point_type(point, table),
        point_order(point, group, connection),
        bit_table=table in BIT_TABLES,
        bit=point.bit,
        length=point.length,
        scale=point.scale,
        offset=point.offset,
        clamp=clamp,
        enum=point.enum,
        bits=point.bits,
    )


@dataclass(frozen=True, slots=True)
class Step:
    request: Request
    decoder: Decoder
    operation: _Read


class GroupReader:
    def __init__(self, group: ModbusGroup, connection: ModbusConnection, learned: Learned) -> None:
        self.group = group
        self.unit = group.unit
        self.learned = learned
        self.names = tuple(point.name for point in group.points)
        self.codecs = tuple(build_codec(point, group, connection) for point in group.points)
        self.items: dict[Table, list[Item]] = {}
        for key, point in enumerate(group.points):
            table = point_table(point, group)
            self.items.setdefault(table, []).append(
                Item(key, point.address, self.codecs[key].registers)
            )
        register_limits = Limits(
            group.max_registers or connection.max_registers,
            connection.max_gap if group.max_gap is None else group.max_gap,
        )
        bit_limits = Limits(connection.max_bits, connection.max_bit_gap)
        self.limits = {t: bit_limits if t in BIT_TABLES else register_limits for t in TABLES}
        self._steps: list[Step] = []
        self._version = -1
        self.refusals = Refusals()

    def plan(self) -> list[Request]:
        return [step.request for step in self.steps()]

    def steps(self) -> list[Step]:
        if self._version != self.learned.version:
            self._version = self.learned.version
            self._steps = [
                self.step(request)
                for table in TABLES
                if table in self.items
                for request in plan(
                    self.unit,
                    table,
                    self.items[table],
                    self.limits[table],
                    self.learned.cuts_for(self.unit, table),
                )
            ]
        return self._steps

    def step(self, request: Request) -> Step:
        offset = request.address
        decoder: Decoder
        if request.table in BIT_TABLES:
            decoder = BitDecoder(
                request.count, [(self.names[i.key], i.address - offset) for i in request.items]
            )
        else:
            points = [
                (self.names[i.key], i.address - offset, self.codecs[i.key]) for i in request.items
            ]
            decoder = BlockDecoder(request.count, points)
        operation = _Read(request.unit, request.function, request.address, request.count)
        return Step(request, decoder, operation)

    async def read(self, line: Line) -> dict[str, Reading]:
        readings: dict[str, Reading] = {}
        pending = deque(self.steps())
        refusals: list[str] = []
        answered = False
        while pending:
            step = pending.popleft()
            request = step.request
            held = self.refusals.holding(request, line.clock())
            if held is not None:  # refused for good last time: not asked before its retry
                refusals.append(held)
                self._bad(request, held, readings)
                continue
            try:
                values = await line.request(self.unit, step.operation)
            except Refused as exc:
                if exc.code in (2, 3) and (parts := self.learned.split(request)) is not None:
                    pending.extendleft(self.step(part) for part in reversed(parts))
                    continue
                refusal = describe_exception(exc.code)
                problem = f"unit {self.unit} refused {_describe(request)}: {refusal}"
                if exc.code in LASTING_REFUSALS:
                    problem = self.refusals.refused(request, exc.code, problem, line.clock())
                refusals.append(problem)
                self._bad(request, problem, readings)
                continue
            except BadAnswer as exc:
                answered = True
                self._bad(request, f"unit {self.unit}, {_describe(request)}: {exc}", readings)
                continue
            except UnitDown as exc:
                for rest in (step, *pending):
                    self._bad(rest.request, str(exc), readings)
                return readings
            answered = True
            self.refusals.answered(request)
            step.decoder.decode(values, readings)
        if refusals and not answered:
            raise DeviceFault(refusals[0] if len(refusals) == 1 else "; ".join(refusals))
        return readings

    def _bad(self, request: Request, problem: str, readings: dict[str, Reading]) -> None:
        bad = Reading.bad(problem)
        for item in request.items:
            readings[self.names[item.key]] = bad


class Refusals:
    """Requests refused for a lasting reason, and when each is asked again.

    ``refused`` starts (or doubles) a request's wait: 10 s, 20 s, 40 s… up to 5 minutes;
    ``holding`` says whether a request is still waiting (and with what problem); ``answered``
    forgets it. Sans-IO: the caller passes ``now`` (the line's clock).
    """

    FIRST: Final = 10.0
    LONGEST: Final = 300.0

    def __init__(self) -> None:
        self._held: dict[tuple[int, int, int], tuple[float, float, int, str]] = {}

    def refused(self, request: Request, code: int, problem: str, now: float) -> str:
        """Hold ``request`` back; returns the problem its points carry until it is asked."""
        key = (request.function, request.address, request.count)
        last = self._held.get(key)
        wait = self.FIRST if last is None else min(2 * last[1], self.LONGEST)
        problem = f"{problem}: {_WHY_LASTING[code]}; asked again in {wait:g} s"
        self._held[key] = (now + wait, wait, code, problem)
        return problem

    def holding(self, request: Request, now: float) -> str | None:
        held = self._held.get((request.function, request.address, request.count))
        if held is None or now >= held[0]:
            return None
        return held[3]

    def answered(self, request: Request) -> None:
        if self._held:
            self._held.pop((request.function, request.address, request.count), None)

    def status(self, unit: int, now: float) -> list[dict[str, Any]]:
        return [
            {
                "unit": unit,
                "function": function,
                "address": address,
                "count": count,
                "exception": code,
                "next_try_in": max(0.0, until - now),
            }
            for (function, address, count), (until, _, code, _) in sorted(self._held.items())
        ]


@dataclass(frozen=True, slots=True)
class _Read:
    """One read request as the line's operation (a dataclass: no closure per request)."""

    unit: int
    function: int
    address: int
    count: int

    async def __call__(self, transport: Transport) -> Sequence[Any]:
        return await transport.read(self.unit, self.function, self.address, self.count)


def _describe(request: Request) -> str:
    return f"FC {request.function} from {request.address}, {request.count} {_unit(request.table)}"


def _unit(table: Table) -> str:
    return "bits" if table in BIT_TABLES else "registers"
