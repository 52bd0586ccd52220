"""Every plantd service's definition, for tests that check each operation against the policy.

The builders only keep references to what they are given, so stand-ins do for the store, the
runtime, the sink and the simulator runner.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hil.sim._control import sim_service
from plantd.audit import audit_service
from plantd.config import Access
from plantd.control import alarms_service, control_service
from plantd.historian._service import historian_service
from plantd.logger._health import HealthReport, health_service
from plantd.logger._service import logger_service
from plantd.module import DriverOperation
from plantd.module._commands import module_service
from plantd.service import ServiceDefinition
from plantd.service.echo import ECHO
from plantd.sinks._forwarder import sink_service
from plantd.state._service import build_definition

__all__ = ["DEFINITIONS", "declared", "module_definition"]


async def _nothing(*args: Any) -> Any:
    return None


def module_definition(
    name: str, driver_operations: tuple[str, ...] = ("start-pump",)
) -> ServiceDefinition:
    """A module's service with a driver that adds operations (an OPC UA method call)."""
    operations = {
        op: DriverOperation(f"Call the OPC UA method {op}.", _nothing) for op in driver_operations
    }
    runtime = SimpleNamespace(
        service=f"org.plantd.module.{name}",
        module=SimpleNamespace(name=name, points=list),
        table=SimpleNamespace(points={}),
        driver=SimpleNamespace(operations=lambda: operations),
    )
    return module_service(runtime)  # type: ignore[arg-type]


def _definitions() -> list[ServiceDefinition]:
    sink = SimpleNamespace(
        service="org.plantd.sink.cloud", name="cloud", sink=SimpleNamespace(type="mqtt")
    )
    runner = SimpleNamespace(name="rig", file=SimpleNamespace(source="rig.yaml"))
    return [
        build_definition(SimpleNamespace(), SimpleNamespace()),  # type: ignore[arg-type]
        historian_service(_nothing, _nothing, _nothing),
        module_definition("m1"),
        sink_service(sink),  # type: ignore[arg-type]
        ECHO,
        sim_service(runner),  # type: ignore[arg-type]
        audit_service(Path("/nonexistent/audit.db")),
        logger_service(_nothing, _nothing),
        health_service(lambda: HealthReport(())),
        alarms_service(SimpleNamespace()),  # type: ignore[arg-type]
        control_service(SimpleNamespace()),  # type: ignore[arg-type]
    ]


DEFINITIONS = _definitions()


def declared(definition: ServiceDefinition) -> list[tuple[str, Access]]:
    """Every operation of ``definition`` and its declared access, ``operations`` included."""
    return [(name, op.access) for name, op in definition.operations.items()] + [
        ("operations", "read")
    ]
