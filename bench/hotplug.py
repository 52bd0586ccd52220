"""What live reconfiguration costs: a module file changed and SIGHUP, against restarting the host.

    python bench/hotplug.py [--quick] [--modules N] [--repeat R] [--json FILE]

Setup, once: a real stack from a throwaway config directory (broker with its endpoints bound on
wildcards and read back, state service), ``plant module host`` running N modules ``m00``…
(fake driver, one counter point each, polled every 100 ms), and a bus subscriber (a child
process, ``BusSubscriber(["data."])``) that notes every sample with its arrival time on the
monotonic clock (one clock for every process of the machine), its topic, epoch and seq.

Four operations, R repetitions each, interleaved (A B C D, D C B A, …) on the same stack:

- **hot-plug** (the new way): ``m00``'s file gets another interval (100 ms ↔ 200 ms), then
  SIGHUP to the host. Time to recover = SIGHUP → the first sample of ``m00`` from its new
  publisher (a new epoch: the module started again from the new file); the sample after it is
  checked to come at the new interval;
- **restart** (the baseline, what ``systemctl restart plantd-modules`` did before hot-plug):
  the same change, then SIGTERM to the host, wait for it to exit, start it again. Time to
  recover = SIGTERM → every module publishing again (each one's first sample of a new epoch);
  ``m00``'s own first sample is shown too;
- **add**: a new module file (``xNN``, 100 ms) and SIGHUP: SIGHUP → its first sample; then it is
  removed again (SIGHUP) so that every repetition starts with N modules;
- **broken**: a new file with a typo (``broken.yaml``) and ``m01``'s file broken the same way,
  one SIGHUP: SIGHUP → the reload's summary line in the host's log (both refused, with their
  file:line); the host must run on, ``m01`` from its old file. Then both are undone.

**Samples lost** are counted on the modules an operation should not disturb (the N-1 others
for hot-plug and restart, all N running ones for add and broken), from 0.5 s before the signal
to 1 s after recovery, per topic and between consecutive samples: within one epoch, the seq
numbers skipped; across an epoch (the module's publisher restarted: only a host restart does
that), the polls missed, from the two samples' source timestamps and the 100 ms interval. The
count of untouched modules whose epoch changed is shown too (expected 0 for all but restart).

Figures: p50 (the median, with min–max) and p95 of each time, samples lost per operation,
and per interleaved pair the ratios hot-plug ÷ restart for time to recover and samples lost,
then a one-line verdict. Nothing is pinned: a restart is interpreter start-up and imports
spread over every core, and the ratio is what is read (see bench/README.md).

``--quick``: 4 modules, one repetition (the smoke test's mode, ~15 s; a default run takes
~3–4 min). Exit status 0 whatever the figures, 1 if a run went wrong (a process died, a module
never came back: the output says which, with the end of the host's log), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    BenchError,
    Children,
    Figure,
    Ratio,
    await_reply,
    exit_on_sigterm,
    interleaved,
    log_tail,
    machine_info,
    machine_line,
    percentile,
    spawn,
    write_json,
)

from plantd.testing import ANY_PORT, ManagedProcess, start_broker, wait_for_workers, write_config

MODULES, QUICK_MODULES = 10, 4
REPEAT = 20  # nearest-rank p95 of 20 is the second largest, not the max
INTERVAL = 0.1  # every module's poll interval, s; the changed one toggles to CHANGED and back
CHANGED = 0.2
CHANGED_MODULE, BROKEN_MODULE = "m00", "m01"
BEFORE, AFTER = 0.5, 1.0  # the window samples are counted in: before the signal, after recovery
SETTLE = 1.0  # between two operations
PATIENCE = 30.0  # how long a module may take to come back before the run is called failed
POLL = 0.02  # how often the bus and the host's log are looked at

MODULE = """\
driver: fake
groups:
  - name: main
    interval: {interval}
    points:
      - {{name: count, value: 0, pattern: counter}}
