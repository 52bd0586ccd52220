"""Run-time control of a running simulator: the MDP service ``org.plantd.sim.<name>``.

A simulator started with ``plant sim run`` registers this service at the broker of its config
(when none is running yet, the worker waits for one and registers when it comes), so faults can
be injected from a shell, a script or another machine with the same door as every other plantd
service: ``plant sim inject …`` or ``plant call org.plantd.sim.NAME inject '{…}'``. A scenario
runs its simulators in its own process and calls :class:`~hil.sim.SimRunner` directly.

``status``   devices (where they listen, units, requests, writes), active faults, plant time
``points``   every point: device, unit, table, address, type and current value
``get``      ``{"device", "point"}`` → the value
``set``      ``{"device", "point", "value"}``: set a value by hand (as if the process moved it)
``inject``   a fault: ``{"device", "fault", "unit"?, "code"?, "delay"?, "count"?, "duration"?,
             "downtime"?, "retain"?}`` (see :mod:`hil.sim._faults`)
``heal``     ``{"device"?, "unit"?}``: clear faults

Errors: ``bad-request`` (params that are not a fault), ``sim.refused`` (an unknown device or
point, a fault that does not fit the device).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

from hil.sim._faults import Fault, Heal
from hil.sim._runner import SimError, SimRunner
from plantd.config import parse_dataclass, to_data
from plantd.errors import ConfigError
from plantd.service import Json, OperationError, Params, ServiceDefinition, param

__all__ = ["SERVICE_PREFIX", "sim_service"]

SERVICE_PREFIX = "org.plantd.sim."


def sim_service(runner: SimRunner) -> ServiceDefinition:
    definition = ServiceDefinition(
        SERVICE_PREFIX + runner.name, f"Simulated devices of {runner.file.source or runner.name}"
    )

    @definition.operation("status", access="read")
    async def _status(params: Params) -> Json:
        """Devices, where they listen, requests and writes; active faults; plant time."""
        return runner.status()

    @definition.operation("points", access="read")
    async def _points(params: Params) -> Json:
        """Every point with its device, unit, wire settings and current value."""
        listed = []
        for key, point in runner.plant.points.items():
            entry: dict[str, Any] = {"device": runner.plant.device_of[key]}
            entry["unit"] = runner.plant.unit_of[key]
            entry |= {k: v for k, v in _plain(to_data(point)).items() if v not in (None, (), [])}
            entry["value"] = _json_value(runner.plant.values[key])
            listed.append(entry)
        return listed

    @definition.operation("get", access="read")
    async def _get(params: Params) -> Json:
        """The current value of ``point`` of ``device``."""
        with _refusals():
            value = runner.get(param(params, "device", str), param(params, "point", str))
        return _json_value(value)

    @definition.operation("set", access="configure")
    async def _set(params: Params) -> Json:
        """Set ``point`` of ``device`` to ``value`` by hand."""
        if "value" not in params:
            raise OperationError("bad-request", "params.value is required")
        with _refusals():
            runner.set(param(params, "device", str), param(params, "point", str), params["value"])
        return {"device": params["device"], "point": params["point"], "value": params["value"]}

    @definition.operation("inject", access="configure")
    async def _inject(params: Params) -> Json:
        """Inject a fault (device, fault, unit, code, delay, count, duration, downtime)."""
        fault = _parse(Fault, params)
        with _refusals():
            await runner.inject(fault)
        return {"injected": fault.describe()}

    @definition.operation("heal", access="configure")
    async def _heal(params: Params) -> Json:
        """Clear the faults of ``device`` (or of one ``unit`` of it; of every device if none)."""
        heal = _parse(Heal, params)
        with _refusals():
            runner.heal(heal)
        return {"healed": heal.device or "every device"}

    return definition


def _parse(kind: type[Any], params: Params) -> Any:
    try:
        return parse_dataclass(kind, params, source="params")
    except ConfigError as exc:
        raise OperationError("bad-request", str(exc)) from None


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """Turns :class:`SimError` into the ``sim.refused`` error reply."""
    try:
        yield
    except SimError as exc:
        raise OperationError("sim.refused", str(exc)) from exc


def _plain(data: object) -> dict[str, Any]:
    assert isinstance(data, dict)
    keep = ("name", "table", "address", "type", "order", "bit", "length", "scale", "offset")
    return {key: data[key] for key in keep if key in data}


def _json_value(value: Any) -> Json:
    if isinstance(value, float) and not math.isfinite(value):  # NaN and inf are not JSON
        return str(value)
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)
