"""Running a scenario: simulators in this process, a plantd stack as processes, steps in order.

    loaded = load_scenario(Path("hil/scenarios/closed-loop.yaml"))
    result = await run_scenario(loaded)            # a throwaway stack on free ports
    print(summary(result)); write_junit([result], Path("hil.xml"))

Order of events: the simulators start (free ports and a private run directory for a throwaway
stack); the bus recorder subscribes; the broker starts, then the state service and the modules
at once, and the rig waits until each has registered its service; then ``plantd-control`` if
the scenario has ``stack.control`` files (copied into a throwaway stack's ``alarms.d/``,
``calc.d/``, ``control.d/``; from ``--config DIR``, DIR's own are used). The scenario clock starts
and the steps run one after the other. After a failed expectation the remaining steps are
skipped (``keep_going: true`` runs them). Whatever happens, the stack is stopped (modules first)
and the simulators last; the processes' logs are kept in the result.

Nothing the rig does is allowed to end in a traceback: every problem becomes part of the result,
where it happened — ``setup_error`` (a simulator that cannot serve, a broker or module that does
not come up, a module file the rig cannot use), the error of the step that was running (the
scenario out of time, the rig crashing under it; the steps after it are skipped), or
``teardown_errors`` (a stop that failed). A report that omitted one would pass a broken run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from hil.scenario._control_files import install_control_files
from hil.scenario._expect import Observation, Outcome, PolledProbe, Probe, check_expect
from hil.scenario._load import LoadedScenario
from hil.scenario._observe import AlarmProbe, AuditProbe, BusProbe, BusRecorder, StateProbe
from hil.scenario._result import ScenarioResult, StepResult
from hil.scenario._schema import Expect, Step, split_name
from hil.scenario._stack import RigStack
from hil.scenario._trace import Trace
from hil.sim import SimError, SimRunner
from plantd.audit import AUDIT_SERVICE
from plantd.client import AsyncClient
from plantd.control import ALARMS_SERVICE, CONTROL_SERVICE
from plantd.errors import ConfigError, RequestError, ServiceError
from plantd.service import call_async
from plantd.state import StateClient

__all__ = ["describe_error", "run_scenario"]

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
    # A process that outlived its stop may still write a log there: the run's verdict is not
    # the temporary directory's to change (an error while removing it is ignored).
    with tempfile.TemporaryDirectory(prefix="plantd-hil-", ignore_cleanup_errors=True) as temp:
        return await _Rig(loaded, Path(temp), **options).run()


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of ``exc``, or of each distinct exception an exception group holds
    (asyncio task groups wrap what crosses them), joined with ``; ``."""
    seen: list[str] = []
    for leaf in _leaves(exc):
        text = f"{type(leaf).__name__}: {leaf}".rstrip(": ")
        if text not in seen:
            seen.append(text)
    return "; ".join(seen) or f"{type(exc).__name__} (no further detail)"


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    if isinstance(exc, asyncio.CancelledError):
        return []  # the cancellation that carried another error out, not an error itself
    return [exc]


class _StepError(Exception):
    """A step's action could not be done (as opposed to an expectation not met)."""


