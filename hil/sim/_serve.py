"""``plant sim run``: simulator files served until SIGTERM/SIGINT, with their control services.

Every file's devices start before anything is announced, so the lines printed (and the JSON
line with ``--json``) say where each device really listens: a rig or a test can read the ports
and pty paths from them. Each file's control service, ``org.plantd.sim.<name>``, registers at
the configured broker (if none is running yet, it registers when one comes).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hil.sim._control import sim_service
from hil.sim._runner import SimError, SimRunner
from hil.sim._schema import SimFile
from plantd.config import PlantdConfig
from plantd.runtime import Stoppable, run_until_signal
from plantd.service import ServiceWorker

__all__ = ["describe_endpoints", "serve"]


async def serve(
    files: Sequence[SimFile],
    config: PlantdConfig,
    *,
    run_dir: Path,
    free_ports: bool = False,
    control: bool = True,
    json_output: bool = False,
    environ: dict[str, str] | None = None,
) -> None:
    names = [file.sim_name for file in files]
    if len(set(names)) != len(names):
        raise SimError(f"two simulator files have the same name: {', '.join(names)}")
    runners = [SimRunner(file, run_dir=run_dir, free_ports=free_ports) for file in files]
    started: list[SimRunner] = []
    try:
        for runner in runners:
            await runner.start()
            started.append(runner)
        services: list[Stoppable] = list(runners)
        if control:
            services += [ServiceWorker(sim_service(runner), config) for runner in runners]

        def announce() -> None:
            if json_output:
                endpoints = {runner.name: runner.endpoints() for runner in runners}
                print(json.dumps({"simulators": endpoints}), flush=True)
            else:
                print(describe_endpoints(runners, config if control else None), flush=True)

        # Printed once SIGTERM is handled: a rig reads these lines and may stop us at once.
        await run_until_signal(
            services,
            environ=environ,
            description=f"simulators {', '.join(names)}",
            announce=announce,
        )
    finally:
        for runner in started:
            await runner.close()


def describe_endpoints(runners: Sequence[SimRunner], config: PlantdConfig | None) -> str:
    lines: list[str] = []
    for runner in runners:
        lines.append(f"{runner.name}: {len(runner.bindings)} devices, tick {runner.file.tick:g} s")
        for where in runner.endpoints():
            lines.append(f"  {where['name']:12} modbus {where['transport']:13} {_address(where)}")
        if config is not None:
            lines.append(
                f"  control: org.plantd.sim.{runner.name} at {config.broker.endpoint} "
                f"(plant sim inject {runner.name} DEVICE FAULT)"
            )
    lines.append("Ctrl-C stops.")
    return "\n".join(lines)


def _address(where: dict[str, Any]) -> str:
    units = ", ".join(str(unit) for unit in where["units"])
    if "device" in where:
        place = where["device"]
        if where["device"] != where.get("pty"):
            place += f" -> {where['pty']}"
    else:
        place = f"{where['host']}:{where['port']}"
    return f"{place}   unit{'s' if len(where['units']) > 1 else ''} {units}"
