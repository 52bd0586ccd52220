"""Window conditions of expectations — rising, falling, stable, rate — against a scripted probe
and a fake clock, then through a real scenario run against a simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hil.scenario import load_scenario, run_scenario
from hil.scenario._expect import Observation, check_expect, judge_window
from hil.scenario._schema import Expect, Rate
from plantd.errors import ConfigError

from .test_expect import Script


def expect(**fields: Any) -> Expect:
    return Expect(point="m.p", **fields)


async def test_rising_is_judged_once_the_window_has_passed() -> None:
    probe = Script((-3.0, 1.0, "good"), (2.0, 1.5, "good"), (4.0, 2.0, "good"))
    outcome = await check_expect(expect(rising=True, over=5.0), probe, probe.clock)
    assert outcome.ok, outcome.message
    assert outcome.message == "met after 5.00 s: rose 1 → 2 over 5 s"
    assert probe.now == 5.0  # not before the window had passed


async def test_a_flat_point_is_not_rising_and_says_what_was_seen() -> None:
    probe = Script((0.0, 0.0, "good"), (1.0, 0.0, "good"))
    outcome = await check_expect(expect(rising=True, over=5.0), probe, probe.clock)
    assert not outcome.ok
    assert outcome.message == (
        "data.m.p: not met within 5 s; stayed at 0 over 5 s; expected rising "
        "(the window t=0.00…5.00 s)"
    )
    probe = Script((0.0, 3.0, "good"), (2.0, 2.0, "good"))
    outcome = await check_expect(expect(rising=True, over=2.0, within=2.0), probe, probe.clock)
    assert "fell 3 → 2 over 2 s; expected rising" in outcome.message


async def test_within_slides_the_window_until_the_trend_shows() -> None:
    # flat until t=6, then falling: a 2 s window sees it by t=7
    events = [(float(t), 10.0, "good") for t in range(7)]
    events += [(7.0, 9.0, "good"), (8.0, 8.0, "good")]
    probe = Script(*events)
    outcome = await check_expect(expect(falling=True, over=2.0, within=10.0), probe, probe.clock)
    assert outcome.ok, outcome.message
    assert outcome.message == "met after 7.00 s: fell 10 → 9 over 2 s"


async def test_stable_within_a_tolerance() -> None:
    probe = Script((0.0, 5.0, "good"), (1.0, 5.2, "good"), (2.0, 4.9, "good"))
    outcome = await check_expect(expect(stable=0.5, over=3.0), probe, probe.clock)
    assert outcome.ok, outcome.message
    assert outcome.message == "met after 3.00 s: varied 4.9 … 5.2 (by 0.3) over 3 s"
    probe = Script((0.0, 5.0, "good"), (1.0, 6.0, "good"))
    outcome = await check_expect(expect(stable=0.5, over=3.0, within=3.0), probe, probe.clock)
    assert not outcome.ok
    assert "varied 5 … 6 (by 1) over 3 s; expected stable within 0.5" in outcome.message
    probe = Script((0.0, 5.0, "good"), (1.0, 6.0, "good"))  # given time, it settles at 6
    outcome = await check_expect(expect(stable=0.5, over=3.0, within=5.0), probe, probe.clock)
    assert outcome.message == "met after 4.00 s: varied 6 … 6 (by 0) over 3 s"


async def test_rate_of_change_per_unit_of_time() -> None:
    ramp = [(float(t), 2.0 * t, "good") for t in range(11)]  # 2 per second
    probe = Script(*ramp)
    fits = expect(rate=Rate(min=1.5, max=2.5), over=5.0)
    outcome = await check_expect(fits, probe, probe.clock)
    assert outcome.message == "met after 5.00 s: changed 2/s (rose 0 → 10) over 5 s"
    probe = Script(*ramp)
    per_minute = expect(rate=Rate(min=200, per=60.0), over=5.0, within=5.0)
    outcome = await check_expect(per_minute, probe, probe.clock)
    assert not outcome.ok
    assert "changed 120/min (rose 0 → 10) over 5 s; expected at least 200/min" in outcome.message


async def test_hold_judges_every_window_until_it_ends() -> None:
    events = [(float(t), float(t), "good") for t in range(6)] + [(6.0, 0.0, "good")]
    probe = Script(*events)
    outcome = await check_expect(expect(rising=True, over=2.0, hold=5.0), probe, probe.clock)
    assert not outcome.ok
    assert outcome.message == (
        "data.m.p: met after 2.00 s, then broken at t=6.00 s: fell 4 → 0 over 2 s; expected rising"
    )
    probe = Script(*[(float(t), float(t), "good") for t in range(12)])
    outcome = await check_expect(expect(rising=True, over=2.0, hold=5.0), probe, probe.clock)
    assert outcome.ok, outcome.message


def test_per_sample_conditions_apply_to_each_sample_of_the_window() -> None:
    history = [Observation(0.0, 1.0, "good"), Observation(1.0, None, "bad")]
    history.append(Observation(2.0, 3.0, "good"))
    assert judge_window(expect(rising=True, over=2.0), history, 0.0, 2.0)[0] == (
        "no value at t=1.00 s"
    )
    allowed = expect(rising=True, over=2.0, allow_bad=True)
    assert judge_window(allowed, history, 0.0, 2.0) == (None, "rose 1 → 3 over 2 s")
    good = expect(rising=True, over=2.0, quality="good", allow_bad=True)
    assert judge_window(good, history, 0.0, 2.0)[0] == "quality bad at t=1.00 s"
    text = [Observation(0.0, "on", "good")]
    assert judge_window(expect(stable=1.0, over=1.0), text, 0.0, 1.0)[0] == (
        "value 'on' is not a number"
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        ("rising: true", "steps[0].expect.rising: rising is judged over a window: give over"),
        ("over: 2s, min: 1", "steps[0].expect.over: over is the window of rising, falling"),
        (
            "rising: true, falling: true, over: 1s",
            "steps[0].expect.falling: rising and falling cannot both hold",
        ),
        ("stable: 1, over: 1s, fresh: true", "steps[0].expect.fresh: fresh does not apply"),
        ("rate: {per: 1s}, over: 1s", "steps[0].expect.rate: a rate needs min, max or both"),
        ("rate: {min: 2, max: 1}, over: 1s", "steps[0].expect.rate.max: max 1 is below min 2"),
        ("stable: -1, over: 1s", "steps[0].expect.stable: expected a number >= 0, got -1"),
    ],
)
def test_window_conditions_that_make_no_sense_are_load_errors(
    tmp_path: Path, condition: str, problem: str
) -> None:
    path = write(
        tmp_path / "s.yaml",
        f"steps:\n  - expect: {{device: d.level, {condition}}}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_scenario(path)
    assert any(f"s.yaml:2: {problem}" in line for line in caught.value.problems), caught.value


SIM = """\
tick: 50ms
devices:
  - name: d
    units:
      - points:
          - {name: level, table: input, address: 0, type: float32,
             ramp: {start: 0, end: 1000, period: 1000s}}
          - {name: held, table: input, address: 2, value: 7}
"""


@pytest.mark.timeout(60)
async def test_window_conditions_in_a_scenario_run_on_simulated_values(tmp_path: Path) -> None:
    write(tmp_path / "sim.yaml", SIM)
    scenario = write(
        tmp_path / "trends.yaml",
        """\
simulators: [sim.yaml]
keep_going: true
steps:
  - expect: {device: d.level, rising: true, rate: {min: 0.5, max: 2}, over: 1s}
  - expect: {device: d.held, stable: 0, over: 1s}
  - expect: {device: d.held, rising: true, over: 0.5s}
""",
    )
    result = await run_scenario(load_scenario(scenario), work_dir=tmp_path / "work")
    assert [step.status for step in result.steps] == ["passed", "passed", "failed"], [
        step.message for step in result.steps
    ]
    assert result.steps[0].description == (
        "expect device d.level rising and changing 0.5…2/s over 1 s within 5 s"
    )
    assert "stayed at 7 over 0.5 s; expected rising" in result.steps[2].message
    longer = Expect(device="d.level", stable=1.0, over=10.0)  # judged at 10 s, not by 5 s
    assert longer.describe() == "device d.level stable within 1 over 10 s within 10 s"
