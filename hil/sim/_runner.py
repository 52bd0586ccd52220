"""Running a simulator file: every device's server in this process's event loop, the plant model
stepped every ``tick``, and faults applied (and healed) on request.

    async with SimRunner(load_sim_file(path), free_ports=True) as sim:
        sim.endpoints()                   # where each device listens (host/port, or pty path)
        await sim.inject(Fault(device="field", unit=2, fault="silent", duration=3.0))
        sim.set("plc", "pump_run", False)
        sim.get("field", "tank_level")

Theory of operation: one task, :meth:`SimRunner.run`, owns time. Each tick it steps the plant,
puts changed values on the wire, and runs the jobs that fell due (a fault's ``duration`` ending,
a restarted device coming back). The servers answer from their own callbacks in the same loop,
so a value is never half-written when a request reads it. Faults act at the level where a real
device misbehaves: answers (hil.modbus.Simulator), connections (the TCP server), values (frozen
units stop following the plant).
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from hil.modbus import TcpServer
from hil.sim._faults import ANSWER_FAULTS, Fault, Heal
from hil.sim._modbus import ModbusBinding
from hil.sim._plant import Keys, Plant
from hil.sim._schema import SimFile
from plantd.config import did_you_mean, parse_dataclass, read_yaml
from plantd.errors import ConfigError, PlantdError

__all__ = ["SimError", "SimRunner", "load_sim_file"]

log = logging.getLogger(__name__)

_REQUEST_LOG_MAX = 10_000


class SimError(PlantdError):
    """A simulator was asked for something it does not have or cannot do (names which)."""


def load_sim_file(path: Path) -> SimFile:
    """Read and validate a simulator file; :class:`ConfigError` names every problem."""
    document = read_yaml(path)
    if document.problems:
        raise ConfigError(list(document.problems))
    parsed = parse_dataclass(
        SimFile, document.data, source=str(path), lines=document.lines, base_dir=path.parent
    )
    return dataclasses.replace(parsed, source=path)


class SimRunner:
    def __init__(
        self,
        file: SimFile,
        *,
        run_dir: Path | None = None,
        free_ports: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.file = file
        self.name = file.sim_name
        self.run_dir = run_dir or Path.cwd()
        self.free_ports = free_ports
        self.clock = clock
        self.plant = Plant(file)
        self.bindings: dict[str, ModbusBinding] = {
            device.name: ModbusBinding(device, self.plant, self._show) for device in file.devices
        }
        self.active: list[Fault] = []
        """Faults in force (as injected), for status and reports."""
        self.requests: dict[str, int] = dict.fromkeys(self.bindings, 0)
        self._jobs: list[tuple[float, int, Callable[[], Awaitable[None]]]] = []
        self._job_ids = itertools.count()
        self._stopping = asyncio.Event()
        self._errors: set[str] = set()
        self._group: asyncio.TaskGroup | None = None

    # -- lifetime -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Step the plant once and start every device's server."""
        self._show(self.plant.step(self.clock()))
        for binding in self.bindings.values():
            try:
                await binding.start_server(
                    run_dir=self.run_dir, port=0 if self.free_ports else None
                )
            except OSError as exc:  # a busy port, a run directory we may not write
                await self.close()  # the devices already serving, too
                raise SimError(self._cannot_serve(binding, exc)) from exc

    def _cannot_serve(self, binding: ModbusBinding, exc: OSError) -> str:
        spec = binding.spec
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        if spec.transport != "rtu":
            return (
                f"{self.name}: device {spec.name!r} cannot listen on {spec.host}:{spec.port}: "
                f"{reason} (another simulator or server has it? port: 0 or --free-ports "
                "takes any free port)"
            )
        where = f" at {exc.filename}" if exc.filename else ""
        return (
            f"{self.name}: device {spec.name!r} cannot make its pty link {spec.link}{where}: "
            f"{reason} (--run-dir DIR or paths.run puts links elsewhere)"
        )

    async def run(self) -> None:
        """Step the plant every tick and run due jobs, until :meth:`stop`."""
        tick = self.file.tick
        due = self.clock()
        while not self._stopping.is_set():
            now = self.clock()
            self._show(self.plant.step(now))
            self._log_errors()
            await self._run_jobs(now)
            self._trim_request_logs()
            due = max(due + tick, now + tick / 10)
            try:
                async with asyncio.timeout(max(0.0, due - self.clock())):
                    await self._stopping.wait()
            except TimeoutError:
                pass

    def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        for binding in self.bindings.values():
            if binding.server is not None:
                await binding.server.stop()

    async def __aenter__(self) -> SimRunner:
        await self.start()
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._group.create_task(self.run())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        try:
            if self._group is not None:
                await self._group.__aexit__(kind, exc, tb)
        finally:
            await self.close()

    # -- values ---------------------------------------------------------------------------------

    def key(self, device: str, point: str) -> str:
        self.binding(device)
        key = f"{device}.{point}"
        if key not in self.plant.points:
            points = [k.split(".", 1)[1] for k in self.plant.points if k.startswith(device + ".")]
            raise SimError(f"device {device!r} has no point {point!r}{did_you_mean(point, points)}")
        return key

    def get(self, device: str, point: str) -> Any:
        return self.plant.values[self.key(device, point)]

    def set(self, device: str, point: str, value: Any) -> None:
        """Set a point by hand, as if the process moved it."""
        try:
            self._show(self.plant.set(self.key(device, point), value))
        except ValueError as exc:
            raise SimError(str(exc)) from None

    def binding(self, device: str) -> ModbusBinding:
        found = self.bindings.get(device)
        if found is None:
            hint = did_you_mean(device, self.bindings)
            raise SimError(f"simulator {self.name!r} has no device {device!r}{hint}")
        return found

    def endpoints(self) -> list[dict[str, Any]]:
        return [binding.describe() for binding in self.bindings.values()]

    def status(self) -> dict[str, Any]:
        devices = []
        for name, binding in self.bindings.items():
            sim = binding.simulator
            entry = binding.describe()
            entry["requests"] = self.requests[name] + len(sim.requests)
            entry["writes"] = binding.writes
            entry["faults"] = {str(unit): fault for unit, fault in sim.faults.items()}
            entry["slow"] = {str(unit): delay for unit, delay in sim.delays.items()}
            entry["frozen"] = sorted(binding.frozen)
            entry["hang"] = sim.hang
            devices.append(entry)
        return {
            "name": self.name,
            "t": round(self.plant.t, 3),
            "devices": devices,
            "active": [fault.describe() for fault in self.active],
            "errors": dict(self.plant.errors),
        }

    # -- faults ---------------------------------------------------------------------------------

    async def inject(self, fault: Fault) -> None:
        """Apply ``fault``; :class:`SimError` if it does not fit the device."""
        binding = self.binding(fault.device)
        units = binding.units() if fault.unit is None else [fault.unit]
        if fault.unit is not None and fault.unit not in binding.units():
            raise SimError(f"device {fault.device!r} has no unit {fault.unit} ({binding.units()})")
        transport = binding.spec.transport
        if fault.fault == "bad-crc" and transport == "tcp":
            raise SimError(
                f"bad-crc needs an RTU framing; {fault.device!r} speaks Modbus TCP (use garbage)"
            )
        if fault.fault == "drop" and transport == "rtu":
            raise SimError(f"{fault.device!r} is a serial line: there is no connection to drop")
        sim = binding.simulator
        if fault.fault in ANSWER_FAULTS or fault.fault == "exception":
            kind = (fault.code or 4) if fault.fault == "exception" else fault.fault
            for unit in units:
                sim.fail(unit, kind, count=fault.count)  # type: ignore[arg-type]
        elif fault.fault == "slow":
            for unit in units:
                sim.slow(unit, fault.delay or 0.0)
        elif fault.fault == "frozen":
            binding.frozen.update(units)
        elif fault.fault == "hang":
            sim.hang = True
        elif fault.fault == "drop":
            assert isinstance(binding.server, TcpServer)
            binding.server.drop()
        elif fault.fault == "restart":
            await self._restart(binding, fault)
        log.info("%s: %s", self.name, fault.describe())
        if fault.fault not in ("drop", "restart"):
            self.active.append(fault)
        if fault.duration is not None:
            heal = Heal(device=fault.device, unit=fault.unit)

            async def heal_later() -> None:
                self.heal(heal)

            self._schedule(fault.duration, heal_later)

    def heal(self, heal: Heal | None = None) -> None:
        """Clear faults: of one unit, one device, or (None) every device."""
        heal = heal or Heal()
        names = list(self.bindings) if heal.device is None else [heal.device]
        for name in names:
            binding = self.binding(name)
            binding.simulator.heal(heal.unit)
            thawed = set(binding.frozen) if heal.unit is None else binding.frozen & {heal.unit}
            binding.frozen -= thawed
            for unit in thawed:
                binding.show(binding.unit_keys(unit))
        self.active = [
            fault
            for fault in self.active
            if not (
                fault.device in names
                and (heal.unit is None or fault.unit is None or fault.unit == heal.unit)
            )
        ]
        log.info("%s: healed %s", self.name, heal.device or "every device")

    async def _restart(self, binding: ModbusBinding, fault: Fault) -> None:
        keys = binding.unit_keys(fault.unit)
        whole_server = fault.unit is None and isinstance(binding.server, TcpServer)
        if whole_server:
            assert binding.server is not None
            await binding.server.stop()
        else:
            for unit in binding.units() if fault.unit is None else [fault.unit]:
                binding.simulator.fail(unit, "silent")

        async def come_back() -> None:
            if whole_server and binding.server is not None:
                await binding.server.start()
            else:
                binding.simulator.heal(fault.unit)
            if not (fault.retain or binding.spec.retain):
                self._show(self.plant.reset(keys))
            log.info("%s: %s is back", self.name, fault.device)

        self._schedule(fault.downtime, come_back)

    # -- internals ------------------------------------------------------------------------------

    def _show(self, keys: Keys) -> None:
        if keys:
            for binding in self.bindings.values():
                binding.show(keys)

    def _schedule(self, delay: float, job: Callable[[], Awaitable[None]]) -> None:
        heapq.heappush(self._jobs, (self.clock() + delay, next(self._job_ids), job))

    async def _run_jobs(self, now: float) -> None:
        while self._jobs and self._jobs[0][0] <= now:
            _, _, job = heapq.heappop(self._jobs)
            await job()

    def _log_errors(self) -> None:
        failing = set(self.plant.errors)
        for key in sorted(failing - self._errors):
            log.warning("%s: %s cannot be computed: %s", self.name, key, self.plant.errors[key])
        for key in sorted(self._errors - failing):
            log.info("%s: %s computes again", self.name, key)
        self._errors = failing

    def _trim_request_logs(self) -> None:
        # The simulator logs every request (tests count them); a rig running for days must not
        # grow without bound, so old entries are folded into a counter.
        for name, binding in self.bindings.items():
            log_ = binding.simulator.requests
            if len(log_) > _REQUEST_LOG_MAX:
                self.requests[name] += len(log_) - _REQUEST_LOG_MAX // 2
                del log_[: len(log_) - _REQUEST_LOG_MAX // 2]
