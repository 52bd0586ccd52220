"""The module host: several modules in one process (``plant module host``).

Theory of operation. A module process is mostly the interpreter and its libraries; the module
itself is small. So by default one process runs every module of ``modules.d/`` (but those
with ``isolated: true``, which run as ``plant module run NAME`` each), and each module in it
is what ``plant module run`` would be — its own :class:`ModuleRuntime`, MDP worker
(``org.plantd.module.NAME``), bus publisher and state sync — sharing the event loop, the
ZeroMQ context and the heap. Under CURVE every module proves itself with its OWN key
(``module.NAME``): the host has no identity of its own, and each of a module's sockets is given
that module's credentials explicitly, so the broker holds each module to what it may do (serve
its service, publish its topics, write its state scope) as it holds a process.

One supervisor task per module, all children of the host's TaskGroup (open until the host
stops, so that a reload can start modules in it). A module's trouble stays its own:

- its file or driver cannot be loaded: it is *broken*, reported, and the others run (named on
  the command line, it keeps the host from starting: exit 2, as ``plant module run``);
- its key is missing: *no-key*, looked for again with backoff (``plant keys init`` makes it);
- its driver fails: the runtime deals with that as ever (bad points, reconnection);
- an exception escapes its task tree: *crashed*, logged once, and started again — a new
  driver, runtime, worker, publisher and state sync — after a capped backoff that a healthy
  run resets;
- its key file changes (``plant keys rotate``): it starts again with the new key.

What one process cannot fence: a module that blocks the event loop (a driver calling a
blocking library on it) stalls all of them until the watchdog restarts the host, and one that
exhausts memory or crashes the interpreter takes the host with it. ``isolated: true`` is for
those.

States of a hosted module (:data:`_MOVES`; each move is logged, a repeated failure once)::

    broken                              its file or driver cannot be loaded (until a
                                        reload brings a file that loads: a new module)
    starting  -> running                its worker is registered with the broker
    starting  -> no-key                 its key is missing
    starting, running -> crashed        an exception escaped its task tree
    running   -> starting               its key changed
    crashed   -> starting | no-key      after the backoff
    no-key    -> starting               its key is there
    any but broken -> stopped           the host stops, or a reload stops the module

The host is *connected* (systemd's READY=1) once no module is ``starting`` any more: each is
registered, or known not to run for now (broken, no key, crashed), which its status says.

Reload (SIGHUP, :meth:`ModuleHost.reload`): the host is handed the modules as their files are
now and compares each file's digest (SHA-256 of its bytes) with the one it runs. A module that
is new starts; one whose file changed stops (its runtime, worker and state sync end; its task
is awaited) and starts again from the new file, as a new :class:`HostedModule` (whatever its
state: running, crashed, no-key, or broken); one whose file is gone, or now says
``isolated: true``, stops and leaves the status. A module whose file is
unchanged is not touched: its runtime runs on and does not miss a sample. A new or changed file
that cannot be loaded is refused with its ``file:line`` problems, logged: the module that runs
keeps running from the file it was started with (its status says ``refused``), and a new one
is listed ``broken``. A changed file that loads to the same configuration (a comment) restarts
nothing. Reloads run one at a time, as a task of the host; one that fails is logged, and the
host runs on.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plantd._zmq import backoff_delays
from plantd.bus import BusPublisher
from plantd.clock import SYSTEM_CLOCK, Clock
from plantd.config import PlantdConfig
from plantd.errors import SecurityError
from plantd.module._commands import module_service
from plantd.module._config import ModuleConfig
from plantd.module._driver import DriverClass
from plantd.module._runtime import ModuleRuntime
from plantd.module._state_sync import StateSync
from plantd.runtime import set_within
from plantd.security import Credentials, Identity, service_identity
from plantd.service import ServiceWorker

__all__ = ["HostedModule", "ModuleHost", "ModuleLogField", "State"]

log = logging.getLogger(__name__)

_KEY_CHECK = 1.0  # seconds between looks at a running module's key file (rotation)

# The module whose task tree is running: tasks inherit it, so every log record of a module's
# runtime, worker and driver can carry its name (ModuleLogField).
_current_module: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "plantd_module", default=None
)


class State(enum.Enum):
    BROKEN = "broken"
    NO_KEY = "no-key"
    STARTING = "starting"
    RUNNING = "running"
    CRASHED = "crashed"
    STOPPED = "stopped"


_MOVES: dict[State, frozenset[State]] = {
    State.BROKEN: frozenset(),
    State.NO_KEY: frozenset({State.STARTING, State.STOPPED}),
    State.STARTING: frozenset({State.RUNNING, State.CRASHED, State.NO_KEY, State.STOPPED}),
    State.RUNNING: frozenset({State.CRASHED, State.STARTING, State.STOPPED}),
    State.CRASHED: frozenset({State.STARTING, State.NO_KEY, State.STOPPED}),
    State.STOPPED: frozenset(),
}


class ModuleLogField(logging.Filter):
    """Adds ``PLANTD_MODULE`` (the hosted module a record comes from) to log records, for the
    journal (``journalctl PLANTD_MODULE=boiler``), JSON logs and the records on the bus
    (``module``). Add it to the handlers. ``module``: the one module of the process
    (``plant module run NAME``), for records logged outside any module's task."""

    def __init__(self, module: str | None = None) -> None:
        super().__init__()
        self.module = module

    def filter(self, record: logging.LogRecord) -> bool:
        name = _current_module.get() or self.module
        if name is not None:
            record.PLANTD_MODULE = name
        return True


