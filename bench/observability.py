"""What observability costs: metrics and log publishing on the Modbus load, a log flood beside a
poll loop, and how soon a record reaches ``plant logs -f``.

    python bench/observability.py [--quick | --smoke] [--repeat N] [--seconds S] [--json FILE]

Three parts, each comparing runs made in the same invocation, interleaved (A, B, B, A…):

1. **Cost of metrics and log publishing on the Modbus benchmark.** ``bench/modbus.py``'s
   ``measure()`` (ten ``plant module run`` processes polling ten simulated devices of 1,000
   points) twice per repetition: *OFF* (``metrics.enabled: false``, ``logging.publish: off``,
   no logger) and *ON* (``metrics.interval: 1s`` — harsher than the 5 s default —,
   ``logging.level`` and ``logging.publish`` at ``info``, ``plantd-logger`` running with
   ``logger.listen: 127.0.0.1:0``, and a scraper thread here fetching its ``/metrics`` every
   second, its URL read from ``<paths.run>/logger-endpoints.json``, so that collection is
   paid for too). Loads: 100 ms with every value changing (the heaviest), and 1 s steady.
   A third run of the 1 s load has ON at the default ``metrics.interval`` (5 s), to show
   what the harsher interval costs. Figure: CPU of the module processes per 1,000 points;
   ratio ON ÷ OFF, goal ≤ 1.1. Shown
   for information: the broker's and plantd-logger's CPU (read from ``/proc`` once a second)
   and the scrapes that succeeded.
2. **Logging never blocks a module's poll loop.** In one process (a child of this one): a
   :class:`~plantd.module._runtime.ModuleRuntime` with the fake driver, ten points in one
   group every 10 ms on the real clock, and ``start_telemetry(config, "module.bench")``
   publishing to a real broker's bus with a real ``plantd-logger`` storing what arrives; the
   process also writes its records to a log file, as a module writes to the journal. With
   *flood*, a thread logs 1,000 records/s at ``warning``. Lateness of each poll's start
   against its deadline (the runtime's own schedule, read when the driver's ``read`` is
   called): p50, p99, max, and the schedule's overruns, flood and no flood; ratios of the
   p50s and p99s.
   Also: flood records emitted, published and dropped in the process
   (``plantd_log_records_dropped_total``), and received and stored by the logger
   (``org.plantd.Logger`` ``status``).
3. **Record → ``plant logs -f`` latency.** A process logs a record every 50 ms through its
   telemetry; ``plant logs -f --json`` (the real command, a subprocess polling
   ``org.plantd.Logger`` after the last id every 0.25 s) follows them, and each line is
   stamped as it arrives. Latency = arrival − the record's own time; p50, p99, goal p99 < 1 s.

``--quick``: one repetition, short windows, part 1 at 100 ms only. ``--smoke``: parts 2 and 3
with tiny windows, part 1 skipped (its ten module processes take half a minute to start);
it exists for the test that checks the benchmark runs. ``--json FILE`` writes every figure.
Exit status 0 whatever the figures, 1 if a run went wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    BenchError,
    Children,
    Figure,
    Ratio,
    await_reply,
    cpu_seconds,
    exit_on_sigterm,
    interleaved,
    log_tail,
    machine_info,
    machine_line,
    percentile,
    spawn,
    write_json,
)
from modbus import measure

from plantd.testing import (
    ANY_PORT,
    ManagedProcess,
    start_broker,
    wait_for_workers,
    write_config,
)

COST_GOAL = 1.1  # ON ÷ OFF, CPU per 1,000 points: at most
LATENCY_GOAL = 1.0  # seconds, p99 record → plant logs -f
FLOOD_RATE = 1000  # records/s
POLL_INTERVAL = 0.01  # seconds, part 2's group
PROBE_EVERY = 0.05  # seconds between two records in part 3

OFF_SETTINGS: dict[str, dict[str, Any]] = {
    "metrics": {"enabled": False},
    "logging": {"publish": "off"},
}


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _cores(value: float) -> str:
    return f"{value:.3f}"


def _fmt(field: str) -> dict[str, Any]:
    """Counts print as whole numbers, cores to the thousandth; the rest as the harness does."""
    if field in COUNTS:
        return {"fmt": _count}
    return {"fmt": _cores} if field.endswith("_cores") else {}


COUNTS = {
    "polls",
    "overruns",
    "emitted",
    "published",
    "dropped",
    "received",
    "stored",
    "records",
    "scrapes",
}


def on_settings(run_dir: Path, metrics_interval: float) -> dict[str, dict[str, Any]]:
    return {
        "metrics": {"enabled": True, "interval": metrics_interval},
        "logging": {"level": "info", "publish": "info"},
        "logger": {"listen": "127.0.0.1:0"},
        "paths": {"run": str(run_dir)},
    }


# -- part 1: the Modbus load with observability off and on ---------------------------------------


def _children_running(program: str) -> list[int]:
    """Pids of this process's children whose command line runs ``python -m program``."""
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            if ppid != me:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if program.encode() in argv:
            found.append(int(entry.name))
    return found


