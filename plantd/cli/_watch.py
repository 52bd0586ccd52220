"""``plant up``'s file watch: ``modules.d/`` and ``sinks.d/`` applied while the stack runs.

Every half second (and at once on SIGHUP, which ``plant reload`` sends), :class:`Watch` takes a
:func:`plantd.reconfigure.snapshot` of the config directory. When it differs from the last one
looked at, the files about to be applied are checked as ``plant config check`` checks them; a
file it finds wrong is refused (its ``file:line`` problems on stderr) and what runs keeps
running as it was. The rest is applied, touching only the children it concerns:

- a module of the module host added, changed or removed: SIGHUP to the host, which rescans
  ``modules.d/`` and restarts only that module (``plantd.module``); the host is started when it
  gets its first module and stopped when its last one goes;
- an isolated module (``isolated: true``): its ``plant module run NAME`` is started, restarted
  or stopped;
- a sink: started or stopped; a changed one gets SIGHUP (it re-reads its file, keeping its
  queue) while ``_SINKS_RELOAD`` says it can, else it is restarted.

The broker, the state service and every other child are left alone. What was applied is saved
in ``<paths.run>/applied-config.json`` (:data:`plantd.reconfigure.APPLIED_FILE`) for
``plant reload`` to compare against. See docs/reload.md.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Generic, Protocol, TextIO, TypeVar

from plantd.reconfigure import APPLIED_FILE, Entry, Plan, Snapshot, plan, refusals, snapshot

__all__ = ["HOST", "Child", "Process", "Watch", "applicable", "candidates", "refusal_lines"]

HOST = "host"  # the key of the module host's child; the others are "module NAME", "sink NAME"
LOOK_EVERY = 0.5  # seconds between two looks at the directories (the bound is 2 s)
# Whether a sink re-reads sinks.d/NAME.yaml on SIGHUP (plantd.sinks, docs/reload.md); without
# that, a changed sink is restarted (its disk queue survives a restart as well).
_SINKS_RELOAD = True


class Process(Protocol):
    """What the watch needs of a child's process (a ``subprocess.Popen``)."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...


class Child(Protocol):
    """What the watch needs of one of ``plant up``'s children (``plantd.cli._up_cmd._Child``)."""

    name: str
    stopped_because: str | None

    @property
    def process(self) -> Process | None: ...

    def start(self) -> None: ...


C = TypeVar("C", bound=Child)


def candidates(wanted: Plan, new: Snapshot) -> list[Entry]:
    """The entries of ``new`` that ``wanted`` adds or changes: the files to check."""
    names = {
        (where, name)
        for changes in (wanted.added, wanted.changed)
        for where, listed in changes.items()
        for name in listed
    }
    return [entry for entry in new.entries.values() if (entry.where, entry.name) in names]


def applicable(applied: Snapshot, new: Snapshot, refused: Mapping[str, list[str]]) -> Snapshot:
    """``new`` without its refused files: a refused changed file keeps its applied entry, a
    refused new one gets none."""
    entries = dict(new.entries)
    for key, entry in new.entries.items():
        if str(entry.path) in refused:
            if key in applied.entries:
                entries[key] = applied.entries[key]
            else:
                del entries[key]
    return Snapshot(entries)


def refusal_lines(
    prog: str, refused: Mapping[str, list[str]], applied: Snapshot, config_dir: Path
) -> list[str]:
    """What to print for the refused files: a line naming each, then its problems."""
    running = {str(entry.path) for entry in applied.entries.values()}
    lines = []
    for path, problems in refused.items():
        shown = _relative(Path(path), config_dir)
        why = "the running one keeps running" if path in running else "not started"
        lines.append(f"{prog}: refused {shown} ({why}):")
        lines += [f"  {problem}" for problem in problems]
    return lines