@dataclass(eq=False)
class HostedModule:
    """One module of the host: its file, what was loaded from it, and how it fares."""

    name: str
    path: Path
    state: State
    error: str | None = None  # why it is broken, without its key, or crashed
    module: ModuleConfig | None = None
    driver_class: DriverClass | None = None
    restarts: int = 0
    runtime: ModuleRuntime | None = None  # the current run's (the last one's once stopped)
    sink: ServiceWorker | None = None
    # Why it does not run, since it last ran well: "crashed" or "no-key" (None: it does). A
    # crash is logged once, and the recovery once it has run healthy_after seconds.
    failing: str | None = None
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    digest: str | None = None  # SHA-256 of the file's bytes as loaded (None: not read)
    # Why the file on disk is not what runs: a reload found it changed and could not load it.
    refused: str | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)  # the host, or a reload

    @property
    def principal(self) -> str:
        """The identity the module's sockets present under CURVE: ``module.NAME``."""
        return f"module.{self.name}"

    def as_status(self) -> dict[str, Any]:
        """The module's entry in the host's status: state, error, restarts, driver."""
        return {
            "state": self.state.value,
            "error": self.error,
            "restarts": self.restarts,
            "driver": self.module.driver if self.module is not None else None,
            "refused": self.refused,
        }


