"""Helpers shared by the benchmarks in ``bench/``: what machine, how to repeat, how to report.

A benchmark here is a program people run on a noisy shared machine (see
bench/README.md), so the helpers lean towards comparisons made in one run:

- :func:`machine_line` says what the figures were measured on (Python, pyzmq, libzmq, cores,
  pinning, load average);
- :func:`interleaved` runs the candidate and its baseline alternately, A B, B A, A B…, so that
  drift on the machine falls on both; :class:`Figure` and :class:`Ratio` keep every repetition
  and print the median with its spread;
- :func:`cpu_seconds` and :func:`rss_bytes` read another process's CPU time and memory from
  ``/proc``; :func:`pinned` prefixes a command with ``taskset``;
- :func:`spawn` runs a load generator in a child process with a pipe to talk to it, and
  :class:`Children` makes sure every process a benchmark starts is gone when it ends, on
  Ctrl-C and on failure too.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Protocol, TypeVar

import zmq

from plantd.testing import ManagedProcess

__all__ = [
    "BenchError",
    "Children",
    "Figure",
    "Ratio",
    "await_ready",
    "cpu_seconds",
    "exit_on_sigterm",
    "interleaved",
    "log_tail",
    "machine_info",
    "machine_line",
    "percentile",
    "pin_self",
    "pinned",
    "raise_fd_limit",
    "rss_bytes",
    "sleep_until",
    "spawn",
    "taskset_available",
    "warn",
    "write_json",
]

T = TypeVar("T")


class BenchError(RuntimeError):
    """A run went wrong (a process died, replies were missing): its figures mean nothing."""


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- the machine ------------------------------------------------------------------------------


def taskset_available() -> bool:
    """Whether ``taskset`` exists and may pin to CPU 0 here (containers may forbid it)."""
    return shutil.which("taskset") is not None and 0 in os.sched_getaffinity(0)


def pinned(argv: Sequence[str], cpus: str | None) -> list[str]:
    """``argv`` run under ``taskset -c cpus`` (unchanged when ``cpus`` is None).

    taskset execs the command, so the pid stays the command's own and every thread it starts
    (libzmq's I/O thread too) inherits the affinity.
    """
    return list(argv) if cpus is None else ["taskset", "-c", cpus, *argv]


def pin_self(cpus: set[int] | None) -> None:
    """Pin the calling process; call it before creating a ZeroMQ context so its threads follow."""
    if cpus is not None:
        os.sched_setaffinity(0, cpus)


def _cpu_list(cpus: set[int]) -> str:
    ordered = sorted(cpus)
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 1:
        return f"{ordered[0]}-{ordered[-1]}"
    return ",".join(map(str, ordered))


def machine_line(pinning: str) -> str:
    """One line naming what the figures were measured on; ``pinning`` says what was pinned."""
    affinity = os.sched_getaffinity(0)
    load1, load5, _ = os.getloadavg()
    return (
        f"machine: Python {platform.python_version()}, pyzmq {zmq.pyzmq_version()}, "
        f"libzmq {zmq.zmq_version()}, {os.cpu_count()} cores (usable {_cpu_list(affinity)}), "
        f"{platform.system()} {platform.release()}, load average {load1:.2f}/{load5:.2f}; "
        f"pinning: {pinning}"
    )


def machine_info() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "pyzmq": zmq.pyzmq_version(),
        "libzmq": zmq.zmq_version(),
        "cores": os.cpu_count(),
        "usable_cpus": sorted(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "loadavg": os.getloadavg(),
    }


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's (and so its children's) open-file soft limit towards ``wanted``."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


# -- other processes, from /proc ---------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of ``pid`` so far (``/proc/<pid>/stat``).

    The kernel scales these from its precise per-task runtime, so they are exact to one clock
    tick (usually 10 ms): measure windows of seconds, not milliseconds.
    """
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces and parentheses: split after its last ")".
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (``VmRSS`` in ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid} (a zombie?)")


def sleep_until(deadline: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``deadline``."""
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(left)


# -- repetition and statistics -----------------------------------------------------------------


def interleaved(runs: Sequence[Callable[[], T]], repeat: int) -> list[list[T]]:
    """Run each of ``runs`` ``repeat`` times, alternating the order: A B, B A, A B…

    Returns one list of results per run, in repetition order, so that result ``i`` of A and
    result ``i`` of B were measured next to each other (see :meth:`Ratio.paired`).
    """
    results: list[list[T]] = [[] for _ in runs]
    for rep in range(repeat):
        order = range(len(runs)) if rep % 2 == 0 else reversed(range(len(runs)))
        for index in order:
            results[index].append(runs[index]())
    return results


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) of ``samples``, nearest-rank on the sorted list."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))
    return ordered[rank]


class _Formatter(Protocol):
    def __call__(self, value: float) -> str: ...


def _plain(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


NAME_WIDTH = 46


@dataclass(frozen=True)
class Figure:
    """One measured quantity, every repetition kept; printed as median (min–max).

    ``key`` names it in the JSON output, ``name`` on the printed line.
    """

    key: str
    name: str
    unit: str
    values: tuple[float, ...]
    goal: str | None = None  # e.g. "< 40 MB", judged by ``passed``
    passed: bool | None = None
    note: str = ""  # printed after the figure, e.g. how it was measured
    fmt: _Formatter = field(default=_plain, compare=False)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def line(self) -> str:
        text = f"{self.name:<{NAME_WIDTH}} {self.fmt(self.median):>8} {self.unit}"
        if len(self.values) > 1:
            text += f"  ({self.fmt(min(self.values))}–{self.fmt(max(self.values))})"
        text += _verdict(self.goal, self.passed)
        return text + (f"  {self.note}" if self.note else "")

    def as_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "median": self.median,
            "min": min(self.values),
            "max": max(self.values),
            "values": list(self.values),
            "goal": self.goal,
            "passed": self.passed,
            "note": self.note,
        }


@dataclass(frozen=True)
class Ratio:
    """Candidate ÷ baseline, one ratio per interleaved pair; printed as median (min–max)."""

    key: str
    name: str
    values: tuple[float, ...]
    label: str = "plantd ÷ relay"
    goal: float | None = None  # a floor: PASS when the median is at least this
    note: str = ""

    @classmethod
    def paired(
        cls, key: str, name: str, candidate: Sequence[float], baseline: Sequence[float], **kw: Any
    ) -> Ratio:
        """Ratio ``i`` is candidate ``i`` ÷ baseline ``i``: two runs measured side by side."""
        values = tuple(c / b for c, b in zip(candidate, baseline, strict=True) if b)
        return cls(key, name, values or (float("nan"),), **kw)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def passed(self) -> bool | None:
        return None if self.goal is None else self.median >= self.goal

    def line(self) -> str:
        text = f"{self.name:<{NAME_WIDTH}} {self.label} = {self.median:.2f}"
        if len(self.values) > 1:
            text += f"  ({min(self.values):.2f}–{max(self.values):.2f})"
        if self.goal is not None:
            text += _verdict(f"≥ {self.goal:g}", self.passed)
        return text + (f"  {self.note}" if self.note else "")

    def as_json(self) -> dict[str, Any]:
        return {
            "ratio": self.label,
            "median": self.median,
            "min": min(self.values),
            "max": max(self.values),
            "values": list(self.values),
            "goal": None if self.goal is None else f">= {self.goal:g}",
            "passed": self.passed,
        }


def _verdict(goal: str | None, passed: bool | None) -> str:
    if goal is None or passed is None:
        return ""
    return f"  (goal {goal})  {'PASS' if passed else 'MISS'}"


def write_json(path: Path, machine: dict[str, Any], figures: Sequence[Figure | Ratio]) -> None:
    document = {
        "machine": machine,
        "figures": {figure.key: {"name": figure.name, **figure.as_json()} for figure in figures},
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


# -- child processes ---------------------------------------------------------------------------


Child = TypeVar("Child", ManagedProcess, BaseProcess)


class Children:
    """Every process a benchmark starts, stopped when the ``with`` block ends however it ends.

    ``stop()`` also ends them early (between repetitions). Processes get SIGTERM first, then
    SIGKILL if they do not go within ``grace`` seconds.
    """

    def __init__(self, grace: float = 3.0) -> None:
        self.grace = grace
        self._alive: list[ManagedProcess | BaseProcess] = []

    def add(self, child: Child) -> Child:
        self._alive.append(child)
        return child

    def stop(self) -> None:
        """Stop them all, the last started first (clients before workers before the broker)."""
        children, self._alive = self._alive, []
        for child in reversed(children):
            _terminate(child, self.grace)

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _terminate(child: ManagedProcess | BaseProcess, grace: float) -> None:
    """SIGTERM, wait up to ``grace``, then SIGKILL."""
    if isinstance(child, ManagedProcess):
        child.terminate(timeout=grace)
        return
    if child.is_alive():
        child.terminate()
        child.join(grace)
        if child.is_alive():
            child.kill()
            child.join(grace)
    child.close()


# Children fork from a server process that never made a ZeroMQ context (forking a process
# that has one is unsafe), and start in milliseconds: the server has imported __main__ already.
_PROCESSES = multiprocessing.get_context("forkserver")


def spawn(children: Children, target: Callable[..., None], *args: Any) -> Connection:
    """Run ``target(*args, conn)`` in a child process; return this end of the pipe ``conn``.

    ``target`` must be a module-level function of the benchmark script (it is found by name).
    """
    ours, theirs = _PROCESSES.Pipe()
    process = _PROCESSES.Process(target=target, args=(*args, theirs), daemon=True)
    process.start()
    children.add(process)
    theirs.close()
    return ours


def await_ready(conns: Sequence[Connection], *, what: str, timeout: float = 30.0) -> None:
    """Wait for one message (any) from each child: it has set up and is ready to go."""
    deadline = time.monotonic() + timeout
    for conn in conns:
        if not conn.poll(max(0.0, deadline - time.monotonic())):
            raise BenchError(f"a {what} process did not get ready within {timeout:g} s")
        conn.recv()


def await_reply(conn: Connection, *, what: str, timeout: float = 30.0) -> Any:
    """The first message of a child that says what it set up (the ports it listens on)."""
    if not conn.poll(timeout):
        raise BenchError(f"a {what} process did not get ready within {timeout:g} s")
    return conn.recv()


def log_tail(process: ManagedProcess, lines: int = 20) -> str:
    """The end of a process's log, indented, to append to an error message."""
    text = process.log_text().splitlines()[-lines:]
    return "\n".join(f"  | {line}" for line in text) or "  | (no output)"


@contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into ``SystemExit`` so that ``finally`` and ``with`` clean up."""

    def handle(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def warn(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