"""
BROKEN = "driver: fake\ngroups:\n  - name: main\n    intervall: 1s\n"  # line 4: the typo


def module_name(index: int) -> str:
    return f"m{index:02d}"


def module_text(interval: float) -> str:
    return MODULE.format(interval=f"{round(interval * 1000)}ms")


# -- the subscriber (a child process) ---------------------------------------------------------


def run_subscriber(backend: str, conn: Connection) -> None:
    """Notes every ``data.`` sample as ``(arrival, topic, epoch, seq, timestamp)``.

    Messages: ``("after", t)`` answers the samples that arrived after ``t`` (monotonic), in
    arrival order; ``("stop",)`` ends it.
    """
    asyncio.run(_subscribe(backend, conn))


async def _subscribe(backend: str, conn: Connection) -> None:
    from plantd.bus import BusSubscriber, Sample

    subscriber = BusSubscriber(backend, ["data."])
    arrivals: list[float] = []
    seen: list[tuple[float, str, int, int, float]] = []
    asked = asyncio.Event()
    asyncio.get_running_loop().add_reader(conn.fileno(), asked.set)
    conn.send("ready")
    try:
        while True:
            message = await subscriber.receive_within(POLL)
            while message is not None:
                sample = message.payload
                if type(sample) is Sample:
                    at = time.monotonic()
                    arrivals.append(at)
                    seen.append((at, message.topic, sample.epoch, sample.seq, sample.timestamp))
                message = await subscriber.receive_within(0)
            if not asked.is_set():
                continue
            asked.clear()
            while conn.poll():
                request = conn.recv()
                if request[0] == "stop":
                    return
                conn.send(seen[bisect.bisect_right(arrivals, request[1]) :])
    finally:
        subscriber.close()


@dataclass(frozen=True)
class Seen:
    at: float  # arrival, time.monotonic()
    topic: str
    epoch: int
    seq: int
    timestamp: float  # the sample's source timestamp (the fake driver's poll), Unix seconds

    @property
    def module(self) -> str:
        return self.topic.split(".")[1]


class Bus:
    """This process's copy of what the subscriber saw, fetched as it is needed."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.seen: list[Seen] = []

    def sync(self) -> None:
        self.conn.send(("after", self.seen[-1].at if self.seen else 0.0))
        fresh = await_reply(self.conn, what="subscriber", timeout=10)
        self.seen.extend(Seen(*row) for row in fresh)

    def between(self, start: float, end: float = float("inf")) -> list[Seen]:
        return [s for s in self.seen if start <= s.at <= end]

    def last_of(self, module: str) -> Seen | None:
        return next((s for s in reversed(self.seen) if s.module == module), None)

    def wait(self, predicate: Callable[[Seen], bool], since: float, what: str) -> Seen:
        """The first sample after ``since`` that ``predicate`` takes, waited for."""
        deadline = time.monotonic() + PATIENCE
        checked = bisect.bisect_left(self.seen, since, key=lambda seen: seen.at)
        while True:
            self.sync()
            for index in range(checked, len(self.seen)):
                seen = self.seen[index]
                if seen.at >= since and predicate(seen):
                    return seen
            checked = len(self.seen)
            if time.monotonic() > deadline:
                raise BenchError(f"not seen on the bus within {PATIENCE:g} s: {what}")
            time.sleep(POLL)


def samples_lost(seen: Sequence[Seen], modules: Sequence[str]) -> tuple[int, int]:
    """Samples ``modules`` did not deliver in ``seen``, and how many of them changed epoch.

    Within an epoch a skipped seq is a lost sample; across epochs (a new publisher) the polls
    missed between the two samples' source timestamps, at INTERVAL.
    """
    lost, restarted = 0, set()
    wanted = set(modules)
    last: dict[str, Seen] = {}
    for sample in seen:
        if sample.module not in wanted:
            continue
        before = last.get(sample.topic)
        last[sample.topic] = sample
        if before is None:
            continue
        if sample.epoch == before.epoch:
            lost += max(0, sample.seq - before.seq - 1)
        else:
            restarted.add(sample.module)
            lost += max(0, round((sample.timestamp - before.timestamp) / INTERVAL) - 1)
    missing = wanted - {s.module for s in seen}
    if missing:
        raise BenchError(f"no sample at all in the window from {', '.join(sorted(missing))}")
    return lost, len(restarted)


