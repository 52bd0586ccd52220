"""Expectations against a scripted probe and a fake clock: within, hold, fresh, allow_bad."""

from __future__ import annotations

from typing import Any

from hil.scenario._expect import Observation, check_expect, unmet
from hil.scenario._schema import Expect


class Script:
    """A probe that delivers observations at given times; waiting advances the clock."""

    what = "data.m.p"

    def __init__(self, *events: tuple[float, Any, str]) -> None:
        self.now = 0.0
        self.events = [Observation(t, value, quality) for t, value, quality in events]
        self.given = 0

    def clock(self) -> float:
        return self.now

    def take(self) -> list[Observation]:
        due = [e for e in self.events[self.given :] if e.t <= self.now]
        self.given += len(due)
        return due

    async def wait(self, timeout: float) -> None:
        upcoming = [e.t for e in self.events[self.given :] if e.t > self.now]
        self.now = min([self.now + timeout, *upcoming])


def expect(**fields: Any) -> Expect:
    return Expect(point="m.p", **fields)


async def test_met_within_the_bound() -> None:
    probe = Script((0, 1.0, "good"), (2.0, 5.0, "good"))
    outcome = await check_expect(expect(min=4, within=3.0), probe, probe.clock)
    assert outcome.ok
    assert outcome.message == "met after 2.00 s: 5"


async def test_not_met_says_what_was_seen() -> None:
    probe = Script((0, 1.0, "good"), (0.5, 2.0, "good"))
    outcome = await check_expect(expect(min=4, within=1.0), probe, probe.clock)
    assert not outcome.ok
    assert outcome.message == (
        "data.m.p: not met within 1 s; value 2 below 4 "
        "(last seen 2 (good) at t=0.50 s; 2 observation(s))"
    )


async def test_hold_checks_every_sample_even_in_the_same_batch() -> None:
    probe = Script((0, 5.0, "good"), (0, 1.0, "good"))  # met, then broken at once
    outcome = await check_expect(expect(min=4, within=1.0, hold=2.0), probe, probe.clock)
    assert not outcome.ok
    assert "then broken at t=0.00 s: value 1 below 4" in outcome.message
    probe = Script((0, 5.0, "good"), (1.0, 6.0, "good"), (2.5, None, "bad"))
    outcome = await check_expect(expect(min=4, within=1.0, hold=2.0), probe, probe.clock)
    assert outcome.ok  # the bad sample came after the hold ended
    assert outcome.message == "met after 0.00 s and held 2 s (1 checked)"


async def test_fresh_needs_a_new_sample() -> None:
    probe = Script((-1.0, 5.0, "good"))
    outcome = await check_expect(expect(quality="good", fresh=True, within=1.0), probe, probe.clock)
    assert not outcome.ok
    assert "nothing new was published" in outcome.message


def test_conditions() -> None:
    bad = Observation(0, None, "bad")
    assert unmet(expect(min=0, max=5), bad) == "no value"
    assert unmet(expect(min=0, max=5, allow_bad=True), bad) is None
    assert unmet(expect(value=True), Observation(0, 1, "good")) == "value 1"  # 1 is not true
    assert unmet(expect(value=2.0, tolerance=0.1), Observation(0, 2.05, "good")) is None
    assert unmet(expect(value="on"), Observation(0, "on", "good")) is None
    assert unmet(expect(quality="good"), Observation(0, 3, "uncertain")) == "quality uncertain"
    assert unmet(expect(min=1), Observation(0, "text", "good")) == "value 'text' is not a number"
