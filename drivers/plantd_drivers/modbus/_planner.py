"""The read planner: the points of a group → as few Modbus requests as the device allows.

Rules, in the order they apply:

1. Points are planned per (unit id, table): each table has its own function code
   (coil 1, discrete 2, holding 3, input 4), and one request reads one table of one unit.
2. Points are taken by address. A point joins the open request when the request, grown to
   cover it, spans at most ``max_count`` registers (or bits) and the hole before the point is
   at most ``max_gap``; otherwise it starts a new request. Overlapping points share registers.
3. A request never straddles a *cut*. Cuts are what the planner learned from the devices:
   when a device refuses a merged request (exception 2 "illegal data address", or 3 "illegal
   data value": unmapped registers in a hole, or more registers than it serves at once),
   :meth:`Learned.split` cuts it in two — at its widest hole if it has one, else in the
   middle — and the driver reads both parts at once, in the same cycle. The cut, and the two
   ends of the refused request, are remembered for the (unit, table), so later plans make the
   same parts at once and never send the refused request again. A request of a single point
   that is refused cannot be split: that point is bad, the others are unaffected.

Cuts are addresses: a request that starts before a cut ends at or before it. Cutting only at
point boundaries means the worst a wrong guess costs is one extra request per cycle.

Sans-IO: plans are pure functions of the points, the limits and what was learned.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from plantd_drivers.modbus._types import FUNCTION_OF_TABLE, Table

__all__ = ["Item", "Learned", "Limits", "Request", "plan"]


@dataclass(frozen=True, slots=True)
class Item:
    """Something to read: ``size`` registers (or bits) from ``address``; ``key`` is the caller's."""

    key: int
    address: int
    size: int

    @property
    def end(self) -> int:
        return self.address + self.size


@dataclass(frozen=True, slots=True)
class Request:
    unit: int
    table: Table
    address: int
    count: int
    items: tuple[Item, ...]

    @property
    def function(self) -> int:
        return FUNCTION_OF_TABLE[self.table]

    @property
    def end(self) -> int:
        return self.address + self.count

    def holes(self) -> int:
        """Registers (or bits) read that no point needs."""
        covered = 0
        cursor = self.address
        for item in self.items:
            start = max(cursor, item.address)
            if item.end > start:
                covered += item.end - start
                cursor = item.end
        return self.count - covered


@dataclass(frozen=True, slots=True)
class Limits:
    max_count: int
    max_gap: int


@dataclass
class Learned:
    """Cuts learned from refused requests, per (unit, table), for the life of a driver."""

    cuts: dict[tuple[int, Table], list[int]] = field(default_factory=dict)
    version: int = 0
    """Bumped by every new cut, so cached plans know they are stale."""

    def cuts_for(self, unit: int, table: Table) -> Sequence[int]:
        return self.cuts.get((unit, table), ())

    def split(self, request: Request) -> tuple[Request, Request] | None:
        """The device refused ``request``: remember a cut and return the two parts to read now,
        or None if it holds a single point (that point is what the device refuses)."""
        items = sorted(request.items, key=lambda item: (item.address, -item.size))
        if len(items) < 2 or items[0].address == items[-1].address:
            return None
        cut = _widest_hole(items) or _middle(items, request)
        first = [item for item in items if item.address < cut]
        second = [item for item in items if item.address >= cut]
        cuts = self.cuts.setdefault((request.unit, request.table), [])
        for address in (request.address, cut, request.end):
            if address not in cuts:
                bisect.insort(cuts, address)
                self.version += 1
        return _covering(request, first), _covering(request, second)


def plan(
    unit: int,
    table: Table,
    items: Iterable[Item],
    limits: Limits,
    cuts: Sequence[int] = (),
) -> list[Request]:
    """The requests that read ``items`` from ``table`` of ``unit`` (see the rules above)."""
    requests: list[Request] = []
    current: list[Item] = []
    start = end = 0
    for item in sorted(items, key=lambda item: (item.address, -item.size)):
        if current:
            new_end = max(end, item.end)
            fits = new_end - start <= limits.max_count and item.address - end <= limits.max_gap
            if fits and not _crosses_cut(cuts, start, item.address):
                current.append(item)
                end = new_end
                continue
            requests.append(Request(unit, table, start, end - start, tuple(current)))
        current, start, end = [item], item.address, item.end
    if current:
        requests.append(Request(unit, table, start, end - start, tuple(current)))
    return requests


def _crosses_cut(cuts: Sequence[int], start: int, address: int) -> bool:
    """True if a cut lies in ``(start, address]``: the point may not join a request from start."""
    index = bisect.bisect_right(cuts, start)
    return index < len(cuts) and cuts[index] <= address


def _widest_hole(items: Sequence[Item]) -> int | None:
    best, cut, reach = 0, None, items[0].end
    for item in items[1:]:
        if item.address - reach > best:
            best, cut = item.address - reach, item.address
        reach = max(reach, item.end)
    return cut


def _middle(items: Sequence[Item], request: Request) -> int:
    """The point boundary nearest the middle of the request (never its first address)."""
    middle = request.address + request.count / 2
    starts = sorted({item.address for item in items[1:]} - {items[0].address})
    return min(starts, key=lambda address: abs(address - middle))


def _covering(request: Request, items: Sequence[Item]) -> Request:
    start = min(item.address for item in items)
    end = max(item.end for item in items)
    return Request(request.unit, request.table, start, end - start, tuple(items))
