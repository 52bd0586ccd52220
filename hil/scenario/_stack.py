"""The plantd stack a scenario runs against: real processes, started and stopped by the rig.

Three ways:

- **throwaway** (the default): a config directory in the work directory, with the broker and
  the bus on ipc sockets of its own (see :func:`_private_endpoints`), fast heartbeats
  and its own CURVE key set (as the appliance runs, with the rig as its admin); the
  scenario's module files are copied into its ``modules.d/``, each connection rewritten to
  where its simulated device listens (a TCP device's host and port; a serial line's pty link,
  with ``parity: none`` since a pty refuses parity). Runs beside a live stack without
  touching it.
- **from a config directory** (``plant hil run --config DIR``): the broker, the state service
  and the scenario's modules from ``DIR/modules.d`` as they are (the simulators listen on their
  files' own ports, as the modules expect).
- **attached** (``--attach``): nothing is started; the steps talk to the stack ``DIR``
  describes, which is already running (a rig with a real controller, say).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from plantd.config import PlantdConfig, check_module_file, load_config
from plantd.control import ALARMS_SERVICE, CONTROL_SERVICE
from plantd.errors import ConfigError
from plantd.security import use_identity, user_identity
from plantd.state import SERVICE_NAME as STATE_SERVICE
from plantd.testing import (
    ManagedProcess,
    ipc_endpoints,
    make_keys,
    wait_for_broker,
    wait_for_workers,
    write_config,
)

__all__ = ["RigStack", "rewrite_connection"]

_HEARTBEAT = 0.25


def rewrite_connection(module: dict[str, Any], endpoint: Mapping[str, Any]) -> dict[str, Any]:
    """``module`` (a module file's data) connected to a simulated device's ``endpoint``."""
    connection = dict(module.get("connection") or {})
    for key in ("host", "port", "device"):
        connection.pop(key, None)
    connection["transport"] = endpoint["transport"]
    if "device" in endpoint:
        connection["device"] = endpoint["device"]
        connection["parity"] = "none"
    else:
        connection["host"] = endpoint["host"]
        connection["port"] = endpoint["port"]
    return {**module, "connection": connection}


def _private_endpoints(work_dir: Path) -> dict[str, dict[str, str]]:
    """Endpoints no other process can hold: ipc sockets in the work directory (or, when its
    path is too long for one, in a fresh directory of the system's temporary one).

    Not tcp ports: the rig subscribes to the bus before the broker starts (so it misses no
    sample), which needs the endpoints before anything binds; a port chosen before binding
    may be taken by then, an ipc path in a directory of our own cannot be.
    """
    try:
        return ipc_endpoints(work_dir / "sockets")
    except ValueError:
        return ipc_endpoints(Path(tempfile.mkdtemp(prefix="plantd-rig-")))


class RigStack:
    def __init__(
        self,
        work_dir: Path,
        *,
        config_dir: Path | None = None,
        attach: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.attach = attach
        self.processes: list[ManagedProcess] = []
        self.log_dir = work_dir / "logs"
        if config_dir is None:
            self.config_dir = write_config(work_dir / "etc", self._throwaway_settings())
            self.throwaway = True
        else:
            self.config_dir = config_dir
            self.throwaway = False
        # A throwaway stack must not pick up PLANTD_* overrides meant for another one.
        base = dict(os.environ if env is None else env)
        if self.throwaway:
            base = {k: v for k, v in base.items() if not k.startswith("PLANTD_")}
        self.env = base
        self.config: PlantdConfig = load_config(self.config_dir, {} if self.throwaway else base)
        # The rig's own calls and bus recording: as the stack's admin (throwaway), or as the
        # user running it (a stack from DIR).
        use_identity(user_identity(self.config, base))

    def _throwaway_settings(self) -> dict[str, dict[str, Any]]:
        endpoints = _private_endpoints(self.work_dir)
        return {
            "broker": {
                "endpoint": endpoints["broker"]["endpoint"],
                "heartbeat_interval": _HEARTBEAT,
                "heartbeat_liveness": 4,
            },
            "bus": endpoints["bus"],
            "worker": {"heartbeat_interval": _HEARTBEAT, "heartbeat_liveness": 4},
            "client": {"timeout": 2.0, "retries": 2},
            "paths": {"data": str(self.work_dir / "data"), "run": str(self.work_dir / "run")},
            "logging": {"level": "info"},
            "security": {"mode": "curve"},
        }

    def add_module(self, name: str, source: Path, endpoint: Mapping[str, Any] | None) -> Path:
        """Put module ``name`` into the throwaway ``modules.d`` (rewritten to ``endpoint``)."""
        data = yaml.safe_load(source.read_text())
        if endpoint is not None:
            data = rewrite_connection(data, endpoint)
        target = self.config_dir / "modules.d" / f"{name}.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(data, sort_keys=False))
        problems = check_module_file(target)
        if problems:
            raise ConfigError([f"module {name} (from {source}), rewritten for the rig:", *problems])
        return target

    async def start(self, modules: Sequence[str], *, state: bool, control: bool = False) -> None:
        """Broker, then the state service and every module at once; wait until all serve.
        With ``control``, then ``plantd-control`` (its loops write to the modules, its alarms
        and calculations read them), until it serves ``org.plantd.Alarms`` and
        ``org.plantd.Control``."""
        if self.attach:
            return
        if self.throwaway:
            make_keys(self.config_dir, modules=modules)  # the modules added since
        endpoint = self.config.broker.endpoint
        broker = self._spawn("broker", ["plantd.broker"])
        await asyncio.to_thread(wait_for_broker, endpoint, 20.0, broker)
        services: list[tuple[str, ManagedProcess]] = []
        if state:
            services.append((STATE_SERVICE, self._spawn("state", ["plantd.state"])))
        for name in modules:
            process = self._spawn(f"module-{name}", ["plantd.cli", "module", "run", name])
            services.append((f"org.plantd.module.{name}", process))
        await self._serving(services)
        if control:
            process = self._spawn("control", ["plantd.control"])
            await self._serving([(ALARMS_SERVICE, process), (CONTROL_SERVICE, process)])

    async def _serving(self, services: Sequence[tuple[str, ManagedProcess]]) -> None:
        endpoint = self.config.broker.endpoint
        for service, process in services:
            try:
                await asyncio.to_thread(wait_for_workers, endpoint, service, 1, 30.0)
            except TimeoutError:
                tail = process.log_text()[-1500:]
                raise RuntimeError(
                    f"{process.name} did not register {service} within 30 s; its log ends:\n{tail}"
                ) from None

    def _spawn(self, name: str, args: list[str]) -> ManagedProcess:
        module, *rest = args
        argv = [module, "--config", str(self.config_dir), *rest]
        process = ManagedProcess.plantd(argv, name=name, log_dir=self.log_dir, env=self.env)
        self.processes.append(process.start())
        return process

    async def stop(self) -> None:
        """plantd-control and the modules first, then the state service, then the broker
        (SIGTERM, then SIGKILL)."""
        for process in reversed(self.processes):
            if process.running() and process.process is not None:
                process.process.terminate()
        for process in reversed(self.processes):
            await asyncio.to_thread(process.terminate, 10.0)

    def logs(self) -> dict[str, str]:
        return {process.name: process.log_text() for process in self.processes}
