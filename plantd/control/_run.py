"""Running ``plantd-control``: the plan from the config directory, the process, its services."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from plantd.config import PlantdConfig
from plantd.control._files import load_plan
from plantd.control._process import ControlProcess
from plantd.control._service import alarms_service, control_service
from plantd.service import ServiceWorker

__all__ = ["run_control"]

log = logging.getLogger(__name__)


async def run_control(config: PlantdConfig, environ: Mapping[str, str] | None = None) -> None:
    """Run until SIGTERM/SIGINT (telling systemd when both services are registered).

    A wrong file in ``calc.d/``, ``alarms.d/`` or ``control.d/`` raises ConfigError before
    anything starts: the entry point exits 2 with every problem named.
    """
    from plantd.runtime import run_until_signal

    plan = load_plan(config.source_dir)
    process = ControlProcess(config, plan)
    workers = [
        ServiceWorker(alarms_service(process), config),
        ServiceWorker(control_service(process), config),
    ]
    if plan.empty:
        log.info("control: nothing configured in calc.d/, alarms.d/ or control.d/")
    await run_until_signal(
        [process, *workers],
        environ=environ,
        description=(
            f"{len(plan.alarms)} alarms, {len(plan.calcs)} calculations, "
            f"{len(plan.loops)} loops, {len(plan.interlocks)} interlocks"
        ),
    )