# -- the stack ----------------------------------------------------------------------------------


class Bench:
    """The stack, the host, the subscriber, and the operations measured on them."""

    def __init__(self, base: Path, children: Children, modules: int) -> None:
        self.base, self.children = base, children
        self.modules = [module_name(i) for i in range(modules)]
        self.config_dir = write_config(
            base / "etc",
            {
                "broker": {"endpoint": ANY_PORT},
                "bus": {"frontend": ANY_PORT, "backend": ANY_PORT},
                "logging": {"level": "info", "publish": "off"},
                "paths": {"data": str(base / "data"), "run": str(base / "run")},
            },
        )
        self.modules_dir = self.config_dir / "modules.d"
        self.modules_dir.mkdir()
        for name in self.modules:
            self.write(name, module_text(INTERVAL))
        self.interval = INTERVAL  # CHANGED_MODULE's, now
        broker, bound = start_broker(self.config_dir, log_dir=base)
        children.add(broker)
        self.endpoint = bound["broker"]["endpoint"]
        state = ManagedProcess.plantd(
            ["plantd.state", "--config", str(self.config_dir)], name="state", log_dir=base
        )
        children.add(state.start())
        try:
            wait_for_workers(self.endpoint, "org.plantd.State", timeout=60)
        except TimeoutError as exc:
            raise BenchError(f"the state service did not serve:\n{log_tail(state)}") from exc
        self.processes = [broker, state]
        conn = spawn(children, run_subscriber, bound["bus"]["backend"])
        await_reply(conn, what="subscriber", timeout=60)
        self.bus = Bus(conn)
        self.host = self.start_host()
        self.until_all_publish(since=0.0, epochs={})
        self.added = 0

    def write(self, name: str, text: str) -> None:
        (self.modules_dir / f"{name}.yaml").write_text(text)

    def start_host(self) -> ManagedProcess:
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
        argv = [sys.executable, "-m", "plantd.cli", "--config", str(self.config_dir)]
        host = ManagedProcess([*argv, "module", "host"], name="host", log_dir=self.base, env=env)
        return self.children.add(host.start())

    def check_alive(self) -> None:
        for process in [*self.processes, self.host]:
            if not process.running():
                raise BenchError(f"{process.name} died:\n{log_tail(process)}")

    def until_all_publish(self, since: float, epochs: dict[str, int]) -> dict[str, Seen]:
        """Each module's first sample after ``since`` from an epoch other than ``epochs``'."""
        first: dict[str, Seen] = {}
        for name in self.modules:
            first[name] = self.bus.wait(_new_from(name, epochs.get(name)), since, f"{name} again")
        return first

    def settle(self) -> None:
        """A pause after the last operation, then every module seen publishing."""
        time.sleep(SETTLE)
        self.check_alive()
        now = time.monotonic()
        for name in self.modules:
            self.bus.wait(_new_from(name, None), now - 0.5, f"{name} publishing")

    def sighup(self) -> float:
        sent = time.monotonic()
        os.kill(self.host.pid, signal.SIGHUP)
        return sent

    def toggle(self) -> float:
        """Give CHANGED_MODULE the other interval; return it."""
        self.interval = CHANGED if self.interval == INTERVAL else INTERVAL
        self.write(CHANGED_MODULE, module_text(self.interval))
        return self.interval

    def epochs(self) -> dict[str, int]:
        self.bus.sync()
        epochs = {}
        for name in self.modules:
            last = self.bus.last_of(name)
            if last is None:
                raise BenchError(f"{name} has published nothing")
            epochs[name] = last.epoch
        return epochs

    def counted(self, start: float, modules: Sequence[str]) -> tuple[int, int]:
        """Samples lost by ``modules`` from ``start`` until ``AFTER`` from now."""
        time.sleep(AFTER)
        self.bus.sync()
        return samples_lost(self.bus.between(start), modules)

    # -- the operations -------------------------------------------------------------------

    def hotplug(self) -> dict[str, float]:
        self.settle()
        old = self.epochs()[CHANGED_MODULE]
        interval = self.toggle()
        sent = self.sighup()
        first = self.bus.wait(
            lambda s: s.module == CHANGED_MODULE and s.epoch != old,
            sent,
            f"{CHANGED_MODULE} after its change and SIGHUP",
        )
        after = self.bus.wait(
            lambda s: s.topic == first.topic and s.epoch == first.epoch and s.seq > first.seq,
            first.at,
            f"{CHANGED_MODULE}'s second sample at its new interval",
        )
        lost, restarted = self.counted(sent - BEFORE, self.others())
        self.check_alive()
        return {
            "recover_s": first.at - sent,
            "gap_s": first.timestamp - self.last_of_epoch(CHANGED_MODULE, old).timestamp,
            "new_interval_ok": float(_near(after.timestamp - first.timestamp, interval)),
            "lost": float(lost),
            "restarted": float(restarted),
        }

    def restart(self) -> dict[str, float]:
        self.settle()
        epochs = self.epochs()
        self.toggle()
        sent = time.monotonic()
        code = self.host.terminate(timeout=30)
        stopped = time.monotonic()
        if code != 0:
            raise BenchError(f"the host exited {code} on SIGTERM:\n{log_tail(self.host)}")
        self.host = self.start_host()
        first = self.until_all_publish(sent, epochs)
        lost, restarted = self.counted(sent - BEFORE, self.others())
        self.check_alive()
        last_old = self.last_of_epoch(CHANGED_MODULE, epochs[CHANGED_MODULE])
        return {
            "recover_s": max(s.at for s in first.values()) - sent,
            "changed_s": first[CHANGED_MODULE].at - sent,
            "stop_s": stopped - sent,
            "gap_s": first[CHANGED_MODULE].timestamp - last_old.timestamp,
            "lost": float(lost),
            "restarted": float(restarted),
        }

    def add(self) -> dict[str, float]:
        self.settle()
        self.added += 1
        name = f"x{self.added:02d}"
        self.write(name, module_text(INTERVAL))
        sent = self.sighup()
        first = self.bus.wait(lambda s: s.module == name, sent, f"the new module {name}")
        lost, restarted = self.counted(sent - BEFORE, self.modules)
        (self.modules_dir / f"{name}.yaml").unlink()
        offset = len(self.host.log_text())
        self.sighup()
        self.until_logged("reload: ", offset, f"the reload that removes {name}")
        self.check_alive()
        return {"first_s": first.at - sent, "lost": float(lost), "restarted": float(restarted)}

    def broken(self) -> dict[str, float]:
        self.settle()
        offset = len(self.host.log_text())
        self.write("broken", BROKEN)
        self.write(BROKEN_MODULE, BROKEN)
        sent = self.sighup()
        logged = self.until_logged("reload: ", offset, "the reload of two broken files")
        log = self.host.log_text()[offset:]
        for text in (
            "broken.yaml:4: groups[0].intervall: unknown key",
            f"module {BROKEN_MODULE}: its changed file is refused",
        ):
            if text not in log:
                raise BenchError(f"not in the host's log after the reload: {text}")
        lost, restarted = self.counted(sent - BEFORE, self.modules)
        running = self.host.running()
        self.check_alive()
        (self.modules_dir / "broken.yaml").unlink()
        self.write(BROKEN_MODULE, module_text(INTERVAL))  # the bytes it runs from: untouched
        offset = len(self.host.log_text())
        self.sighup()
        self.until_logged("reload: ", offset, "the reload that undoes the broken files")
        return {
            "logged_s": logged - sent,
            "lost": float(lost),
            "restarted": float(restarted),
            "running": float(running),
        }

    def last_of_epoch(self, module: str, epoch: int) -> Seen:
        """The last sample ``module`` published from ``epoch`` (its publisher before a change)."""
        return next(s for s in reversed(self.bus.seen) if s.module == module and s.epoch == epoch)

    def others(self) -> list[str]:
        return [name for name in self.modules if name != CHANGED_MODULE]

    def until_logged(self, text: str, offset: int, what: str) -> float:
        """When ``text`` appeared in the host's log after ``offset`` (looked for every POLL)."""
        deadline = time.monotonic() + PATIENCE
        while text not in self.host.log_text()[offset:]:
            if time.monotonic() > deadline or not self.host.running():
                raise BenchError(f"not logged by the host: {what}:\n{log_tail(self.host)}")
            time.sleep(POLL)
        return time.monotonic()

    def stop(self) -> None:
        self.bus.conn.send(("stop",))