Phase = Literal["setup", "steps", "teardown"]


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
        self.phase: Phase = "setup"
        self._deadline: asyncio.Timeout | None = None

    def now(self) -> float:
        """Scenario time: seconds since the first step (0 during setup)."""
        return 0.0 if self._t0 is None else time.monotonic() - self._t0

    async def run(self) -> ScenarioResult:
        started = time.monotonic()
        try:
            await self._run()
        except Exception as exc:  # every problem is a result, never a traceback
            self._cut_short(self._why(exc))
        finally:
            self.result.duration = time.monotonic() - started
            if self.stack is not None:
                try:
                    self.result.logs = {n: t[-_LOG_TAIL:] for n, t in self.stack.logs().items()}
                except OSError as exc:
                    self.result.teardown_errors.append(f"reading the processes' logs: {exc}")
        return self.result

    async def _run(self) -> None:
        # The scenario's time bound covers setting up and the steps, not the teardown: a stack
        # cut off halfway through stopping would leave processes behind.
        self._deadline = asyncio.timeout(self.scenario.timeout)
        async with contextlib.AsyncExitStack() as exits:
            async with self._deadline:
                await self._setup(exits)
                self._t0 = time.monotonic()
                self.phase = "steps"
                await self._steps()
            self.phase = "teardown"

    def _why(self, exc: BaseException) -> str:
        if self._deadline is not None and self._deadline.expired():
            where = {"setup": "while the rig was set up", "steps": "during this step"}
            when = where.get(self.phase, "")
            return f"the scenario ran out of time ({self.scenario.timeout:g} s) {when}".strip()
        return describe_error(exc)

    def _cut_short(self, why: str) -> None:
        """Record ``why`` the run ended early where it happened (see the module's docstring)."""
        if self.phase == "teardown":
            self.result.teardown_errors.append(why)
            return
        if self.phase == "setup":
            self.result.setup_error = why
        steps = self.scenario.steps
        first = len(self.result.steps)
        cut = (
            "the rig could not be set up" if self.phase == "setup" else "the scenario was cut short"
        )
        for index in range(first, len(steps)):  # the steps that had not ended
            result = self._step_result(index, steps[index])
            if self.phase == "steps" and index == first:  # the one running gets the error
                result.status, result.message = "error", why
                result.duration = self.now() - result.t
            else:
                result.status = "skipped"
                result.message = f"not run: {cut}"
            self._finish(result)
        if self.phase == "steps" and first == len(steps):  # between the last step and teardown
            self.result.teardown_errors.append(why)

    async def _teardown(self, what: str, stop: Callable[[], Awaitable[None] | None]) -> None:
        """Run one part of the teardown; a failure is recorded, and the others still run."""
        try:
            done = stop()
            if done is not None:
                await done
        except Exception as exc:  # see _cut_short: the report must say it
            self.result.teardown_errors.append(f"{what}: {describe_error(exc)}")

    async def _setup(self, exits: contextlib.AsyncExitStack) -> None:
        throwaway = self.config_dir is None
        if self.scenario.stack is not None or not throwaway:
            self.stack = RigStack(
                self.work_dir, config_dir=self.config_dir, attach=self.attach, env=self.env
            )
        run_dir = self.work_dir / "run"
        if self.stack is not None and not throwaway:
            run_dir = _normalised(self.stack.config.paths.run)  # the modules' own pty links
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

    async def _start_stack(self, exits: contextlib.AsyncExitStack, stack: RigStack) -> None:
        modules = list(self.loaded.modules.values())
        if stack.throwaway:
            for info in modules:
                endpoint = None
                if info.device is not None:
                    endpoint = self.sims[info.device].binding(info.device).describe()
                stack.add_module(info.name, info.path, endpoint)
            if self.loaded.control is not None:
                install_control_files(self.loaded.control, stack.config_dir)
        exits.push_async_callback(self._teardown, "stopping the plantd stack", stack.stop)
        config = stack.config
        self.recorder = BusRecorder(config.bus.backend, self.trace, self.now)
        exits.push_async_callback(self._teardown, "closing the bus recorder", self.recorder.close)
        state = self.scenario.stack.state if self.scenario.stack is not None else True
        control = self.loaded.control is not None
        await stack.start([info.name for info in modules], state=state, control=control)
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
            result = self._step_result(index, step)
            if failed and not self.scenario.keep_going:
                result.status = "skipped"
            else:
                self.trace.mark(result.t, f"{index + 1}: {result.description}")
                try:
                    outcome = await self._step(step)
                except Exception as exc:  # an action that could not be done
                    message = str(exc) if isinstance(exc, _StepError) else describe_error(exc)
                    outcome = Outcome(False, message)
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
            self._finish(result)

    def _step_result(self, index: int, step: Step) -> StepResult:
        return StepResult(index + 1, step.action, step.describe(), self.now())

    def _finish(self, result: StepResult) -> None:
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
        if step.alarm is not None:
            action = step.alarm
            return await self._call(ALARMS_SERVICE, action.operation, action.params(), action.error)
        if step.control is not None:
            request = step.control
            service, operation = CONTROL_SERVICE, request.operation
            return await self._call(service, operation, request.params(), request.error)
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
            expected = f" (expected {step.write.error})" if step.write.error else ""
            raise _StepError(f"write refused: {exc.code}: {exc.message}{expected}") from None
        if step.write.error is not None:
            return Outcome(False, f"write accepted ({result}), expected {step.write.error}")
        return Outcome(True, f"wrote {result.get('value')!r}")

    async def _call(
        self, service: str, operation: str, params: dict[str, Any], error: str | None
    ) -> Outcome:
        """An alarm or control request; with ``error``, it must be refused with that code."""
        try:
            await call_async(self._client(), service, operation, params)
        except ServiceError as exc:
            if error == exc.code:
                return Outcome(True, f"refused as expected: {exc.message}")
            expected = f" (expected {error})" if error else ""
            raise _StepError(f"{operation} refused: {exc.code}: {exc.message}{expected}") from None
        if error is not None:
            return Outcome(False, f"{operation} accepted, expected {error}")
        return Outcome(True, "done")

    async def _alarm_probe(self, name: str) -> Probe:
        if self.recorder is None:
            raise SimError("expectations on alarms need a plantd stack")
        client = self._client()

        async def fetch() -> Observation | None:
            listed = await call_async(client, ALARMS_SERVICE, "list", {})
            records = [r for r in listed if isinstance(r, dict) and r.get("alarm") == name]
            if not records:
                raise _StepError(f"org.plantd.Alarms lists no alarm {name!r}")
            return Observation(self.now(), records[0])

        probe = AlarmProbe(self.recorder, name, fetch)
        await probe.prime()
        return probe

    async def _audit_probe(self, expect: Expect) -> Probe:
        assert expect.audit is not None
        client = self._client()
        # Every record (matched by the probe, not the query): a failure shows what there was.
        params: dict[str, Any] = {"since": self.result.started, "limit": 1000}

        async def fetch() -> list[dict[str, Any]]:
            answer = await call_async(client, AUDIT_SERVICE, "query", params)
            return [r for r in answer.get("records", []) if isinstance(r, dict)]

        probe = AuditProbe(fetch, self.now)
        await probe.prime()
        return probe

    async def _probe(self, step: Step) -> Probe:
        assert step.expect is not None
        kind, name = step.expect.target()
        if kind == "alarm":
            return await self._alarm_probe(name)
        if kind == "audit":
            return await self._audit_probe(step.expect)
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
        if kind in ("device", "audit") or self.stack is None:
            return ""
        module = "control" if kind == "alarm" else _parts(name)[0]
        if module == "calc":
            module = "control"
        process = module if module == "control" else f"module-{module}"
        text = self.stack.logs().get(process, "")
        lines = [line for line in text.splitlines() if " WARNING " in line or " ERROR " in line]
        return (f"\n{process} log (warnings):\n  " + "\n  ".join(lines[-5:])) if lines else ""


def _normalised(path: Path | str) -> Path:
    """``config/local/../../.plantd/run`` → ``.plantd/run``, as people expect to read it."""
    return Path(os.path.normpath(path))


def _parts(text: str) -> tuple[str, str]:
    parts = split_name(text)
    if parts is None:
        raise ConfigError([f"expected NAME.POINT, got {text!r}"])
    return parts