class Watcher(threading.Thread):
    """Once a second, while a ``measure()`` runs: the CPU time of the broker and plantd-logger
    (children of this process) and, with ``scrape``, a GET of the logger's ``/metrics``."""

    def __init__(self, run_dir: Path, scrape: bool) -> None:
        super().__init__(name="bench-watcher", daemon=True)
        self.run_dir = run_dir
        self.scrape = scrape
        self.samples: dict[str, list[tuple[float, float]]] = {"broker": [], "logger": []}
        self.scrapes = 0
        self.scrape_failures = 0
        self.scraped_bytes = 0
        self._done = threading.Event()

    def stop(self) -> None:
        self._done.set()
        self.join(5)

    def run(self) -> None:
        from plantd.logger._http import read_endpoints

        while not self._done.wait(1.0):
            now = time.monotonic()
            for name, program in (("broker", "plantd.broker"), ("logger", "plantd.logger")):
                for pid in _children_running(program)[:1]:
                    with contextlib.suppress(OSError, ValueError):
                        self.samples[name].append((now, cpu_seconds(pid)))
            if not self.scrape:
                continue
            endpoints = read_endpoints(self.run_dir)
            if not endpoints or "metrics" not in endpoints:
                continue
            try:
                with urllib.request.urlopen(endpoints["metrics"], timeout=2) as reply:
                    self.scraped_bytes += len(reply.read())
                self.scrapes += 1
            except OSError:
                self.scrape_failures += 1

    def cores(self, name: str, since: float) -> float:
        """CPU cores ``name`` used between ``since`` and the last sample (NaN: unknown)."""
        samples = [s for s in self.samples[name] if s[0] >= since]
        if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
            return float("nan")
        return (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])


def cost_run(
    on: bool,
    interval: float,
    changing: bool,
    metrics_interval: float,
    *,
    seconds: float,
    warmup: float,
) -> dict[str, float]:
    """One ``measure()`` run with observability ``on`` or off, and what the watcher saw."""
    with tempfile.TemporaryDirectory(prefix="plantd-bench-obs-run-") as run_dir:
        settings = (
            on_settings(Path(run_dir), metrics_interval)
            if on
            else {**OFF_SETTINGS, "paths": {"run": run_dir}}
        )
        watcher = Watcher(Path(run_dir), scrape=on)
        watcher.start()
        try:
            result = measure(
                "plantd",
                interval,
                changing,
                seconds,
                warmup,
                settings=settings,
                companions=("plantd.logger",) if on else (),
            )
            ended = time.monotonic()
        finally:
            watcher.stop()
    window_start = ended - seconds
    result["broker_cores"] = watcher.cores("broker", window_start)
    result["logger_cores"] = watcher.cores("logger", window_start) if on else 0.0
    result["scrapes"] = float(watcher.scrapes)
    result["scrape_failures"] = float(watcher.scrape_failures)
    result["scraped_kb"] = watcher.scraped_bytes / 1000 / max(1, watcher.scrapes)
    return result


def _ceiling(ratio: Ratio, goal: float) -> Ratio:
    """``ratio`` with the verdict of a goal that is a ceiling (Ratio's own goal is a floor)."""
    verdict = "PASS" if ratio.median <= goal else "MISS"
    note = f"  (goal ≤ {goal:g})  {verdict}" + (f"  {ratio.note}" if ratio.note else "")
    return dataclasses.replace(ratio, note=note.lstrip())