def _new_from(module: str, epoch: int | None) -> Callable[[Seen], bool]:
    """Takes a sample of ``module`` from another epoch than ``epoch`` (any, for None)."""
    return lambda seen: seen.module == module and seen.epoch != epoch


def _near(measured: float, interval: float) -> bool:
    return abs(measured - interval) <= 0.4 * interval


# -- report -------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value * 1000:,.0f}"


def _count(value: float) -> str:
    return f"{value:g}"


def timing(key: str, name: str, values: Sequence[float]) -> Figure:
    """A time, printed in ms as p50 (the median, min–max) with its p95 after it."""
    p95 = percentile(values, 95)
    return Figure(key, name, "ms", tuple(values), note=f"p95 {_ms(p95)} ms", fmt=_ms)


def count(key: str, name: str, values: Sequence[float], *, of_all: bool = False) -> Figure:
    """A count per operation, printed as its median (min–max), and the total over all of them
    (or, with ``of_all``, as "k of R": a yes/no per operation)."""
    total = f"{sum(values):g} of {len(values)}" if of_all else f"total {sum(values):g}"
    return Figure(key, name, "", tuple(values), note=total, fmt=_count)


def report(results: dict[str, list[dict[str, float]]], others: int, n: int) -> list[Figure | Ratio]:
    hot, cold, add, broken = (results[k] for k in ("hotplug", "restart", "add", "broken"))

    def col(runs: list[dict[str, float]], key: str) -> list[float]:
        return [run[key] for run in runs]

    sections: list[tuple[str, list[Figure]]] = [
        (
            f"hot-plug: {CHANGED_MODULE}'s interval changed, SIGHUP to the host",
            [
                timing(
                    "hotplug.recover_s", "  SIGHUP → its first new sample", col(hot, "recover_s")
                ),
                timing("hotplug.gap_s", f"  gap in {CHANGED_MODULE}'s data", col(hot, "gap_s")),
                count(
                    "hotplug.new_interval_ok",
                    "  next sample at the new interval",
                    col(hot, "new_interval_ok"),
                    of_all=True,
                ),
                count(
                    "hotplug.lost", f"  samples lost per op, the {others} others", col(hot, "lost")
                ),
                count("hotplug.restarted", "  others restarted (new epoch)", col(hot, "restarted")),
            ],
        ),
        (
            "baseline: the same change, the host restarted (SIGTERM, start again)",
            [
                timing(
                    "restart.recover_s",
                    "  SIGTERM → every module publishing",
                    col(cold, "recover_s"),
                ),
                timing(
                    "restart.changed_s",
                    f"  SIGTERM → {CHANGED_MODULE}'s first new sample",
                    col(cold, "changed_s"),
                ),
                timing("restart.stop_s", "  SIGTERM → host exited", col(cold, "stop_s")),
                timing("restart.gap_s", f"  gap in {CHANGED_MODULE}'s data", col(cold, "gap_s")),
                count(
                    "restart.lost", f"  samples lost per op, the {others} others", col(cold, "lost")
                ),
                count(
                    "restart.restarted", "  others restarted (new epoch)", col(cold, "restarted")
                ),
            ],
        ),
        (
            "add: a new module file, SIGHUP",
            [
                timing("add.first_s", "  SIGHUP → its first sample", col(add, "first_s")),
                count("add.lost", f"  samples lost per op, the {n} running", col(add, "lost")),
                count("add.restarted", "  running ones restarted", col(add, "restarted")),
            ],
        ),
        (
            f"broken: a new file and {BROKEN_MODULE}'s with a typo, SIGHUP",
            [
                timing(
                    "broken.logged_s", "  SIGHUP → both refused (logged)", col(broken, "logged_s")
                ),
                count(
                    "broken.lost", f"  samples lost per op, the {n} running", col(broken, "lost")
                ),
                count("broken.restarted", "  running ones restarted", col(broken, "restarted")),
                count(
                    "broken.running",
                    "  host still running (1 = yes)",
                    col(broken, "running"),
                    of_all=True,
                ),
            ],
        ),
    ]
    figures: list[Figure | Ratio] = []
    for title, lines in sections:
        print(title + ":")
        for figure in lines:
            figures.append(figure)
            print(figure.line())
    print("ratios (per interleaved pair):")
    ratios = [
        Ratio.paired(
            "ratio.recover",
            "  time to recover",
            col(hot, "recover_s"),
            col(cold, "recover_s"),
            label="hot-plug ÷ restart",
        ),
        Ratio.paired(
            "ratio.changed",
            f"  time to {CHANGED_MODULE}'s first new sample",
            col(hot, "recover_s"),
            col(cold, "changed_s"),
            label="hot-plug ÷ restart",
        ),
        Ratio.paired(
            "ratio.lost",
            f"  samples lost per op, the {others} others",
            col(hot, "lost"),
            col(cold, "lost"),
            label="hot-plug ÷ restart",
        ),
    ]
    for ratio in ratios:
        figures.append(ratio)
        print(ratio.line())
    print(verdict(results, figures))
    return figures


