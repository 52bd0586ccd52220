"""``plant up``: the local appliance stack in the foreground, for a checkout or a demo.

Starts the processes systemd starts on the appliance (the broker; then the state service, the
logger, the historian, the Echo worker, the modules, plantd-control with its alarms and loops,
and the proxy with its web app), each as
its own child process with the same ``--config``, restarts any that dies (with capped
backoff, as systemd's ``Restart=`` would), and stops them all in reverse order on Ctrl-C or
SIGTERM.

A child that exits 2 (``CONFIG_ERROR``: its file is wrong, a key is missing) would fail the
same way again, so it is not restarted (systemd's ``RestartPreventExitStatus=2``): its error is
shown once (plant up forwards each child's stderr and keeps its last lines), the others go on,
and plant up exits 2 at the end naming it and why. Without the broker nothing can work, so a
broker that exits 2 stops the stack.

One stack per data directory: plant up holds an exclusive ``flock`` on
``<paths.data>/plant-up.lock`` while it runs, so a second one on the same directory (which
would join the first one's broker and fight over its databases) is refused. The kernel drops
the lock when the process dies, however it dies: there is no stale lock to clean up.

For a demo or a HIL bench, the config directory may also hold simulator files in ``sim.d/``
(``plant sim run FILE`` each, started right after the broker so their devices are there when
the modules start) and module files in ``modules.d/``: one module host for all of them
(``plant module host``), as on the appliance, and one ``plant module run NAME`` for each file
with ``isolated: true``; and one ``plantd-sink NAME`` for each file of ``sinks.d/``.

While it runs, ``modules.d/`` and ``sinks.d/`` are watched: a file added, changed or removed is
applied within a second, touching only the children it concerns, and a bad one is refused with
``plant config check``'s ``file:line`` errors while the running instance keeps running
(:mod:`plantd.cli._watch`, docs/reload.md). SIGHUP (``plant reload``) makes it look at once.
"""

from __future__ import annotations

import argparse
import collections
import fcntl
import os
import pwd
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plantd._entry import CONFIG_ERROR
from plantd._parent import PARENT_ENV
from plantd.cli._common import OUTPUT_OPTIONS, cli_config
from plantd.cli._watch import HOST, Watch
from plantd.config import PlantdConfig
from plantd.reconfigure import Snapshot, snapshot
from plantd.security import KeySet, local_principals

__all__ = ["register"]

_RESTART_MAX = 10.0
LOCK_FILE = "plant-up.lock"  # in paths.data
_TAIL_LINES = 20  # of a child's stderr, kept to say why it stopped


@dataclass
class _Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restart_at: float = 0.0
    delay: float = 0.5
    started: float = field(default=0.0)
    stopped_because: str | None = None  # set when it exited 2: not restarted
    tail: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=_TAIL_LINES)
    )
    forwarder: threading.Thread | None = None

    def start(self) -> None:
        # A session of its own: Ctrl-C in the terminal reaches only `plant up`, which then
        # stops the children in order, instead of all of them at once (and racing restarts).
        # It also stops when `plant up` dies, SIGKILL included (plantd._parent).
        environ = {**os.environ, PARENT_ENV: str(os.getpid())}
        self.process = subprocess.Popen(
            self.argv, start_new_session=True, stderr=subprocess.PIPE, env=environ
        )
        self.started = time.monotonic()
        self.tail.clear()
        self.forwarder = threading.Thread(
            target=_forward_stderr, args=(self.process, self.tail), daemon=True
        )
        self.forwarder.start()

    def last_error(self) -> str:
        """The last line of what it wrote on stderr before it exited (its own error)."""
        if self.forwarder is not None:
            self.forwarder.join(timeout=2.0)  # EOF follows the exit; a grandchild may hold it
        lines = [line for line in self.tail if line.strip()]
        return lines[-1].strip() if lines else "no message"