class ModuleHost:
    """Runs ``modules`` (:func:`plantd.module._main.load_host` reads them) until :meth:`stop`;
    :meth:`reload` (or :meth:`reload_soon`, SIGHUP's) changes them while it runs.

    ``on_change`` is called after every move of a module, and when one that crashed has run
    ``healthy_after`` seconds again (to update systemd's status line). ``clock`` times the
    restart backoff, the key checks and ``healthy_after``, and is each module runtime's clock.
    """

    def __init__(
        self,
        config: PlantdConfig,
        modules: Sequence[HostedModule],
        *,
        restart_initial: float = 0.5,
        restart_max: float = 30.0,
        key_retry_max: float = 30.0,
        healthy_after: float = 30.0,
        on_change: Callable[[ModuleHost], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.config = config
        self.clock = clock
        self.modules = {hosted.name: hosted for hosted in modules}
        self.connected = asyncio.Event()  # READY=1: no module is starting any more
        self.on_change = on_change  # called after every move (the systemd status line)
        self._restart = (restart_initial, restart_max)
        self._key_retry = (min(1.0, key_retry_max), key_retry_max)
        self._healthy_after = healthy_after
        self._stopping = asyncio.Event()
        self._tasks: asyncio.TaskGroup | None = None  # while run() runs: where modules start
        self._supervisors: dict[HostedModule, asyncio.Task[None]] = {}
        self._reloading = asyncio.Lock()  # one reload at a time
        for hosted in modules:
            if hosted.state is not State.STARTING:
                hosted.settled.set()

    # -- what it says about itself --------------------------------------------------------------

    def status(self) -> dict[str, dict[str, Any]]:
        """Each module's state, error, restarts and driver, by name."""
        return {name: hosted.as_status() for name, hosted in self.modules.items()}

    def summary(self) -> str:
        """One line for ``systemctl status``: who runs, and who does not and why."""
        by_state: dict[State, list[str]] = {}
        for name, hosted in self.modules.items():
            by_state.setdefault(hosted.state, []).append(name)
        running = by_state.get(State.RUNNING, [])
        parts = [f"module host: {len(running)} of {len(self.modules)} modules running"]
        if running:
            parts[0] += f" ({', '.join(running)})"
        for state, label in (
            (State.STARTING, "starting"),
            (State.CRASHED, "crashed, restarting"),
            (State.NO_KEY, "no key"),
            (State.BROKEN, "broken file"),
        ):
            if by_state.get(state):
                parts.append(f"{label}: {', '.join(by_state[state])}")
        refused = [name for name, hosted in self.modules.items() if hosted.refused]
        if refused:
            parts.append(f"changed file refused: {', '.join(refused)}")
        return "; ".join(parts)

    # -- lifecycle ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every module; :meth:`run` returns once they have stopped."""
        self._stopping.set()
        for hosted in self.modules.values():
            _stop_module(hosted)

    async def run(self) -> None:
        """Run and supervise every module that is not broken, and those a reload brings,
        until :meth:`stop`."""
        self._check_connected()  # nothing to wait for if no module can start
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            try:
                for hosted in self.modules.values():
                    self._start(hosted)
                await self._stopping.wait()  # a reload may start modules until then
            finally:
                self._tasks = None

    def _start(self, hosted: HostedModule) -> None:
        """Start ``hosted``'s supervisor task (a broken module has none)."""
        if hosted.state is State.BROKEN or self._tasks is None:
            return
        # A context of its own, so that the module's name goes with its tasks only.
        context = contextvars.copy_context()
        context.run(_current_module.set, hosted.name)
        task = self._tasks.create_task(self._supervise(hosted), context=context)
        self._supervisors[hosted] = task
        task.add_done_callback(lambda _: self._supervisors.pop(hosted, None))

    # -- reload ---------------------------------------------------------------------------------

    def reload_soon(self, load: Callable[[], Sequence[HostedModule]]) -> None:
        """Reload (:meth:`reload`) from what ``load()`` returns, in a task of the host, after
        any reload in progress; for a signal handler: it does not block, and a failure (of
        ``load`` too) is logged, never the host's end."""
        if self._tasks is None or self._stopping.is_set():
            log.warning("reload: the host does not run; nothing to reload")
            return
        self._tasks.create_task(self._reload_from(load))

    async def _reload_from(self, load: Callable[[], Sequence[HostedModule]]) -> None:
        async with self._reloading:
            try:
                # Loaded once the reload before has finished: it sees the files as they are.
                await self._reconcile(load())
            except Exception:  # a reload that fails leaves the modules as they were
                log.exception("reload failed; the modules run on as they were")

    async def reload(self, modules: Sequence[HostedModule]) -> None:
        """Run ``modules`` (the files as they are now) from now on, touching only what changed:
        see *Reload* in the module doc. Returns once the stopped modules have stopped and the
        new ones are started (not yet registered)."""
        async with self._reloading:
            await self._reconcile(modules)

    async def _reconcile(self, modules: Sequence[HostedModule]) -> None:
        if self._stopping.is_set():
            return
        incoming = {hosted.name: hosted for hosted in modules}
        removed = [h for name, h in self.modules.items() if name not in incoming]
        replaced: list[HostedModule] = []  # stopped, to start again from their new files
        arriving: list[HostedModule] = []  # new modules, and the new files of changed ones
        for hosted in removed:
            log.warning(
                "module %s: its file is gone or says isolated: true now; stopping it", hosted.name
            )
        for name, new in incoming.items():
            old = self.modules.get(name)
            if old is not None and new.digest == old.digest:
                old.refused = None  # a refused change undone, if any
                continue  # untouched: it runs on, sample after sample
            if new.state is State.BROKEN:
                if old is None or old.state is State.BROKEN:
                    log.error("module %s cannot run: %s", name, new.error)
                    arriving.append(new)
                elif old.refused != new.error:
                    log.error(
                        "module %s: its changed file is refused; it runs on as it was: %s",
                        name,
                        new.error,
                    )
                    old.refused = new.error
                continue
            if old is None or old.state is State.BROKEN:
                log.info("module %s: %s file; starting it", name, "new" if old is None else "fixed")
                if new.state is State.NO_KEY:
                    log.error("module %s cannot run: %s; the other modules run", name, new.error)
            elif old.module == new.module and old.driver_class is new.driver_class:
                log.info("module %s: its file changed, its configuration did not", name)
                old.digest, old.refused = new.digest, None
                continue
            else:
                log.warning("module %s: its file changed; starting it again from it", name)
                replaced.append(old)
            arriving.append(new)
        await self._stop_modules([*removed, *replaced])
        if self._stopping.is_set():
            return  # the host stops: nothing new starts
        for hosted in removed:
            del self.modules[hosted.name]
        for hosted in arriving:
            self.modules[hosted.name] = hosted  # a changed one keeps its place in the status
            if hosted.state is not State.STARTING:
                hosted.settled.set()
            self._start(hosted)
        self._check_connected()
        restarted = {hosted.name for hosted in replaced}
        log.info(
            "reload: %d started, %d restarted, %d stopped, %d broken, %d refused; "
            "the others untouched",
            sum(1 for h in arriving if h.name not in restarted and h.state is not State.BROKEN),
            len(replaced),
            len(removed),
            sum(1 for h in arriving if h.state is State.BROKEN),
            sum(1 for hosted in self.modules.values() if hosted.refused),
        )
        if self.on_change is not None:
            self.on_change(self)

    async def _stop_modules(self, modules: Sequence[HostedModule]) -> None:
        """Stop ``modules`` and wait until their tasks have ended (their workers said goodbye,
        their drivers are closed)."""
        tasks = []
        for hosted in modules:
            _stop_module(hosted)
            if (task := self._supervisors.get(hosted)) is not None:
                tasks.append(task)
        if tasks:
            await asyncio.wait(tasks)

    # -- one module -----------------------------------------------------------------------------

    async def _supervise(self, hosted: HostedModule) -> None:
        restart_delays = backoff_delays(*self._restart)
        key_delays = backoff_delays(*self._key_retry)
        while not hosted.stopping.is_set():
            try:
                identity = service_identity(self.config, hosted.principal)
                credentials = identity.credentials() if identity is not None else None
            except SecurityError as exc:
                if hosted.state is not State.NO_KEY:
                    self._move(hosted, State.NO_KEY, str(exc))
                await self._wait_stop(hosted, next(key_delays))
                continue
            key_delays = backoff_delays(*self._key_retry)
            if hosted.state is not State.STARTING:
                self._move(hosted, State.STARTING)
            started = self.clock.monotonic()
            try:
                rotated = await self._run_once(hosted, identity, credentials)
            except Exception as exc:  # supervisor edge: a module's crash is its own
                self._crashed(hosted, exc)
            else:
                if hosted.stopping.is_set():
                    break
                if rotated:
                    restart_delays = backoff_delays(*self._restart)
                    continue
                self._crashed(hosted, None)
            if self.clock.monotonic() - started >= self._healthy_after:
                restart_delays = backoff_delays(*self._restart)
            await self._wait_stop(hosted, next(restart_delays))
            hosted.restarts += 1
        self._move(hosted, State.STOPPED)

    async def _run_once(
        self, hosted: HostedModule, identity: Identity | None, credentials: Credentials | None
    ) -> bool:
        """One run of a module, until it stops (False), crashes (raises) or its key changes
        (True)."""
        assert hosted.module is not None
        assert hosted.driver_class is not None
        module = hosted.module
        driver = hosted.driver_class(module)
        bus = self.config.bus
        publisher = BusPublisher(
            bus.frontend, high_water_mark=bus.high_water_mark, credentials=credentials
        )
        try:
            runtime = ModuleRuntime(
                self.config, module, driver, publisher=publisher, clock=self.clock
            )
            sink = ServiceWorker(module_service(runtime), self.config, credentials=credentials)
            sync = StateSync(self.config, runtime, credentials=credentials)
        except BaseException:
            publisher.close()
            raise
        hosted.runtime, hosted.sink = runtime, sink
        if hosted.restarts == 0:
            log.info(
                "module %s (driver %s): %d points in %d groups; service %s",
                hosted.name,
                module.driver,
                len(runtime.table.points),
                len(module.groups),
                runtime.service,
            )
        watch = _Watch(self, hosted, sink, identity, credentials)
        await runtime.run(sink, sync, watch)
        return watch.rotated

    # -- moves ----------------------------------------------------------------------------------

    def _move(self, hosted: HostedModule, state: State, error: str | None = None) -> None:
        if state not in _MOVES[hosted.state]:
            raise AssertionError(f"module {hosted.name}: no move {hosted.state} -> {state}")
        previous, hosted.state, hosted.error = hosted.state, state, error
        if state is State.NO_KEY:
            log.error("module %s cannot run: %s; the other modules run", hosted.name, error)
            hosted.failing = "no-key"
        elif state is State.RUNNING and hosted.failing == "no-key":
            log.warning("module %s runs now: its key is there", hosted.name)
            hosted.failing = None
        elif state is State.RUNNING and hosted.failing is None:
            log.info("module %s: serving", hosted.name)
        else:
            log.debug("module %s: %s -> %s", hosted.name, previous.value, state.value)
        if state is not State.STARTING:
            hosted.settled.set()
        self._check_connected()
        if self.on_change is not None:
            self.on_change(self)

    def _crashed(self, hosted: HostedModule, exc: BaseException | None) -> None:
        reason = "its tasks ended by themselves" if exc is None else _describe(exc)
        if hosted.failing != "crashed":
            log.error(
                "module %s crashed (%s); restarting it, the other modules run on",
                hosted.name,
                reason,
                exc_info=exc,
            )
            hosted.failing = "crashed"
        else:
            log.debug("module %s crashed again: %s", hosted.name, reason)
        self._move(hosted, State.CRASHED, reason)

    def _healthy(self, hosted: HostedModule) -> None:
        """``hosted`` has run ``healthy_after`` seconds since it last started."""
        if hosted.failing == "crashed":
            log.warning("module %s runs again (%d restart(s))", hosted.name, hosted.restarts)
            hosted.failing = None
            if self.on_change is not None:
                self.on_change(self)

    def _check_connected(self) -> None:
        if self.connected.is_set():
            return
        if all(hosted.settled.is_set() for hosted in self.modules.values()):
            self.connected.set()
            if self.on_change is not None:
                # After the READY=1 that this lets through (its STATUS is the line the host
                # was started with), the line as it is now.
                asyncio.get_running_loop().call_soon(self.on_change, self)

    async def _wait_stop(self, hosted: HostedModule, seconds: float) -> None:
        await set_within(hosted.stopping, seconds, self.clock)


def _stop_module(hosted: HostedModule) -> None:
    """Ask ``hosted`` to stop: its run ends, and its supervisor starts no other."""
    hosted.stopping.set()
    if hosted.runtime is not None:
        hosted.runtime.stop()


class _Watch:
    """Runs beside a module's runtime: says when its worker registers, and restarts the
    module when its key file changes (``plant keys rotate``)."""

    def __init__(
        self,
        host: ModuleHost,
        hosted: HostedModule,
        sink: ServiceWorker,
        identity: Identity | None,
        credentials: Credentials | None,
    ) -> None:
        self.host, self.hosted, self.sink = host, hosted, sink
        self.identity, self.credentials = identity, credentials
        self.rotated = False
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        registered = asyncio.ensure_future(self.sink.connected.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait([registered, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            registered.cancel()
            stopping.cancel()
        if self._stopping.is_set():
            return
        self.host._move(self.hosted, State.RUNNING)
        clock = self.host.clock
        healthy_at: float | None = clock.monotonic() + self.host._healthy_after
        while True:
            if healthy_at is not None and clock.monotonic() >= healthy_at:
                self.host._healthy(self.hosted)
                healthy_at = None
            wait = (
                _KEY_CHECK
                if healthy_at is None
                else min(_KEY_CHECK, healthy_at - clock.monotonic())
            )
            if await set_within(self._stopping, wait, clock):
                return
            if self.identity is None:
                continue
            try:
                current = self.identity.credentials()
            except SecurityError:
                continue  # gone, or being written: the broker decides about the key in use
            if current != self.credentials:
                log.warning(
                    "module %s: its key changed; starting it again with the new one",
                    self.hosted.name,
                )
                self.rotated = True
                assert self.hosted.runtime is not None
                self.hosted.runtime.stop()
                return


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return _describe(exc.exceptions[0])
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