def part_cost(
    loads: list[tuple[str, str, float, bool, float]], repeat: int, seconds: float, warmup: float
) -> list[Figure | Ratio]:
    print("1. Cost of metrics and log publishing on the Modbus benchmark")
    print(
        "   OFF: metrics.enabled false, logging.publish off, no plantd-logger; ON: "
        "metrics.interval 1s (harsher than the 5 s default) unless said, logging.level/publish "
        "info, "
        "plantd-logger, /metrics scraped every 1 s"
    )
    figures: list[Figure | Ratio] = []
    for load, label, interval, changing, every in loads:
        key = f"cost.{load}"
        off, on = interleaved(
            [
                lambda i=interval, c=changing, e=every: cost_run(
                    False, i, c, e, seconds=seconds, warmup=warmup
                ),
                lambda i=interval, c=changing, e=every: cost_run(
                    True, i, c, e, seconds=seconds, warmup=warmup
                ),
            ],
            repeat,
        )
        print(f"  {label}")
        for name, runs in (("OFF", off), ("ON", on)):
            rows = [
                ("polled_per_s", "points polled/s", "pt/s"),
                ("cpu_ms_per_1000", "CPU per 1,000 points (modules)", "ms"),
                ("cpu_cores", "CPU of the module processes", "cores"),
                ("broker_cores", "CPU of the broker", "cores"),
            ]
            if name == "ON":
                rows += [
                    ("logger_cores", "CPU of plantd-logger", "cores"),
                    ("scrapes", "/metrics scrapes that succeeded", ""),
                    ("scraped_kb", "size of one /metrics page", "kB"),
                ]
            for field, text, unit in rows:
                figure = Figure(
                    f"{key}.{name.lower()}.{field}",
                    f"    {name}: {text}",
                    unit,
                    tuple(run[field] for run in runs),
                    **_fmt(field),
                )
                figures.append(figure)
                print(figure.line())
        ratio = _ceiling(
            Ratio.paired(
                f"{key}.ratio.cpu_ms_per_1000",
                "    CPU per 1,000 points",
                [r["cpu_ms_per_1000"] for r in on],
                [r["cpu_ms_per_1000"] for r in off],
                label="ON ÷ OFF",
            ),
            COST_GOAL,
        )
        figures.append(ratio)
        print(ratio.line())
        if not any(r["scrapes"] for r in on):
            print("    (no /metrics scrape succeeded: plantd-logger recorded no metrics endpoint)")
    print()
    return figures


# -- the stack of parts 2 and 3: a broker and plantd-logger ---------------------------------------


class Stack:
    """A broker and plantd-logger on ports the system picks, in a temporary directory."""

    def __init__(self, base: Path, children: Children) -> None:
        self.base = base
        self.config_dir = write_config(
            base / "etc",
            {
                "broker": {"endpoint": ANY_PORT},
                "bus": {"frontend": ANY_PORT, "backend": ANY_PORT},
                "logging": {"level": "warning", "publish": "warning"},
                "logger": {"listen": ""},
                "paths": {"data": str(base / "data"), "run": str(base / "run")},
            },
        )
        broker, bound = start_broker(self.config_dir, log_dir=base)
        children.add(broker)
        self.endpoint: str = bound["broker"]["endpoint"]
        self.logger = children.add(
            ManagedProcess.plantd(
                ["plantd.logger", "--config", str(self.config_dir)], name="logger", log_dir=base
            ).start()
        )
        try:
            wait_for_workers(self.endpoint, "org.plantd.Logger", timeout=30)
        except TimeoutError as exc:
            raise BenchError(f"{exc}\n{log_tail(self.logger)}") from exc

    def logger_status(self) -> dict[str, Any]:
        from plantd.client import Client
        from plantd.service import call

        with Client(self.endpoint, timeout=5, retries=1) as client:
            status: dict[str, Any] = call(client, "org.plantd.Logger", "status")
        return status

    def settled_status(self, timeout: float = 15.0) -> dict[str, Any]:
        """The logger's status once what it received is all stored (nothing more arriving)."""
        deadline = time.monotonic() + timeout
        previous: dict[str, Any] | None = None
        while True:
            status = self.logger_status()
            if (
                previous is not None
                and status["received"] == previous["received"]
                and status["stored"] == previous["stored"]
                and not status["pending"]
            ) or time.monotonic() > deadline:
                return status
            previous = status
            time.sleep(0.5)


