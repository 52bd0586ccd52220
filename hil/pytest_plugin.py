"""pytest fixtures for HIL tests: simulators, a throwaway plantd stack, scenarios — in a few lines.

Enable it in your project's top-level ``conftest.py``::

    pytest_plugins = ["hil.pytest_plugin"]

(It is deliberately not registered as a ``pytest11`` entry point: installing plantd must not
add fixtures to every test suite in the environment.) Then::

    def test_the_level_rises(hil_sim, hil_stack):
        sim = hil_sim("hil/plants/pump-station.yaml")            # free ports, a private pty
        hil_stack.start({"field": "config/local/modules.d/field.yaml"},
                        connect={"field": sim.endpoint("field")})
        sim.set("field", "tank_level", 2.0)
        assert hil_stack.read("field", "tank_level")["quality"] == "good"
        sim.inject(device="field", unit=2, fault="silent")

    def test_closed_loop(hil_scenario):
        result = hil_scenario("hil/scenarios/closed-loop.yaml")
        assert result.passed, result.report()

The fixtures are synchronous and work in plain and in asyncio tests alike: simulators and the
stack's bookkeeping run on an event loop in a thread of their own, so a test that blocks does
not stall the devices. Everything started is stopped at the end of the test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hil.scenario import ScenarioResult, load_scenario, run_scenario, write_trace
from hil.scenario._stack import RigStack
from hil.sim import Fault, Heal, SimRunner, load_sim_file
from plantd.client import Client
from plantd.config import parse_dataclass
from plantd.service import call

__all__ = ["HilStack", "LoopThread", "SimHandle", "hil_scenario", "hil_sim", "hil_stack"]

T = TypeVar("T")


class LoopThread:
    """An event loop in a daemon thread; :meth:`run` runs a coroutine there and waits for it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="hil")
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class SimHandle:
    """A running simulator file, driven from the test's thread."""

    def __init__(self, runner: SimRunner, loop: LoopThread) -> None:
        self.runner = runner
        self._loop = loop

    def endpoint(self, device: str) -> dict[str, Any]:
        """Where ``device`` listens: ``{transport, host, port}`` or ``{transport, device}``."""
        return self.runner.binding(device).describe()

    def get(self, device: str, point: str) -> Any:
        return self._call(lambda: self.runner.get(device, point))

    def set(self, device: str, point: str, value: Any) -> None:
        self._call(lambda: self.runner.set(device, point, value))

    def inject(self, given: Fault | None = None, /, **fields: Any) -> None:
        """``inject(device="field", unit=2, fault="silent")`` or ``inject(Fault(...))``.

        The keywords are the keys of a scenario's ``inject`` step, checked the same way
        (:class:`~plantd.errors.ConfigError` names what is wrong); :class:`~hil.sim.SimError`
        if the fault does not fit the device. (The Fault is positional-only so that the
        ``fault=`` keyword names the fault's kind, as documented.)
        """
        if given is not None and fields:
            raise TypeError("inject() takes a Fault or keywords, not both")
        fault = given if given is not None else parse_dataclass(Fault, fields, source="inject()")
        self._loop.run(self.runner.inject(fault))

    def heal(self, device: str | None = None, unit: int | None = None) -> None:
        self._call(lambda: self.runner.heal(Heal(device=device, unit=unit)))

    def _call(self, function: Callable[[], T]) -> T:
        async def call_there() -> T:
            return function()

        return self._loop.run(call_there())


