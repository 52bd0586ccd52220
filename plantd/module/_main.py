"""Starting a module process: module file → driver → runtime, sink and state sync."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from plantd.config import MODULES_DIR, PlantdConfig
from plantd.errors import ConfigError
from plantd.module._config import ModuleConfig, parse_module_file, read_driver_name
from plantd.module._driver import Driver
from plantd.module._registry import load_driver
from plantd.module._runtime import ModuleRuntime
from plantd.module._sink import module_service
from plantd.module._state_sync import StateSync
from plantd.runtime import run_until_signal
from plantd.service import ServiceWorker

__all__ = ["load_module", "module_path", "run_module"]

log = logging.getLogger(__name__)


def module_path(config: PlantdConfig, name: str) -> Path:
    if config.source_dir is None:
        raise ConfigError(
            [f"module {name!r}: no configuration directory (use --config DIR or $PLANTD_CONFIG)"]
        )
    return config.source_dir / MODULES_DIR / f"{name}.yaml"


def load_module(config: PlantdConfig, name: str) -> tuple[ModuleConfig, Driver]:
    """Read ``modules.d/NAME.yaml``, find its driver, and build the driver from it."""
    path = module_path(config, name)
    if not path.is_file():
        raise ConfigError([f"{path}: no such module file"])
    driver_class = load_driver(read_driver_name(path), source=str(path))
    module = parse_module_file(path, driver_class.config_type)
    return module, driver_class(module)


async def run_module(
    config: PlantdConfig, name: str, environ: Mapping[str, str] | None = None
) -> None:
    """Run module ``name`` until SIGTERM/SIGINT (telling systemd when it serves)."""
    module, driver = load_module(config, name)
    runtime = ModuleRuntime(config, module, driver)
    sink = ServiceWorker(module_service(runtime), config)
    log.info(
        "module %s (driver %s): %d points in %d groups; service %s",
        name,
        module.driver,
        len(runtime.table.points),
        len(module.groups),
        runtime.service,
    )

    class _Runtime:
        connected = sink.connected  # READY=1 once the sink is registered with the broker

        async def run(self) -> None:
            await runtime.run(sink, StateSync(config, runtime))

        def stop(self) -> None:
            runtime.stop()

    await run_until_signal(
        [_Runtime()],
        environ=environ,
        description=f"module {name}: {len(runtime.table.points)} points, driver {module.driver}",
    )