# -- part 2: a poll loop beside a log flood (a child process) -----------------------------------

MODULE = """driver: fake
state_interval: 1h
groups:
  - name: fast
    interval: {interval}
    points:
{points}
"""


def run_poller(
    config_dir: str, flood: bool, warmup: float, seconds: float, conn: Connection
) -> None:
    """The module's process: runtime + telemetry (+ the flood); sends what it measured."""
    conn.send(asyncio.run(_poller(Path(config_dir), flood, warmup, seconds)))


async def _poller(config_dir: Path, flood: bool, warmup: float, seconds: float) -> dict[str, Any]:
    from plantd.config import load_config
    from plantd.logs import configure_logging
    from plantd.module import parse_module_file
    from plantd.module._runtime import ModuleRuntime
    from plantd.telemetry import REGISTRY, start_telemetry
    from plantd.testing import FakeDriver, FakeModule

    config = load_config(config_dir, {})
    log_file = (config_dir.parent / f"poller-{os.getpid()}.log").open("w")
    configure_logging("warning", stream=log_file)  # as a module process writes its journal
    path = config_dir.parent / "bench-module.yaml"
    points = "\n".join(f"      - {{name: p{i}, value: {i}, pattern: counter}}" for i in range(10))
    path.write_text(MODULE.format(interval=POLL_INTERVAL, points=points))
    module = parse_module_file(path, FakeModule)
    driver = FakeDriver(module)
    runtime = ModuleRuntime(config, module, driver)
    group = module.groups[0]
    lateness: list[float] = []
    recording = False
    read = driver.read

    async def timed_read(group_: Any) -> Any:
        if recording:
            lateness.append(time.monotonic() - runtime.stats[group.name].schedule.deadline)
        return await read(group_)

    driver.read = timed_read  # type: ignore[method-assign]

    def sample(name: str, labels: dict[str, str] | None = None) -> float:
        return REGISTRY.get_sample_value(name, labels or {}) or 0.0

    telemetry = start_telemetry(config, "module.bench")
    task = asyncio.create_task(runtime.run())
    emitted = 0
    stop_flood = threading.Event()

    def flood_thread() -> None:
        nonlocal emitted
        flood_log = logging.getLogger("bench.flood")
        next_at = time.monotonic()
        while not stop_flood.is_set():
            next_at += 1 / FLOOD_RATE
            flood_log.warning("flood record %d", emitted, extra={"point": "p0", "code": "flood"})
            emitted += 1
            if (left := next_at - time.monotonic()) > 0:
                time.sleep(left)

    try:
        await asyncio.sleep(warmup)
        overruns0 = runtime.stats[group.name].schedule.overruns
        polls0 = runtime.stats[group.name].schedule.polls
        published0 = sample("plantd_log_records_published_total", {"level": "warning"})
        dropped0 = sample("plantd_log_records_dropped_total")
        flooder = threading.Thread(target=flood_thread, name="bench-flood", daemon=True)
        recording = True
        if flood:
            flooder.start()
        await asyncio.sleep(seconds)
        recording = False
        stop_flood.set()
        if flood:
            await asyncio.to_thread(flooder.join)
        overruns = runtime.stats[group.name].schedule.overruns - overruns0
        polls = runtime.stats[group.name].schedule.polls - polls0
    finally:
        runtime.stop()
        await task
        await asyncio.to_thread(telemetry.stop)  # sends what is queued (≤ 1 s), counts the rest
        log_file.close()
    return {
        "lateness": lateness,
        "overruns": overruns,
        "polls": polls,
        "emitted": emitted,
        "published": sample("plantd_log_records_published_total", {"level": "warning"})
        - published0,
        "dropped": sample("plantd_log_records_dropped_total") - dropped0,
    }