def verdict(results: dict[str, list[dict[str, float]]], figures: Sequence[Figure | Ratio]) -> str:
    by_key = {figure.key: figure for figure in figures}
    quiet = all(
        run["lost"] == 0 and run["restarted"] == 0
        for key in ("hotplug", "add", "broken")
        for run in results[key]
    ) and all(run["running"] == 1 for run in results["broken"])
    hot, cold = by_key["hotplug.recover_s"].median, by_key["restart.recover_s"].median
    cold_lost = sum(run["lost"] for run in results["restart"])
    hot_lost = sum(run["lost"] for run in results["hotplug"])
    faster = cold / hot if hot > 0 else float("nan")
    return (
        f"verdict: hot-plug recovers in {_ms(hot)} ms (p50) against {_ms(cold)} ms for a "
        f"restart ({faster:.1f}× faster) and lost {hot_lost:g} samples on the untouched modules "
        f"against {cold_lost:g}; "
        + (
            "nothing untouched was lost or restarted by hot-plug, add or a broken file."
            if quiet
            else "NOT as expected: an untouched module lost samples or restarted (see above)."
        )
    )


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_MODULES} modules, once")
    parser.add_argument("--modules", type=int, default=None, help=f"default {MODULES}")
    parser.add_argument("--repeat", type=int, default=None, help=f"default {REPEAT}")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    modules = args.modules or (QUICK_MODULES if args.quick else MODULES)
    repeat = args.repeat or (1 if args.quick else REPEAT)
    if modules < 2:
        parser.error("--modules: at least 2 (one changed, one or more untouched)")
    print(machine_line("none (a restart is start-up work across every core)"))
    print(
        f"load: one `plant module host`, {modules} modules (fake driver, 1 point, "
        f"{_ms(INTERVAL)} ms; {CHANGED_MODULE} toggles {_ms(INTERVAL)} ↔ {_ms(CHANGED)} ms), "
        f"broker and state service, one bus subscriber"
    )
    print(
        f"settings: {repeat} repetition(s) of hotplug, restart, add, broken, interleaved; "
        f"samples counted from {BEFORE:g} s before the signal to {AFTER:g} s after recovery\n"
    )
    started = time.monotonic()
    try:
        with (
            exit_on_sigterm(),
            tempfile.TemporaryDirectory(prefix="plantd-bench-hotplug-") as tmp,
            Children() as children,
        ):
            bench = Bench(Path(tmp), children, modules)
            names = ("hotplug", "restart", "add", "broken")
            runs = [getattr(bench, name) for name in names]
            outcomes = interleaved(runs, repeat)
            bench.stop()
            figures = report(dict(zip(names, outcomes, strict=True)), modules - 1, modules)
    except BenchError as exc:
        print(f"hotplug benchmark: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(f"total {time.monotonic() - started:.0f} s")
    if args.json:
        write_json(args.json, machine_info(), figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
