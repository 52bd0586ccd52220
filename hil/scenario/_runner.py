"""Running a scenario: simulators in this process, a plantd stack as processes, steps in order.

    loaded = load_scenario(Path("hil/scenarios/closed-loop.yaml"))
    result = await run_scenario(loaded)            # a throwaway stack on free ports
    print(summary(result)); write_junit([result], Path("hil.xml"))

Order of events: the simulators start (free ports and a private run directory for a throwaway
stack); the bus recorder subscribes; the broker starts, then the state service and the modules
at once, and the rig waits until each has registered its service. The scenario clock starts
and the steps run one after the other. After a failed expectation the remaining steps are
skipped (``keep_going: true`` runs them). Whatever happens, the stack is stopped (modules first)
and the simulators last; the processes' logs are kept in the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hil.scenario._expect import Observation, Outcome, PolledProbe, Probe, check_expect
from hil.scenario._load import LoadedScenario
from hil.scenario._observe import BusProbe, BusRecorder, StateProbe
from hil.scenario._result import ScenarioResult, StepResult
from hil.scenario._schema import Step, split_name
from hil.scenario._stack import RigStack
from hil.scenario._trace import Trace
from hil.sim import SimError, SimRunner
from plantd.client import AsyncClient
from plantd.errors import ConfigError, PlantdError, RequestError, ServiceError
from plantd.service import call_async
from plantd.state import StateClient

__all__ = ["run_scenario"]

log = logging.getLogger(__name__)

_LOG_TAIL = 3000


async def run_scenario(
    loaded: LoadedScenario,
    *,
    config_dir: Path | None = None,
    attach: bool = False,
    work_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    progress: Callable[[StepResult], None] | None = None,
) -> ScenarioResult:
    """Run ``loaded``; a failure is reported in the result, never raised.

    ``config_dir``: start the stack from there (or, with ``attach``, use the one running);
    default: a throwaway stack in ``work_dir`` (default: a temporary directory). ``progress``
    is called with each step's result as it ends.
    """
    options: dict[str, Any] = {"config_dir": config_dir, "attach": attach, "env": env}
    options["progress"] = progress
    if work_dir is not None:
        return await _Rig(loaded, work_dir, **options).run()
    with tempfile.TemporaryDirectory(prefix="plantd-hil-") as temporary:
        return await _Rig(loaded, Path(temporary), **options).run()


class _Rig:
    def __init__(
        self,
        loaded: LoadedScenario,
        work_dir: Path,
        *,
        config_dir: Path | None,
        attach: bool,
        env: Mapping[str, str] | None,
        progress: Callable[[StepResult], None] | None,
    ) -> None:
        self.loaded = loaded
        self.scenario = loaded.scenario
        self.work_dir = work_dir
        self.config_dir = config_dir
        self.attach = attach
        self.env = env
        self.progress = progress
        self.trace = Trace(self.scenario.trace)
        self.result = ScenarioResult(
            loaded.name, self.scenario.source, time.time(), trace=self.trace
        )
        self.sims: dict[str, SimRunner] = {}
        self.stack: RigStack | None = None
        self.recorder: BusRecorder | None = None
        self.client: AsyncClient | None = None
        self._t0: float | None = None

    def now(self) -> float:
        """Scenario time: seconds since the first step (0 during setup)."""
        return 0.0 if self._t0 is None else time.monotonic() - self._t0

    async def run(self) -> ScenarioResult:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.scenario.timeout):
                await self._run()
        except TimeoutError:
            self.result.setup_error = f"the scenario ran out of time ({self.scenario.timeout:g} s)"
        except (PlantdError, RuntimeError, OSError) as exc:
            self.result.setup_error = f"{type(exc).__name__}: {exc}"
        finally:
            self.result.duration = time.monotonic() - started
            if self.stack is not None:
                self.result.logs = {n: t[-_LOG_TAIL:] for n, t in self.stack.logs().items()}
        return self.result

    async def _run(self) -> None:
        throwaway = self.config_dir is None
        if self.scenario.stack is not None or not throwaway:
            self.stack = RigStack(
                self.work_dir, config_dir=self.config_dir, attach=self.attach, env=self.env
            )
        run_dir = self.work_dir / "run"
        if self.stack is not None and not throwaway:
            run_dir = _normalised(self.stack.config.paths.run)  # the modules' own pty links
        async with contextlib.AsyncExitStack() as exits:
            for file in self.loaded.simulators:
                runner = SimRunner(file, run_dir=run_dir, free_ports=throwaway)
                await exits.enter_async_context(runner)
                for device in runner.bindings:
                    self.sims[device] = runner
            if self.stack is not None:
                await self._start_stack(exits, self.stack)
            group = await exits.enter_async_context(asyncio.TaskGroup())
            samplers = [group.create_task(self._sample_sims())]
            if self.recorder is not None:
                samplers.append(group.create_task(self.recorder.run()))
            exits.callback(lambda: [task.cancel() for task in samplers])
            self._t0 = time.monotonic()
            await self._steps()

    async def _start_stack(self, exits: contextlib.AsyncExitStack, stack: RigStack) -> None:
        modules = list(self.loaded.modules.values())
        if stack.throwaway:
            for info in modules:
                endpoint = None
                if info.device is not None:
                    endpoint = self.sims[info.device].binding(info.device).describe()
                stack.add_module(info.name, info.path, endpoint)
        exits.push_async_callback(stack.stop)
        config = stack.config
        self.recorder = BusRecorder(config.bus.backend, self.trace, self.now)
        exits.callback(self.recorder.close)
        state = self.scenario.stack.state if self.scenario.stack is not None else True
        await stack.start([info.name for info in modules], state=state)
        self.client = await exits.enter_async_context(
            AsyncClient.from_config(config.broker.endpoint, config.client)
        )

    async def _sample_sims(self) -> None:
        """Trace simulated values (those the trace patterns name) at the simulators' tick."""
        wanted = [
            (runner, key)
            for runner in {id(r): r for r in self.sims.values()}.values()
            for key in runner.plant.values
            if self.trace.wants("sim", key)
        ]
        if not wanted:
            return
        last: dict[str, Any] = {}
        while True:
            for runner, key in wanted:
                value = runner.plant.values[key]
                if last.get(key, object()) != value:
                    last[key] = value
                    self.trace.add(self.now(), "sim", key, value)
            await asyncio.sleep(0.1)

    async def _steps(self) -> None:
        failed = False
        for index, step in enumerate(self.scenario.steps):
            result = StepResult(index + 1, step.action, step.describe(), self.now())
            if failed and not self.scenario.keep_going:
                result.status = "skipped"
            else:
                self.trace.mark(result.t, f"{index + 1}: {result.description}")
                try:
                    outcome = await self._step(step)
                except (PlantdError, ValueError) as exc:
                    outcome = Outcome(False, f"{type(exc).__name__}: {exc}")
                    result.status = "error"
                else:
                    result.status = "passed" if outcome.ok else "failed"
                if not outcome.ok and step.action == "expect":
                    outcome = Outcome(False, outcome.message + self._hint(step))
                result.message = outcome.message
                result.duration = self.now() - result.t
                failed = failed or result.status != "passed"
                if step.action == "expect":
                    self.trace.mark(self.now(), f"{index + 1}: {result.status}", outcome.ok)
            self.result.steps.append(result)
            if self.progress is not None:
                self.progress(result)

    async def _step(self, step: Step) -> Outcome:
        if step.wait is not None:
            await asyncio.sleep(step.wait)
            return Outcome(True, "")
        if step.set is not None:
            device, point = _parts(step.set.point)
            self.sims[device].set(device, point, step.set.value)
            return Outcome(True, "")
        if step.inject is not None:
            await self.sims[step.inject.device].inject(step.inject)
            return Outcome(True, "")
        if step.heal is not None:
            runners = [self.sims[step.heal.device]] if step.heal.device else self._runners()
            for runner in runners:
                runner.heal(step.heal if step.heal.device else None)
            return Outcome(True, "")
        if step.write is not None:
            return await self._write(step)
        assert step.expect is not None
        probe = await self._probe(step)
        return await check_expect(step.expect, probe, self.now)

    async def _write(self, step: Step) -> Outcome:
        assert step.write is not None
        module, point = _parts(step.write.point)
        client = self._client()
        params = {"point": point, "value": step.write.value}
        try:
            result = await call_async(client, f"org.plantd.module.{module}", "write", params)
        except ServiceError as exc:
            if step.write.error == exc.code:
                return Outcome(True, f"refused as expected: {exc.message}")
            return Outcome(False, f"write refused: {exc.code}: {exc.message}")
        if step.write.error is not None:
            return Outcome(False, f"write accepted ({result}), expected {step.write.error}")
        return Outcome(True, f"wrote {result.get('value')!r}")

    async def _probe(self, step: Step) -> Probe:
        assert step.expect is not None
        kind, name = step.expect.target()
        if kind == "device":
            device, point = _parts(name)
            runner = self.sims[device]
            runner.key(device, point)

            def read() -> Observation:
                return Observation(self.now(), runner.get(device, point))

            return PolledProbe(f"device {name}", read)
        if kind == "point":
            if self.recorder is None:
                raise SimError("expectations on published points need a plantd stack")
            return BusProbe(self.recorder, name)
        module, point = _parts(name)
        state = StateClient(self._client())
        scope, key = f"org.plantd.module.{module}", f"value.{point}"

        async def fetch() -> Observation | None:
            try:
                entry = await state.get(scope, key)
            except ServiceError as exc:
                if exc.code in ("state.unknown-scope", "state.unknown-key"):
                    return None
                raise
            except RequestError:
                return None
            stored = entry["value"]
            if isinstance(stored, dict):
                return Observation(self.now(), stored.get("value"), stored.get("quality"))
            return Observation(self.now(), stored)

        probe = StateProbe(f"stored {scope} {key}", fetch)
        await probe.prime()
        return probe

    def _client(self) -> AsyncClient:
        if self.client is None:
            raise SimError("this step talks to plantd; the scenario has no stack")
        return self.client

    def _runners(self) -> list[SimRunner]:
        return list({id(r): r for r in self.sims.values()}.values())

    def _hint(self, step: Step) -> str:
        """For a failed expectation on a module: the end of that module's log."""
        assert step.expect is not None
        kind, name = step.expect.target()
        if kind == "device" or self.stack is None:
            return ""
        module = _parts(name)[0]
        text = self.stack.logs().get(f"module-{module}", "")
        lines = [line for line in text.splitlines() if " WARNING " in line or " ERROR " in line]
        return (
            ("\nmodule " + module + " log (warnings):\n  " + "\n  ".join(lines[-5:]))
            if lines
            else ""
        )


def _normalised(path: Path | str) -> Path:
    """``config/local/../../.plantd/run`` → ``.plantd/run``, as people expect to read it."""
    return Path(os.path.normpath(path))


def _parts(text: str) -> tuple[str, str]:
    parts = split_name(text)
    if parts is None:
        raise ConfigError([f"expected NAME.POINT, got {text!r}"])
    return parts