def _forward_stderr(process: subprocess.Popen[bytes], tail: collections.deque[str]) -> None:
    """Copy a child's stderr to ours as it comes, keeping its last lines."""
    assert process.stderr is not None
    with process.stderr:
        for line in process.stderr:
            tail.append(line.decode(errors="replace"))
            try:
                sys.stderr.buffer.write(line)
                sys.stderr.flush()
            except (OSError, ValueError):
                pass  # our stderr is gone: keep draining, or the child would block on it


def register(sub: Any) -> None:
    up = sub.add_parser(
        "up",
        parents=[OUTPUT_OPTIONS],
        help="run the local stack (broker, services) in the foreground",
    )
    up.set_defaults(run=_run_up)


def _stack(config_args: list[str], config_dir: Path | None, files: Snapshot) -> dict[str, _Child]:
    """The children to start, in order, by key (the module host's is ``host``; the others'
    keys are their names: ``module NAME``, ``sink NAME``, ...)."""
    python = sys.executable
    cli = [python, "-m", "plantd.cli", *config_args]
    sims = _visible_yaml(config_dir / "sim.d") if config_dir else []
    hosted = sorted(files.of("host"))
    children = [
        _Child("broker", [python, "-m", "plantd.broker", *config_args]),
        *(_Child(f"sim {path.stem}", [*cli, "sim", "run", str(path)]) for path in sims),
        _Child("state", [python, "-m", "plantd.state", *config_args]),
        _Child("logger", [python, "-m", "plantd.logger", *config_args]),
        _Child("historian", [python, "-m", "plantd.historian", *config_args]),
        # After the historian (as on the appliance), before the modules whose data they take.
        *(_child(f"sink {name}", [name], config_args) for name in sorted(files.of("sink"))),
        _Child("echo", [*cli, "serve", "echo"]),
        *([_child(HOST, hosted, config_args)] if hosted else []),
        *(_child(f"module {name}", [name], config_args) for name in sorted(files.of("module"))),
        _Child("control", [python, "-m", "plantd.control", *config_args]),
        # Last: the web app is ready when the services it shows are.
        _Child("proxy", [python, "-m", "plantd.proxy", *config_args]),
    ]
    return {HOST if child.name.startswith("modules ") else child.name: child for child in children}


def _child(key: str, names: list[str], config_args: list[str]) -> _Child:
    """The child that runs the modules or the sink of ``key`` (at start, and for the watch)."""
    python = sys.executable
    cli = [python, "-m", "plantd.cli", *config_args]
    if key == HOST:
        return _Child(" ".join(["modules", *names]), [*cli, "module", "host"])
    kind, name = key.split(" ", 1)
    if kind == "sink":
        return _Child(key, [python, "-m", "plantd.sinks", *config_args, name])
    return _Child(key, [*cli, "module", "run", name])


def _visible_yaml(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if not p.name.startswith("."))


def lock_data_dir(data: Path) -> int | None:
    """Take the data directory for this stack: the lock's fd (keep it open for as long as the
    stack runs), or None if another process holds it."""
    fd = os.open(data / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())  # for the message a second plant up prints
    return fd


def _holder(data: Path) -> str:
    try:
        pid = (data / LOCK_FILE).read_text().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "another process"


def _run_up(args: argparse.Namespace) -> int:
    config = cli_config(args)  # validate before starting anything
    config_args = ["--config", str(config.source_dir)] if config.source_dir else []
    data = Path(config.paths.data)
    try:
        for directory in (data, config.paths.run):
            Path(directory).mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # as a user, the built-in /var/lib/plantd and /run/plantd are root's
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        print(
            f"plant up: cannot make {exc.filename}: {reason}; give a config directory whose "
            "paths.data and paths.run you may write (in a checkout: make run, or "
            "--config config/local)",
            file=sys.stderr,
        )
        return CONFIG_ERROR
    lock = lock_data_dir(data)
    if lock is None:
        print(
            f"plant up: a stack is already running on {data} (plant up, {_holder(data)}); "
            "a second one would join its broker. Stop that one first (Ctrl-C in its "
            "terminal), or use another --config whose paths.data and endpoints differ.",
            file=sys.stderr,
        )
        return 1
    try:
        return _run_stack(config, config_args)
    finally:
        os.close(lock)