def poll_run(stack: Stack, flood: bool, warmup: float, seconds: float) -> dict[str, float]:
    before = stack.settled_status()
    with Children() as children:
        conn = spawn(children, run_poller, str(stack.config_dir), flood, warmup, seconds)
        result: dict[str, Any] = await_reply(conn, what="poller", timeout=warmup + seconds + 60)
    after = stack.settled_status()
    lateness = [s * 1000 for s in result["lateness"]]
    if not lateness:
        raise BenchError("the poller recorded no poll (did the fake driver ever open?)")
    return {
        "p50_ms": percentile(lateness, 50),
        "p99_ms": percentile(lateness, 99),
        "max_ms": max(lateness),
        "polls": float(result["polls"]),
        "overruns": float(result["overruns"]),
        "emitted": float(result["emitted"]),
        "published": float(result["published"]),
        "dropped": float(result["dropped"]),
        "received": float(after["received"] - before["received"]),
        "stored": float(after["stored"] - before["stored"]),
    }


def part_polls(stack: Stack, repeat: int, seconds: float, warmup: float) -> list[Figure | Ratio]:
    print("2. Logging never blocks a module's poll loop")
    print(
        f"   one process: ModuleRuntime + fake driver, 10 points every {POLL_INTERVAL * 1000:g} ms "
        f"(real clock), telemetry to a real broker and plantd-logger; flood: a thread logging "
        f"{FLOOD_RATE:,} records/s at warning; lateness = poll start − its deadline"
    )
    quiet, flooded = interleaved(
        [
            lambda: poll_run(stack, False, warmup, seconds),
            lambda: poll_run(stack, True, warmup, seconds),
        ],
        repeat,
    )
    figures: list[Figure | Ratio] = []
    for name, runs in (("no flood", quiet), ("flood", flooded)):
        key = "polls." + name.replace(" ", "_")
        rows = [
            ("p50_ms", "poll lateness p50", "ms"),
            ("p99_ms", "poll lateness p99", "ms"),
            ("max_ms", "poll lateness max", "ms"),
            ("polls", "polls in the window", ""),
            ("overruns", "deadlines missed (overruns)", ""),
        ]
        if name == "flood":
            rows += [
                ("emitted", "flood records emitted", ""),
                ("published", "records published on the bus", ""),
                ("dropped", "records dropped (…_dropped_total)", ""),
                ("received", "records received by plantd-logger", ""),
                ("stored", "records stored by plantd-logger", ""),
            ]
        for field, text, unit in rows:
            values = tuple(r[field] for r in runs)
            figure = Figure(f"{key}.{field}", f"  {name}: {text}", unit, values, **_fmt(field))
            figures.append(figure)
            print(figure.line())
    for field, text in (("p50_ms", "poll lateness p50"), ("p99_ms", "poll lateness p99")):
        ratio = Ratio.paired(
            f"polls.ratio.{field}",
            f"  {text}",
            [r[field] for r in flooded],
            [r[field] for r in quiet],
            label="flood ÷ no flood",
        )
        figures.append(ratio)
        print(ratio.line())
    print()
    return figures


# -- part 3: record → plant logs -f --------------------------------------------------------------


def run_emitter(config_dir: str, count: int, conn: Connection) -> None:
    """Warm-up records every 0.2 s until told "go", then ``count`` probes every 50 ms."""
    from plantd.config import load_config
    from plantd.telemetry import start_telemetry

    config = load_config(Path(config_dir), {})
    probe_log = logging.getLogger("bench.probe")
    with start_telemetry(config, "module.probe"):
        conn.send("ready")
        while not conn.poll(0.2):
            probe_log.warning("probe warm-up")
        conn.recv()
        next_at = time.monotonic()
        for i in range(count):
            probe_log.warning("probe record %d", i)
            next_at += PROBE_EVERY
            if (left := next_at - time.monotonic()) > 0:
                time.sleep(left)
        conn.send("done")
        conn.poll(30)  # until the follower has them all (or gives up)


