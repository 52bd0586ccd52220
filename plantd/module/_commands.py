"""The module's command service, ``org.plantd.module.NAME``: its operations.

``points``  every point: name, group, interval, writable, limits, description and the driver's
            own settings (address, type…).
``read``    last values (``points``: names, default all); ``fresh: true`` reads the device now.
``write``   ``{"point": NAME, "value": V}``: checks writable and range, writes through the driver
            (same codec as reads), answers the value written, then reads the point's group so
            the new value is published at once.
``status``  connection state, per-group polls/overruns/failures, publish counters, driver figures.

A driver may add operations of its own (``operations()`` → ``{name: DriverOperation}``, e.g. the
OPC UA driver's method calls); each is registered under its name beside these, with the same
error codes.

Errors: ``module.unknown-point``, ``module.not-writable``, ``module.bad-value``,
``module.device-fault`` (the device refused), ``module.unavailable`` (not connected).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from plantd.config import to_data
from plantd.errors import DeviceFault, DeviceUnavailable
from plantd.module._config import PointConfig
from plantd.module._driver import DriverOperation
from plantd.module._runtime import ModuleRuntime
from plantd.service import Json, OperationError, Params, ServiceDefinition, param

__all__ = ["module_service"]


def module_service(runtime: ModuleRuntime) -> ServiceDefinition:
    definition = ServiceDefinition(runtime.service, f"Module {runtime.module.name}")
    table = runtime.table

    def point_named(name: str) -> PointConfig:
        point = table.points.get(name)
        if point is None:
            raise OperationError("module.unknown-point", f"no point {name!r} in this module")
        return point

    @definition.operation("points", access="read")
    async def _points(params: Params) -> Json:
        """Every point with its group, interval, writability, limits and driver settings."""
        listed = []
        for group, point in runtime.module.points():
            entry = cast(dict[str, Any], to_data(point))
            entry["group"] = group.name
            entry["interval"] = group.interval
            listed.append(entry)
        return listed

    @definition.operation("read", access="read")
    async def _read(params: Params) -> Json:
        """Last values of ``points`` (default all); ``fresh: true`` reads the device first."""
        names = param(params, "points", list, None) or list(table.points)
        for name in names:
            point_named(str(name))
        if param(params, "fresh", bool, False):
            groups = {table.group_of[n].name: table.group_of[n] for n in names}
            try:
                for group in groups.values():
                    await runtime.read_fresh(group)
            except DeviceUnavailable as exc:
                raise OperationError("module.unavailable", str(exc)) from exc
        return {name: table.last[name].as_json() for name in names if name in table.last}

    @definition.operation("write", access="operate")
    async def _write(params: Params) -> Json:
        """Write ``value`` to ``point`` (checked against writable/minimum/maximum first)."""
        point = point_named(param(params, "point", str))
        if "value" not in params:
            raise OperationError("bad-request", "params.value is required")
        value = params["value"]
        refusal = point.check_write(value)
        if refusal is not None:
            code = "module.not-writable" if not point.writable else "module.bad-value"
            raise OperationError(code, refusal)
        _require_connected(runtime)
        with _driver_errors(runtime):
            written = await runtime.driver.write(point, value)
        if runtime.connected:
            await runtime.poll(table.group_of[point.name])
        return {"point": point.name, "value": written}

    @definition.operation("status", access="read")
    async def _status(params: Params) -> Json:
        """Connection, per-group polls/overruns/failures, publish counters, driver figures."""
        return runtime.status()

    _add_driver_operations(definition, runtime)
    return definition


def _require_connected(runtime: ModuleRuntime) -> None:
    if not runtime.connected:
        raise OperationError("module.unavailable", runtime.connection.last_error or "not connected")


@contextmanager
def _driver_errors(runtime: ModuleRuntime) -> Iterator[None]:
    """A driver's write or operation failing, as the service's error codes; a lost connection
    is also reported to the runtime, which drops it."""
    try:
        yield
    except ValueError as exc:
        raise OperationError("module.bad-value", str(exc)) from exc
    except DeviceFault as exc:
        raise OperationError("module.device-fault", str(exc)) from exc
    except DeviceUnavailable as exc:
        runtime.report_write_failure(exc)
        raise OperationError("module.unavailable", str(exc)) from exc


def _add_driver_operations(definition: ServiceDefinition, runtime: ModuleRuntime) -> None:
    operations = getattr(runtime.driver, "operations", None)
    if operations is not None:
        for name, operation in operations().items():
            _add_driver_operation(definition, runtime, name, operation)


def _add_driver_operation(
    definition: ServiceDefinition, runtime: ModuleRuntime, name: str, operation: DriverOperation
) -> None:
    async def _call(params: Params) -> Json:
        _require_connected(runtime)
        with _driver_errors(runtime):
            result: Json = await operation.call(params)
        return result

    _call.__doc__ = operation.doc
    definition.operation(name, access="operate")(_call)
