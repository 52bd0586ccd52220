"""Starting module processes: module file → driver → runtime, sink and state sync; one module
per process (``plant module run NAME``) or several in one (``plant module host``)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from plantd.config import MODULES_DIR, PlantdConfig, read_yaml
from plantd.errors import ConfigError, SecurityError
from plantd.module._commands import module_service
from plantd.module._config import ModuleConfig, parse_module_file, read_driver_name
from plantd.module._driver import Driver, DriverClass
from plantd.module._host import HostedModule, ModuleHost, State
from plantd.module._registry import load_driver
from plantd.module._runtime import ModuleRuntime
from plantd.module._state_sync import StateSync
from plantd.runtime import run_until_signal
from plantd.security import service_identity
from plantd.service import ServiceWorker
from plantd.systemd import Notifier

__all__ = [
    "is_isolated",
    "load_host",
    "load_module",
    "module_files",
    "module_path",
    "rescan_host",
    "run_host",
    "run_module",
]

log = logging.getLogger(__name__)


def module_path(config: PlantdConfig, name: str) -> Path:
    if config.source_dir is None:
        raise ConfigError(
            [f"module {name!r}: no configuration directory (use --config DIR or $PLANTD_CONFIG)"]
        )
    return config.source_dir / MODULES_DIR / f"{name}.yaml"


def module_files(config_dir: Path | None) -> list[Path]:
    """Every module file of ``config_dir/modules.d`` (``*.yaml``, not hidden), sorted."""
    if config_dir is None:
        return []
    folder = config_dir / MODULES_DIR
    return sorted(p for p in folder.glob("*.yaml") if not p.name.startswith("."))


def is_isolated(path: Path) -> bool:
    """Whether a module file says ``isolated: true`` (it runs in a process of its own).

    A file that cannot be read is not: the module host reports what is wrong with it. The
    systemd generator applies the same rule.
    """
    try:
        data = read_yaml(path).data
    except ConfigError:
        return False
    return isinstance(data, dict) and data.get("isolated") is True


def _load_class(path: Path) -> tuple[ModuleConfig, DriverClass]:
    if not path.is_file():
        raise ConfigError([f"{path}: no such module file"])
    driver_class = load_driver(read_driver_name(path), source=str(path))
    return parse_module_file(path, driver_class.config_type), driver_class


def load_module(config: PlantdConfig, name: str) -> tuple[ModuleConfig, Driver]:
    """Read ``modules.d/NAME.yaml``, find its driver, and build the driver from it."""
    module, driver_class = _load_class(module_path(config, name))
    return module, driver_class(module)


async def run_module(
    config: PlantdConfig, name: str, environ: Mapping[str, str] | None = None
) -> None:
    """Run module ``name`` until SIGTERM/SIGINT (telling systemd when it serves)."""
    module, driver = load_module(config, name)
    runtime = ModuleRuntime(config, module, driver)
    process = _ModuleProcess(
        runtime, ServiceWorker(module_service(runtime), config), StateSync(config, runtime)
    )
    log.info(
        "module %s (driver %s): %d points in %d groups; service %s",
        name,
        module.driver,
        len(runtime.table.points),
        len(module.groups),
        runtime.service,
    )
    await run_until_signal(
        [process],
        environ=environ,
        description=f"module {name}: {len(runtime.table.points)} points, driver {module.driver}",
    )


@dataclass(frozen=True)
class _ModuleProcess:
    """A module process's one service for :func:`run_until_signal`: the runtime, with its
    command service and state sync as companions in its task tree. Ready (READY=1) once the
    command service is registered with the broker."""

    runtime: ModuleRuntime
    commands: ServiceWorker
    sync: StateSync

    @property
    def connected(self) -> asyncio.Event:
        return self.commands.connected

    async def run(self) -> None:
        await self.runtime.run(self.commands, self.sync)

    def stop(self) -> None:
        self.runtime.stop()


def load_host(config: PlantdConfig, names: Sequence[str] = ()) -> list[HostedModule]:
    """The modules a host runs: those ``names``, else every file of ``modules.d/`` without
    ``isolated: true``. Only the drivers they name are imported.

    A module whose file or driver cannot be loaded is ``broken``, one without its key
    ``no-key``, and the others run — unless ``names`` named it: then ConfigError (or
    SecurityError), as ``plant module run`` would. So is a host with nothing it could run.
    """
    hosted: list[HostedModule] = []
    for path in _host_paths(config, names):
        one = _load_hosted(config, path, named=bool(names))
        if one.state is State.BROKEN:
            log.error("module %s cannot run: %s", one.name, one.error)
        elif one.state is State.NO_KEY:
            log.error("module %s cannot run: %s; the other modules run", one.name, one.error)
        elif names and one.module is not None and one.module.isolated:
            log.warning("module %s says isolated: true, but was named: it runs here", one.name)
        hosted.append(one)
    if not hosted:
        where = config.source_dir / MODULES_DIR if config.source_dir else MODULES_DIR
        raise ConfigError([f"{where}: no module to host (isolated ones run on their own)"])
    if all(h.state is State.BROKEN for h in hosted):
        raise ConfigError([h.error or h.name for h in hosted])
    return hosted


def rescan_host(config: PlantdConfig, names: Sequence[str] = ()) -> list[HostedModule]:
    """The modules a host runs, as their files are now: what a reload hands the host
    (:meth:`ModuleHost.reload`). As :func:`load_host`, but nothing is raised or logged (the
    host logs what changed): a file that cannot be loaded is ``broken``, named or not; a named
    file that is gone is left out (the host stops its module); there may be none at all."""
    paths = _host_paths(config, names)
    if names:
        paths = [path for path in paths if path.exists()]
    return [_load_hosted(config, path, named=False) for path in paths]


def _host_paths(config: PlantdConfig, names: Sequence[str]) -> list[Path]:
    """The files of those ``names``, else every file of ``modules.d/`` that is not isolated."""
    if names:
        return [module_path(config, name) for name in dict.fromkeys(names)]
    return [path for path in module_files(config.source_dir) if not is_isolated(path)]


def _load_hosted(config: PlantdConfig, path: Path, *, named: bool) -> HostedModule:
    """One module of the host from its file: ``starting``, or ``broken`` (its file or driver
    cannot be loaded), or ``no-key``; ``named`` (on the command line): those two raise."""
    try:
        digest: str | None = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        digest = None  # not there (any more): loading it says so
    try:
        module, driver_class = _load_class(path)
    except ConfigError as exc:
        if named:
            raise
        return HostedModule(path.stem, path, State.BROKEN, error=str(exc), digest=digest)
    state, error = State.STARTING, None
    try:
        service_identity(config, f"module.{path.stem}")
    except SecurityError as exc:
        if named:
            raise
        state, error = State.NO_KEY, str(exc)
    return HostedModule(
        path.stem,
        path,
        state,
        error,
        module=module,
        driver_class=driver_class,
        failing="no-key" if state is State.NO_KEY else None,
        digest=digest,
    )


async def run_host(
    config: PlantdConfig, names: Sequence[str] = (), environ: Mapping[str, str] | None = None
) -> None:
    """Run the module host until SIGTERM/SIGINT: READY=1 once every module that can run is
    registered, the status line kept up to date as modules fail and recover. SIGHUP reloads:
    the files are read again (``names``' only, if it was given names) and what changed is
    applied (:meth:`ModuleHost.reload`)."""
    notifier = Notifier.from_environ(environ or {})
    host = ModuleHost(
        config, load_host(config, names), on_change=lambda h: notifier.status(h.summary())
    )
    try:
        await run_until_signal(
            [host],
            environ=environ,
            description=_ready_line(host),
            reload=lambda: host.reload_soon(lambda: rescan_host(config, names)),
        )
    finally:
        notifier.close()


def _ready_line(host: ModuleHost) -> str:
    """The status line at READY=1, when every module that can run is registered."""
    runs = [name for name, h in host.modules.items() if h.state is State.STARTING]
    line = f"module host: {len(runs)} of {len(host.modules)} modules running ({', '.join(runs)})"
    for state, label in ((State.NO_KEY, "no key"), (State.BROKEN, "broken file")):
        names = [name for name, h in host.modules.items() if h.state is state]
        if names:
            line += f"; {label}: {', '.join(names)}"
    return line