class Follower:
    """``plant logs -f --json`` as a subprocess; every line stamped as it arrives."""

    def __init__(self, stack: Stack) -> None:
        argv = [
            sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir),
            "logs", "-f", "--json", "-n", "0", "--service", "module.probe",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.lines: list[tuple[float, dict[str, Any]]] = []
        self._reader = threading.Thread(target=self._read, name="bench-follower", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            arrived = time.time()
            with contextlib.suppress(ValueError):
                self.lines.append((arrived, json.loads(line)))

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                raise BenchError(f"plant logs -f exited ({self.process.returncode}) {what}")
            if time.monotonic() > deadline:
                raise BenchError(f"plant logs -f: not within {timeout:g} s: {what}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def follow_run(stack: Stack, count: int) -> dict[str, float]:
    follower = Follower(stack)
    try:
        with Children() as children:
            conn = spawn(children, run_emitter, str(stack.config_dir), count)
            await_reply(conn, what="emitter")
            follower.wait_for(lambda: bool(follower.lines), 30, "to print a warm-up record")
            mark = len(follower.lines)
            conn.send("go")
            await_reply(conn, what="emitter", timeout=count * PROBE_EVERY + 30)

            def probes() -> list[tuple[float, dict[str, Any]]]:
                return [
                    line
                    for line in follower.lines[mark:]
                    if line[1]["message"].startswith("probe record")
                ]

            follower.wait_for(lambda: len(probes()) >= count, 10, f"to print {count} probes")
            conn.send("bye")
    finally:
        follower.stop()
    latencies = [arrived - float(record["time"]) for arrived, record in probes()]
    return {
        "p50_s": percentile(latencies, 50),
        "p99_s": percentile(latencies, 99),
        "max_s": max(latencies),
        "records": float(len(latencies)),
    }


def part_follow(stack: Stack, repeat: int, count: int) -> list[Figure | Ratio]:
    print("3. Record → plant logs -f latency")
    print(
        f"   {count} records, one every {PROBE_EVERY * 1000:g} ms, followed by `plant logs -f "
        "--json` (polls org.plantd.Logger every 0.25 s; plantd-logger batches every 0.2 s)"
    )
    runs = [follow_run(stack, count) for _ in range(repeat)]
    figures: list[Figure | Ratio] = []
    for field, text, unit in (
        ("p50_s", "arrival − record time, p50", "s"),
        ("p99_s", "arrival − record time, p99", "s"),
        ("max_s", "arrival − record time, max", "s"),
        ("records", "records followed", ""),
    ):
        values = tuple(r[field] for r in runs)
        goal = passed = None
        if field == "p99_s":
            goal, passed = f"< {LATENCY_GOAL:g} s", statistics.median(values) < LATENCY_GOAL
        figure = Figure(
            f"follow.{field}", f"  {text}", unit, values, goal=goal, passed=passed, **_fmt(field)
        )
        figures.append(figure)
        print(figure.line())
    print()
    return figures


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--quick", action="store_true", help="one repetition, short windows")
    modes.add_argument("--smoke", action="store_true", help="parts 2 and 3 only, tiny windows")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None, help="measured window")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    short = args.quick or args.smoke
    repeat = args.repeat or (1 if short else 3)
    seconds = args.seconds or (1.0 if args.smoke else 3.0 if args.quick else 6.0)
    warmup = 0.5 if args.smoke else 2.0 if args.quick else 3.0
    probes = 20 if args.smoke else 40 if args.quick else 100
    loads = [("100ms_changing", "100 ms, every value changing", 0.1, True, 1.0)]
    if not short:
        loads.append(("1s_steady", "1 s, steady values", 1.0, False, 1.0))
        loads.append(
            (
                "1s_steady_metrics_5s",
                "1 s, steady values, metrics.interval 5 s (the default)",
                1.0,
                False,
                5.0,
            )
        )
    print(machine_line("none (every process shares both cores)"))
    print(
        f"settings: {repeat} repetition(s), warm-up {warmup:g} s, window {seconds:g} s; "
        f"modes interleaved A B, B A…\n"
    )
    started = time.monotonic()
    figures: list[Figure | Ratio] = []
    try:
        with exit_on_sigterm():
            if args.smoke:
                print("1. Cost of metrics and log publishing: skipped (--smoke)\n")
            else:
                figures += part_cost(loads, repeat, seconds, warmup)
            with (
                tempfile.TemporaryDirectory(prefix="plantd-bench-obs-") as tmp,
                Children() as children,
            ):
                stack = Stack(Path(tmp), children)
                figures += part_polls(stack, repeat, seconds, warmup)
                figures += part_follow(stack, repeat, probes)
    except BenchError as exc:
        print(f"observability benchmark: {exc}", file=sys.stderr)
        return 1
    print(f"total {time.monotonic() - started:.0f} s")
    if args.json:
        write_json(args.json, machine_info(), figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