def _run_stack(config: PlantdConfig, config_args: list[str]) -> int:
    if config.security.enabled:
        # Every process of the stack needs its key, and you one to command it: make those
        # that are missing (a throwaway set for a checkout; see docs/security.md).
        login = pwd.getpwuid(os.geteuid()).pw_name
        made = KeySet(config).init(local_principals(config.source_dir), [login])
        if made:
            where = config.security.keys_dir(config.source_dir)
            print(f"plant up: made {len(made)} key(s) in {where} (you: user.{login}, admin)")
        web = _web_login(config, f"user.{login}")
    else:
        web = "  (the web app needs security.mode curve: its people are key-ring principals)\n"
    config_dir = config.source_dir.absolute() if config.source_dir else None
    files = snapshot(config_dir) if config_dir else Snapshot()
    children = _stack(config_args, config_dir, files)
    retiring: list[tuple[_Child, float]] = []  # stopped by the watch: (child, when to kill)
    watch = _watch(config, config_args, config_dir, files, children, retiring=retiring)
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def look(signum: int, frame: object) -> None:
        if watch is not None:  # without a config directory, there is nothing to look at
            watch.wake()

    signal.signal(signal.SIGHUP, look)  # plant reload: look at modules.d/ and sinks.d/ now
    for child in list(children.values()):
        child.start()
        time.sleep(0.3)  # the broker binds first; the others would only retry meanwhile
    print(
        f"plantd stack up (broker {config.broker.endpoint}). Try, in another terminal:\n"
        f"  {_plant(config_args)} mmi workers\n"
        f"  {_plant(config_args)} echo hello\n"
        + _demo_hints(list(children.values()), config_args)
        + web
        + "Ctrl-C stops everything.",
        flush=True,
    )
    while not stopping.wait(0.2):
        now = time.monotonic()
        if watch is not None:
            watch.tick(now)  # children it starts are supervised below like the others
            retiring[:] = [(c, kill_at) for c, kill_at in retiring if not _gone(c, kill_at, now)]
        for child in list(children.values()):
            _supervise(child, now)
        if _hopeless(list(children.values())):
            break
    # Reverse order, each gone before the next: modules and services leave the broker first.
    for child in [c for c, _ in retiring] + list(reversed(children.values())):
        _stop(child)
    return _summary(list(children.values()))


def _stop(child: _Child) -> None:
    """Stop it and wait for it (SIGTERM; SIGKILL after 10 s)."""
    if child.process is None:
        return
    if child.process.poll() is None:
        child.process.terminate()
    try:
        child.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.process.kill()
        child.process.wait()


def _gone(child: _Child, kill_at: float, now: float) -> bool:
    """Whether a child the watch stopped has exited (reaped); SIGKILL once ``kill_at`` passed."""
    assert child.process is not None
    if child.process.poll() is not None:
        return True
    if now >= kill_at:
        child.process.kill()
    return False


def _watch(
    config: PlantdConfig,
    config_args: list[str],
    config_dir: Path | None,
    files: Snapshot,
    children: dict[str, _Child],
    *,
    retiring: list[tuple[_Child, float]],
) -> Watch[_Child] | None:
    """The file watch on modules.d/ and sinks.d/ (none without a config directory)."""
    if config_dir is None:
        return None

    def make_keys() -> None:
        # Under CURVE a new module or sink needs its key, and the broker must admit it: the
        # broker re-reads the key ring on SIGHUP (it keeps running: no one is dropped).
        if not config.security.enabled:
            return
        login = pwd.getpwuid(os.geteuid()).pw_name
        if KeySet(config).init(local_principals(config_dir), [login]):
            broker = children.get("broker")
            if broker is not None and broker.process is not None:
                broker.process.send_signal(signal.SIGHUP)

    def retire(child: _Child) -> None:
        # SIGTERM, and on: a child that takes its time to stop (a sink waiting on its
        # upstream) must not hold up the others' supervision, nor the next change.
        if child.process is not None and child.process.poll() is None:
            child.process.terminate()
            retiring.append((child, time.monotonic() + 10))

    return Watch(
        config_dir,
        Path(config.paths.run),
        children,
        lambda key, names: _child(key, names, config_args),
        applied=files,
        environ=os.environ,
        stop=retire,
        before_start=make_keys,
    )


