"""The sans-IO parts of the simulator: expressions, behaviours and the plant model, stepped with
literal times (no clock, no sockets)."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from hil.sim import ExprError, Plant, SimFile, parse_expr
from hil.sim._behaviour import build_behaviour
from hil.sim._expr import Context
from plantd.config import parse_dataclass, parse_yaml


def sim_file(text: str) -> SimFile:
    document = parse_yaml(text, source="sim.yaml")
    return parse_dataclass(SimFile, document.data, source="sim.yaml", lines=document.lines)


def evaluate(text: str, values: dict[str, Any] | None = None, **ctx: Any) -> Any:
    context = Context(values or {}, random.Random(1))
    for key, value in ctx.items():
        setattr(context, key, value)
    return parse_expr(text).compile(lambda name: name)(context)


# -- expressions --------------------------------------------------------------------------------


def test_expressions_compute_from_points_and_variables() -> None:
    values = {"a": 2.0, "plc.b": 3.0, "run": True}
    assert evaluate("a * 2 + plc.b", values) == 7.0
    assert evaluate("a if run and not false else 0", values) == 2.0
    assert evaluate("clamp(a * 10, 0, 5) + min(1, 2) + abs(-1)", values) == 7
    assert evaluate("1 < a <= 2", values) is True
    assert evaluate("value + dt * 2 + t", value=1.0, dt=0.5, t=10.0) == 12.0
    assert evaluate("round(sin(pi / 2))") == 1
    assert parse_expr("a * plc.b + max(c, 1)").names == {"a", "plc.b", "c"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os')", "unknown function '__import__'"),
        ("a.b.c", "write a point as name or device.name"),
        ("a[0]", "subscript is not allowed"),
        ("lambda: 1", "lambda is not allowed"),
        ("'text'", "only numbers and true/false"),
        ("a +", "not an expression"),
        ("a & b", "is not allowed"),
        ("max(a, key=b)", "positional arguments only"),
    ],
)
def test_expressions_outside_the_language_are_refused(text: str, message: str) -> None:
    with pytest.raises(ExprError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_expr(text)


def test_noise_comes_from_the_seeded_generator() -> None:
    first = [evaluate("noise(1)") for _ in range(3)]
    assert first == [evaluate("noise(1)") for _ in range(3)]
    assert len(set(first)) == 1  # a fresh generator with the same seed each time


# -- behaviours -----------------------------------------------------------------------------------


def point(yaml_text: str) -> Any:
    file = sim_file(
        "devices:\n  - name: d\n    units:\n      - points:\n"
        + "\n".join("          " + line for line in yaml_text.strip().splitlines())
    )
    return file.devices[0].units[0].points[0]


def step(behaviour: Any, t: float, value: Any = 0.0, dt: float = 0.1) -> Any:
    context = Context({}, random.Random(3))
    context.t, context.dt, context.value = t, dt, value
    return behaviour.step(context)


def test_ramp_sine_and_steps_are_functions_of_time() -> None:
    ramp = build_behaviour(point("- {name: r, ramp: {start: 0, end: 10, period: 10s}}"), str)
    assert [step(ramp, t) for t in (0, 5, 9.9, 10, 15)] == pytest.approx([0, 5, 9.9, 0, 5])
    bounce = build_behaviour(
        point("- {name: r, ramp: {start: 0, end: 10, period: 10s, mode: bounce}}"), str
    )
    assert [step(bounce, t) for t in (5, 10, 15, 20)] == pytest.approx([5, 10, 5, 0])
    once = build_behaviour(point("- {name: r, ramp: {end: 4, period: 2s, mode: once}}"), str)
    assert [step(once, t) for t in (1, 2, 50)] == pytest.approx([2, 4, 4])
    sine = build_behaviour(point("- {name: s, sine: {mean: 230, amplitude: 2, period: 4s}}"), str)
    assert [step(sine, t) for t in (0, 1, 2, 3)] == pytest.approx([230, 232, 230, 228])
    phased = build_behaviour(point("- {name: s, sine: {period: 4s, phase: 90}}"), str)
    assert step(phased, 0) == pytest.approx(1)
    steps = build_behaviour(point("- {name: s, steps: {values: [1, 5, 9], every: 2s}}"), str)
    assert [step(steps, t) for t in (0, 1.9, 2, 4, 6, 7)] == [1, 1, 5, 9, 1, 1]
    last = build_behaviour(
        point("- {name: s, steps: {values: [1, 5], every: 1s, repeat: false}}"), str
    )
    assert step(last, 100) == 5


def test_a_random_walk_stays_within_its_bounds() -> None:
    walk = build_behaviour(
        point("- {name: w, random_walk: {start: 9.9, step: 50, min: 0, max: 10}}"), str
    )
    value = 9.9
    seen = []
    for n in range(2000):
        value = step(walk, n * 0.1, value)
        seen.append(value)
    assert min(seen) >= 0
    assert max(seen) <= 10
    assert max(seen) - min(seen) > 5  # it does move


def test_integrate_and_follow_carry_state() -> None:
    tank = build_behaviour(point("- {name: l, integrate: {rate: '2', min: 0, max: 1}}"), str)
    assert step(tank, 0, 0.0, dt=0.25) == 0.5
    assert step(tank, 0, 0.9, dt=0.25) == 1.0  # kept within max
    lag = build_behaviour(point("- {name: s, follow: {target: '100', time_constant: 1s}}"), str)
    assert step(lag, 0, 0.0, dt=1.0) == pytest.approx(100 * (1 - math.exp(-1)))
    limited = build_behaviour(
        point("- {name: s, follow: {target: '100', time_constant: 1s, rate_limit: 10}}"), str
    )
    assert step(limited, 0, 0.0, dt=0.5) == pytest.approx(5.0)


# -- the plant model ------------------------------------------------------------------------------

TANK = """
seed: 4
devices:
  - name: plc
    units:
      - points:
          - {name: pump_run, table: coil, address: 0, value: false}
          - {name: speed_setpoint, table: holding, address: 0, scale: 0.1, value: 50}
          - name: pump_speed
            table: input
            address: 0
            follow: {target: "speed_setpoint if pump_run else 0", time_constant: 0.5s}
          - name: reset
            table: coil
            address: 1
            on_write: [{set: trips, to: "0"}, {set: reset, to: false}]
          - {name: trips, table: holding, address: 1, value: 3}
  - name: field
    units:
      - unit: 2
        points:
          - {name: inflow, expr: "plc.pump_speed * 2"}
          - {name: level, table: input, address: 0, value: 1.0,
             integrate: {rate: "(inflow - outflow) / 100", min: 0, max: 5}}
          - {name: outflow, expr: "20 if level > 0 else 0"}