class HilStack:
    """A throwaway plantd stack (broker, state service, modules) as real processes."""

    def __init__(self, work_dir: Path, loop: LoopThread) -> None:
        self.rig = RigStack(work_dir)
        self._loop = loop
        self.started = False

    @property
    def config_dir(self) -> Path:
        return self.rig.config_dir

    @property
    def endpoint(self) -> str:
        return self.rig.config.broker.endpoint

    def start(
        self,
        modules: Mapping[str, Path | str] | Sequence[Path | str] = (),
        *,
        connect: Mapping[str, Mapping[str, Any]] | None = None,
        state: bool = True,
    ) -> None:
        """Start the broker, the state service and ``modules`` (name → module file, or files
        named after their module); ``connect`` maps a module name to the simulated device
        endpoint (:meth:`SimHandle.endpoint`) its connection is rewritten to."""
        named = modules if isinstance(modules, Mapping) else {Path(m).stem: m for m in modules}
        for name, path in named.items():
            self.rig.add_module(name, Path(path), (connect or {}).get(name))
        self.started = True
        self._loop.run(self.rig.start(list(named), state=state))

    def client(self, **settings: Any) -> Client:
        """A sync MDP client of this stack's broker (use as a context manager)."""
        config = self.rig.config.client
        return Client.from_config(self.endpoint, config, **settings)

    def read(self, module: str, point: str | None = None) -> Any:
        """Last values of a module (every point, or one) as its ``read`` operation gives them."""
        with self.client() as client:
            values = call(client, f"org.plantd.module.{module}", "read")
        return values if point is None else values[point]

    def write(self, module: str, point: str, value: Any) -> Any:
        with self.client() as client:
            return call(
                client, f"org.plantd.module.{module}", "write", {"point": point, "value": value}
            )

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{text}" for name, text in self.rig.logs().items())

    def stop(self) -> None:
        if self.started:
            self._loop.run(self.rig.stop())


@pytest.fixture
def hil_loop() -> Iterator[LoopThread]:
    """The event loop (in its own thread) the other hil fixtures run on."""
    loop = LoopThread()
    yield loop
    loop.close()


@pytest.fixture
def hil_sim(hil_loop: LoopThread, tmp_path: Path) -> Iterator[Callable[[Path | str], SimHandle]]:
    """Start a simulator file on free ports (pty links in the test's temporary directory)."""
    running: list[tuple[asyncio.Event, concurrent.futures.Future[None]]] = []

    def start(path: Path | str) -> SimHandle:
        runner = SimRunner(load_sim_file(Path(path)), run_dir=tmp_path / "run", free_ports=True)
        ready, stop = threading.Event(), asyncio.Event()

        async def serve() -> None:  # one task owns the simulator from start to stop
            async with runner:
                ready.set()
                await stop.wait()

        lifetime = asyncio.run_coroutine_threadsafe(serve(), hil_loop.loop)
        while not ready.wait(0.05):
            if lifetime.done():
                lifetime.result()  # it failed to start: raise why
        running.append((stop, lifetime))
        return SimHandle(runner, hil_loop)

    yield start
    for stop, lifetime in reversed(running):
        hil_loop.loop.call_soon_threadsafe(stop.set)
        lifetime.result(timeout=30)


@pytest.fixture
def hil_stack(
    hil_loop: LoopThread, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[HilStack]:
    """A throwaway plantd stack; call ``.start(...)``. Its logs are printed if the test fails."""
    stack = HilStack(tmp_path / "stack", hil_loop)
    yield stack
    stack.stop()
    if request.node.stash.get(_FAILED, False):
        print(stack.logs())


@pytest.fixture
def hil_scenario(hil_loop: LoopThread, tmp_path: Path) -> Callable[..., ScenarioResult]:
    """Run a scenario file against a throwaway stack (keyword arguments go to
    :func:`~hil.scenario.run_scenario`); its trace is written to ``tmp_path/trace``, and
    ``result.report()`` says what happened."""

    def run(path: Path | str, **options: Any) -> ScenarioResult:
        loaded = load_scenario(Path(path))
        work_dir = tmp_path / loaded.name
        work_dir.mkdir(parents=True, exist_ok=True)
        result = hil_loop.run(run_scenario(loaded, work_dir=work_dir, **options), timeout=900)
        result.artifacts += write_trace(result, tmp_path / "trace")
        return result

    return run


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_FAILED] = True
    return report