def _supervise(child: _Child, now: float) -> None:
    process = child.process
    if child.stopped_because is not None:
        return
    if process is None:
        if now >= child.restart_at:
            child.start()
        return
    code = process.poll()
    if code is None:
        if now - child.started > 30:
            child.delay = 0.5  # a healthy run resets the backoff
        return
    if code == CONFIG_ERROR:
        # It would fail the same way every few seconds, forever: say it once and leave it.
        child.stopped_because = f"exited {code} (bad configuration): {child.last_error()}"
        print(
            f"plant up: {child.name} {child.stopped_because}\n"
            f"plant up: not restarting {child.name}; the rest of the stack runs on. "
            "Fix the error above, then run plant up again.",
            file=sys.stderr,
            flush=True,
        )
        return
    print(
        f"plant up: {child.name} exited with {code}; restarting in {child.delay:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    child.process = None
    child.restart_at = now + child.delay
    child.delay = min(child.delay * 2, _RESTART_MAX)


def _hopeless(children: list[_Child]) -> bool:
    """Nothing works without the broker; and with every child stopped there is nothing to run."""
    broker_gone = any(c.name == "broker" and c.stopped_because for c in children)
    return broker_gone or all(c.stopped_because for c in children)


def _summary(children: list[_Child]) -> int:
    """Exit 2, naming each child that was stopped for bad configuration, or 0."""
    stopped = [child for child in children if child.stopped_because]
    for child in stopped:
        print(f"plant up: stopped {child.name}: {child.stopped_because}", file=sys.stderr)
    return CONFIG_ERROR if stopped else 0


def _web_login(config: PlantdConfig, principal: str) -> str:
    """How to open the web app; the first time, a password made for you (there is no
    default one: a checkout's stack gets a random one, shown once, kept only as a hash)."""
    import secrets

    from plantd.clock import SYSTEM_CLOCK
    from plantd.proxy._accounts import Accounts

    scheme = "https" if config.proxy.tls else "http"
    url = f"{scheme}://{config.proxy.listen}/"
    accounts = Accounts.from_config(config, SYSTEM_CLOCK)
    try:
        if accounts.has_password(principal):
            return f"  web app: {url}  (log in as {principal.removeprefix('user.')})\n"
        password = secrets.token_urlsafe(12)
        accounts.set_password(principal, password)
    finally:
        accounts.close()
    return (
        f"  web app: {url}  log in as {principal.removeprefix('user.')}, password {password}\n"
        f"    (made now, shown once; change it with plant proxy passwd {principal})\n"
    )


def _demo_hints(children: list[_Child], config_args: list[str]) -> str:
    """What to try with the simulated plant, when the config directory has one."""
    names = [
        name
        for child in children
        if child.name.startswith(("module ", "modules "))
        for name in child.name.split()[1:]
    ]
    sims = [child.name.split(" ", 1)[1] for child in children if child.name.startswith("sim ")]
    plant = _plant(config_args)
    hints = [f"  {plant} bus tail data.", f"  {plant} module read {names[0]}"] if names else []
    if "station" in names and "pump-station" in sims:  # the shipped demo plant
        hints += [
            f"  {plant} module write station speed_setpoint 90   # watch field.tank_level rise",
            f"  {plant} sim inject pump-station field silent --unit 2 --duration 10s",
        ]
    elif sims:
        hints.append(f"  {plant} sim status {sims[0]}")
    return "".join(hint + "\n" for hint in hints)


def _plant(config_args: list[str]) -> str:
    return " ".join([".venv/bin/plant", *config_args])