"""


def run(plant: Plant, start: float, seconds: float, tick: float = 0.1) -> None:
    for n in range(round(seconds / tick) + 1):
        plant.step(start + n * tick)


def test_the_tank_rises_when_the_controller_starts_the_pump() -> None:
    plant = Plant(sim_file(TANK))
    run(plant, 0.0, 5.0)
    assert plant.values["plc.pump_speed"] == 0
    drained = plant.values["field.level"]
    assert drained == pytest.approx(1.0 - 20 / 100 * 5, abs=0.03)
    changed = plant.write("plc.pump_run", True)  # the controller writes the coil
    assert changed == {"plc.pump_run"}
    run(plant, 5.1, 5.0)
    assert plant.values["plc.pump_speed"] == pytest.approx(50, abs=0.1)
    assert plant.values["field.inflow"] == pytest.approx(100, abs=0.2)
    assert plant.values["field.level"] > drained + 3  # (100 - 20) / 100 per second
    run(plant, 10.2, 10.0)
    assert plant.values["field.level"] == 5  # full: kept within max


def test_write_handlers_and_restarts() -> None:
    plant = Plant(sim_file(TANK))
    plant.step(0.0)
    # the write handlers clear the trip counter and the reset coil itself (a momentary button):
    # both changed, so both go back on the wire
    assert plant.write("plc.reset", True) == {"plc.trips", "plc.reset"}
    assert (plant.values["plc.trips"], plant.values["plc.reset"]) == (0, False)
    plant.write("plc.speed_setpoint", 80)
    run(plant, 0.1, 1.0)
    keys = [key for key in plant.points if key.startswith("plc.")]
    changed = plant.reset(keys)  # a restart: held values back to their initial values
    assert changed == {"plc.speed_setpoint", "plc.trips"}
    assert plant.values["plc.speed_setpoint"] == 50
    assert "plc.pump_speed" not in changed  # a process value carries on


def test_the_pump_station_runs_without_errors() -> None:
    from hil.sim import load_sim_file

    from .conftest import PLANT

    plant = Plant(load_sim_file(PLANT))
    run(plant, 0.0, 30.0)
    assert plant.errors == {}
    assert 0 <= plant.values["field.tank_level"] <= 5
    assert plant.values["meter.power_total"] > 300