def catches_sighup(pid: int) -> bool:
    """Whether process ``pid`` has a SIGHUP handler yet (``SigCgt`` in /proc/PID/status). A
    child still starting has none, and SIGHUP's default action would end it: it is signalled
    once it has one. Where /proc cannot tell, yes."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGHUP - 1)))
    return True


def _relative(path: Path, config_dir: Path) -> str:
    try:
        return str(path.relative_to(config_dir))
    except ValueError:
        return str(path)


class Watch(Generic[C]):
    """Applies the changes of ``config_dir``'s ``modules.d/`` and ``sinks.d/`` to ``children``
    (``plant up``'s, by key), starting new ones made by ``make(key, names)``."""

    def __init__(
        self,
        config_dir: Path,
        run_dir: Path,
        children: dict[str, C],
        make: Callable[[str, list[str]], C],
        *,
        applied: Snapshot,
        environ: Mapping[str, str],
        stop: Callable[[C], None],
        before_start: Callable[[], None] = lambda: None,
        ready: Callable[[int], bool] = catches_sighup,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.config_dir = config_dir.absolute()
        self.applied_file = run_dir / APPLIED_FILE
        self.children = children
        self.make = make
        self.applied = applied
        self.seen = applied  # the last snapshot looked at: a refused file is reported once
        self.environ = environ
        self.stop_child = stop
        self.before_start = before_start  # e.g. make the keys of new modules and sinks
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.ready = ready  # whether a child's process (by pid) can take SIGHUP yet
        self.hangups: set[str] = set()  # children to signal once they can take it
        self.next_look = 0.0
        self.woken = False
        self.applied.save(self.applied_file)

    def wake(self) -> None:
        """Look at once (SIGHUP): safe from a signal handler, it only sets a flag."""
        self.woken = True

    def tick(self, now: float) -> None:
        """Look, if it is time (or woken), and apply what changed."""
        self._send_hangups()
        if not self.woken and now < self.next_look:
            return
        forced, self.woken = self.woken, False
        self.next_look = now + LOOK_EVERY
        new = snapshot(self.config_dir)
        if new == self.seen and not forced:
            return
        self.seen = new
        wanted = plan(self.applied, new)
        if not wanted:
            return
        self.apply(new, wanted)

    def apply(self, new: Snapshot, wanted: Plan) -> None:
        from plantd.configcheck import check_directory  # loads every driver: only when needed

        problems = check_directory(self.config_dir, self.environ).problems
        refused = refusals(problems, candidates(wanted, new))
        for line in refusal_lines("plant up", refused, self.applied, self.config_dir):
            print(line, file=self.err, flush=True)
        target = applicable(self.applied, new, refused)
        changes = plan(self.applied, target)
        if not changes:
            return
        if any(changes.added.values()):
            self.before_start()  # a new module or sink may need its key first
        self._apply_modules(changes)
        self._apply_host(changes, target)
        self._apply_sinks(changes)
        for line in changes.describe():
            print(f"plant up: {line}", file=self.out, flush=True)
        self.applied = target
        self.applied.save(self.applied_file)
        self._send_hangups()

    def _apply_modules(self, changes: Plan) -> None:
        """Isolated modules: each its own process. Removed ones first: a module that moved
        into the host leaves its own process before the host starts it."""
        for name in changes.removed.get("module", []):
            self._stop(f"module {name}")
        for name in changes.changed.get("module", []):
            self._stop(f"module {name}")
            self._start(f"module {name}", [name])
        for name in changes.added.get("module", []):
            self._start(f"module {name}", [name])

    def _apply_host(self, changes: Plan, target: Snapshot) -> None:
        if not changes.touches("host"):
            return
        hosted = sorted(target.of("host"))
        if not hosted:
            self._stop(HOST)
        elif HOST not in self.children:
            self._start(HOST, hosted)
        else:
            self.children[HOST].name = " ".join(["modules", *hosted])
            self._hangup(HOST)  # the host reconciles itself: only the modules that changed

    def _apply_sinks(self, changes: Plan) -> None:
        for name in changes.removed.get("sink", []):
            self._stop(f"sink {name}")
        for name in changes.changed.get("sink", []):
            if _SINKS_RELOAD:
                self._hangup(f"sink {name}")
            else:
                self._stop(f"sink {name}")
                self._start(f"sink {name}", [name])
        for name in changes.added.get("sink", []):
            self._start(f"sink {name}", [name])

    def _start(self, key: str, names: list[str]) -> None:
        child = self.make(key, names)
        self.children[key] = child
        child.start()

    def _stop(self, key: str) -> None:
        child = self.children.pop(key, None)
        if child is not None:
            self.stop_child(child)

    def _hangup(self, key: str) -> None:
        """SIGHUP to a child, as soon as it can take it (see :meth:`_send_hangups`)."""
        self.hangups.add(key)

    def _send_hangups(self) -> None:
        """SIGHUP to the children that wait for one and can take it now. One stopped for a bad
        file is started again instead (the file may be fixed now); one that is not running
        (waiting for its restart) reads the new files when it starts."""
        for key in sorted(self.hangups):
            child = self.children.get(key)
            process = child.process if child is not None else None
            if child is None:
                self.hangups.discard(key)
            elif child.stopped_because is not None:
                self.hangups.discard(key)
                child.stopped_because = None
                child.start()
            elif process is None or process.poll() is not None:
                self.hangups.discard(key)
            elif self.ready(process.pid):
                self.hangups.discard(key)
                process.send_signal(signal.SIGHUP)
