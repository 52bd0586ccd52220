"""plantd-control under issue 18's load: 1,000 alarms and 100 PID loops at 10 Hz on one core.

    python bench/control.py [--quick] [--repeat N] [--seconds S] [--json FILE]

Setup, once: a broker (``security.mode: none``, endpoints bound on wildcards and read back),
and two load processes that run for the whole benchmark:

- the **plant** (load generator): ten modules ``m00``…``m09`` of 20 points each, ``pv0``…``pv9``
  (numbers) and ``sw0``…``sw9`` (booleans), published as one batch per module at 10 Hz
  (``BusPublisher.publish_batch`` on ``data.mNN``, one batch every 10 ms in turn: 2,000
  samples/s), every sample stamped with ``time.time()`` when sent. A ``pv`` is the setpoint (50)
  plus a slow sine of amplitude 3 (no alarm limit is near it). Each module starts an
  **excursion** once a second, lasting three batches (0.3 s), rotating through four kinds:
  ``high`` (one pv at 85: high, high-high, deviation and rate raise, then clear), ``low`` (one pv
  at 15: low, low-low, deviation, rate, and the suppressible low), ``bad`` (one pv sent with
  quality BAD: bad-quality raises; its loop fails and holds), ``switch`` (one ``sw`` true:
  discrete raises; ``sw0`` also suppresses the module's ten suppressible lows). Ten excursions
  a second in all, about 70 alarm events a second. The same process serves
  ``org.plantd.module.mNN`` (a ``ServiceWorker`` per module) with a ``write`` operation that
  notes the arrival time of each write per point and answers at once.
- the **observer**: a plain ZeroMQ SUB on ``event.alarm.`` and ``data.m``. Alarm latency =
  arrival − the event's ``sample_time`` (the stamp of the sample that raised or cleared it),
  for ``raised``/``cleared`` transitions of the alarms without delays; the baseline in the same
  process and window: arrival − stamp of every data batch (what the bus alone takes).

Each repetition, fresh processes and a fresh alarm database per variant, interleaved:

- ``full``: 1,000 alarms (per pv: high, high-high, low, low-low, rate, deviation,
  bad-quality, high with a 2 s on-delay, low suppressed while ``sw0``; per sw: discrete) and
  100 loops (one per pv, period 100 ms, PI, output ``mNN.outJ`` written through the module's
  ``write``, ``write_deadband`` 0 so that every tick writes);
- ``alarms``: the 1,000 alarms only; ``loops``: the 100 loops only (not with ``--quick``);
- ``empty``: nothing configured (the idle process: its services and status);
- ``subscriber``: not plantd-control but a ``BusSubscriber`` on the same 200 points taking
  every sample as the engine loop does: the floor of receiving the data in Python.

plantd-control (and the subscriber) run pinned to CPU 0 (``taskset -c 0``); the broker, plant
and observer to the other CPUs when there are any. After the Control service registers, a
warm-up, then a window (monotonic clock, common to every process) in which the control's CPU
(``/proc/<pid>/stat``, every thread) is read at both ends and the plant and observer count.
Then ``org.plantd.Control list`` → ``status`` gives the process's own ``loop_lateness_p99``
(lateness of the loop step after its due time, last 4,096 steps, warm-up included).

Figures (median over repetitions, spread in parentheses): control CPU in cores (goal < 1);
loop lateness p99 (goal < one period, 100 ms); writes received/s (100 loops × 10 Hz, fewer
while a bad-quality excursion holds a loop) and the **write interval jitter**: per loop,
|interval between two writes' arrivals − n × 100 ms| (n = the interval in whole periods; a
skipped tick is counted, not taken for jitter), p50/p99; alarm events/s, alarm latency
p50/p99, bus latency p50/p99; time from start to the Control service registered. Ratios per
interleaved pair: control CPU ÷ subscriber CPU, alarm latency ÷ bus latency (p50 and p99).

``--quick``: one repetition of full, empty and subscriber, 1.5 s warm-up, 3 s window (the smoke
test's mode). Exit status 0 whatever the figures, 1 if a run went wrong, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml
from _harness import (
    BenchError,
    Children,
    Figure,
    Ratio,
    await_ready,
    await_reply,
    cpu_seconds,
    exit_on_sigterm,
    interleaved,
    log_tail,
    machine_info,
    machine_line,
    percentile,
    pin_self,
    pinned,
    sleep_until,
    spawn,
    taskset_available,
    write_json,
)

from plantd.testing import ANY_PORT, ManagedProcess, start_broker, wait_for_workers, write_config

MODULES, PVS, SWITCHES = 10, 10, 10
RATE = 10.0  # batches per module per second
SETPOINT, PERIOD = 50.0, 0.1
EXCURSION_EVERY, EXCURSION_LENGTH = 10, 3  # batches: one a second per module, 0.3 s long
KINDS = ("high", "low", "bad", "switch")
CONTROL_CPU = 0
CPU_GOAL, LATENESS_GOAL_MS = 1.0, PERIOD * 1000
CONTROL_SERVICE = "org.plantd.Control"
VARIANTS = ("full", "alarms", "loops", "empty", "subscriber")
QUICK_VARIANTS = ("full", "empty", "subscriber")


def module_name(index: int) -> str:
    return f"m{index:02d}"


# -- the plan: 1,000 alarms, 100 loops ------------------------------------------------------


def alarm_entries() -> list[dict[str, Any]]:
    """Nine alarms per pv and one per switch: 1,000 for 10 modules of 10 + 10 points."""
    entries: list[dict[str, Any]] = []
    for m in range(MODULES):
        module = module_name(m)
        for j in range(PVS):
            point = f"{module}.pv{j}"
            base = f"{module}-pv{j}"
            entries += [
                {"type": "high", "limit": SETPOINT + 20, "deadband": 1, "priority": "high"},
                {"type": "high-high", "limit": SETPOINT + 30, "deadband": 1, "priority": "urgent"},
                {"type": "low", "limit": SETPOINT - 20, "deadband": 1},
                {"type": "low-low", "limit": SETPOINT - 30, "deadband": 1, "priority": "high"},
                {"type": "rate", "limit": 20, "deadband": 2, "priority": "low"},
                {"type": "deviation", "limit": 15, "deadband": 1, "setpoint": SETPOINT},
                {"type": "bad-quality", "priority": "high"},
                {"type": "high", "limit": SETPOINT + 20, "on_delay": "2s", "off_delay": "1s"}
                | {"name": f"{base}-high-delayed"},
                {"type": "low", "limit": SETPOINT - 20, "suppress_when": f"{module}.sw0"}
                | {"name": f"{base}-low-suppressible"},
            ]
            for entry in entries[-9:]:
                entry.setdefault("name", f"{base}-{entry['type']}")
                entry["point"] = point
                entry["message"] = f"{point} {entry['type']}"
        for j in range(SWITCHES):
            point = f"{module}.sw{j}"
            entries.append(
                {"name": f"{module}-sw{j}", "point": point, "type": "discrete", "state": True}
            )
    return entries


def loop_entries() -> list[dict[str, Any]]:
    return [
        {
            "name": f"{module_name(m)}-loop{j}",
            "measurement": f"{module_name(m)}.pv{j}",
            "output": f"{module_name(m)}.out{j}",
            "setpoint": SETPOINT,
            "period": f"{PERIOD * 1000:g}ms",
            "kp": 1.0,
            "ti": "30s",
            "action": "reverse",
            "output_min": -100,
            "output_max": 100,
            "stale_after": "2s",
            "on_failure": "hold",
            "write_deadband": 0,
        }
        for m in range(MODULES)
        for j in range(PVS)
    ]


def point_prefixes() -> list[str]:
    """What plantd-control subscribes to with the full plan (one topic per point)."""
    return sorted(
        f"data.{module_name(m)}.{kind}{j}"
        for m in range(MODULES)
        for kind, count in (("pv", PVS), ("sw", SWITCHES))
        for j in range(count)
    )


# -- the stack ---------------------------------------------------------------------------------


def _other_cpus() -> set[int] | None:
    """Every usable CPU but the control's (None: pin nothing else, there is no other)."""
    rest = os.sched_getaffinity(0) - {CONTROL_CPU}
    return rest or None


def _pin_threads(pid: int, cpus: set[int] | None) -> None:
    """Pin every thread of a running process (libzmq's I/O threads too)."""
    if cpus is None:
        return
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.sched_setaffinity(int(task.name), cpus)


class Stack:
    """The broker, the plant and the observer, for the whole benchmark."""

    def __init__(self, base: Path, children: Children) -> None:
        self.base = base
        self.others = _other_cpus()
        self.config_dir = write_config(
            base / "etc",
            {
                "broker": {"endpoint": ANY_PORT},
                "bus": {"frontend": ANY_PORT, "backend": ANY_PORT},
                "logging": {"level": "warning", "publish": "off"},
                "metrics": {"enabled": False},
                "paths": {"data": str(base / "data"), "run": str(base / "run")},
            },
        )
        broker, bound = start_broker(self.config_dir, log_dir=base)
        children.add(broker)
        _pin_threads(broker.pid, self.others)
        self.broker = broker
        self.endpoint: str = bound["broker"]["endpoint"]
        self.frontend: str = bound["bus"]["frontend"]
        self.backend: str = bound["bus"]["backend"]
        self.plant = spawn(children, run_plant, str(self.config_dir), self.others)
        self.observer = spawn(children, run_observer, self.backend, self.others)
        await_ready([self.plant, self.observer], what="load", timeout=60)
        for m in range(MODULES):
            try:
                wait_for_workers(self.endpoint, f"org.plantd.module.{module_name(m)}", timeout=30)
            except TimeoutError as exc:
                raise BenchError(f"the plant's module services did not register: {exc}") from exc
        self.runs = 0

    def variant_dir(self, variant: str) -> Path:
        """A fresh config directory (and data directory) for one plantd-control run."""
        self.runs += 1
        base = self.base / f"{variant}-{self.runs}"
        config_dir = write_config(
            base / "etc",
            {
                "broker": {"endpoint": self.endpoint},
                "bus": {"frontend": self.frontend, "backend": self.backend},
                "logging": {"level": "warning", "publish": "off"},
                "metrics": {"enabled": False},
                "paths": {"data": str(base / "data"), "run": str(base / "run")},
            },
        )
        if variant in ("full", "alarms"):
            (config_dir / "alarms.d").mkdir()
            (config_dir / "alarms.d" / "bench.yaml").write_text(
                yaml.safe_dump({"alarms": alarm_entries()}, sort_keys=False)
            )
        if variant in ("full", "loops"):
            (config_dir / "control.d").mkdir()
            (config_dir / "control.d" / "bench.yaml").write_text(
                yaml.safe_dump({"loops": loop_entries()}, sort_keys=False)
            )
        return config_dir


# -- child processes: the plant, the observer, the plain subscriber -------------------------------


def _pv(m: int, j: int, now: float) -> float:
    return SETPOINT + 3.0 * math.sin(2 * math.pi * now / 7.0 + (m * PVS + j) * 0.7)


def run_plant(config_dir: str, cpus: set[int] | None, conn: Connection) -> None:
    """Publishes the ten modules' batches and serves their ``write``; see the module docstring.

    Messages: ``("window", start, end)`` (monotonic) starts counting; ``("report",)`` answers
    ``{"writes": {point: [wall times]}, "excursions": n, "batches": n}`` for that window.
    """
    pin_self(cpus)
    asyncio.run(_plant(Path(config_dir), conn))


async def _plant(config_dir: Path, conn: Connection) -> None:
    from plantd.bus import BusPublisher, Quality
    from plantd.config import load_config
    from plantd.service import Json, Params, ServiceDefinition, ServiceWorker, param

    config = load_config(config_dir, {})
    window: list[float] = [math.inf, -math.inf]
    writes: dict[str, list[float]] = {}
    counts = {"excursions": 0, "batches": 0}
    stop = asyncio.Event()

    def make_service(module: str) -> ServiceDefinition:
        definition = ServiceDefinition(f"org.plantd.module.{module}", "bench plant module")

        @definition.operation("write", access="operate")
        async def _write(params: Params) -> Json:
            point = param(params, "point", str)
            if window[0] <= time.monotonic() < window[1]:
                writes.setdefault(f"{module}.{point}", []).append(time.time())
            return {"point": point, "value": params.get("value")}

        return definition

    def on_message() -> None:
        message = conn.recv()
        if message[0] == "window":
            window[:] = message[1:]
            writes.clear()
            counts.update(excursions=0, batches=0)
        elif message[0] == "report":
            conn.send({"writes": dict(writes), **counts})
        else:
            stop.set()

    workers = [ServiceWorker(make_service(module_name(m)), config) for m in range(MODULES)]
    publisher = BusPublisher(config.bus.frontend)
    await publisher.wait_for_subscribers(1.0)
    asyncio.get_running_loop().add_reader(conn.fileno(), on_message)
    good, bad = Quality.GOOD, Quality.BAD

    async def publish() -> None:
        tick = 0
        next_at = time.monotonic()
        while not stop.is_set():
            m, batch = tick % MODULES, tick // MODULES
            module = module_name(m)
            now = time.time()
            phase = batch % EXCURSION_EVERY
            kind = KINDS[(batch // EXCURSION_EVERY + m) % len(KINDS)]
            target = (batch // (EXCURSION_EVERY * len(KINDS))) % PVS
            active = phase < EXCURSION_LENGTH
            items: list[tuple[str, Any, float, Quality]] = []
            for j in range(PVS):
                value, quality = _pv(m, j, now), good
                if active and j == target:
                    if kind == "high":
                        value = SETPOINT + 35
                    elif kind == "low":
                        value = SETPOINT - 35
                    elif kind == "bad":
                        quality = bad
                items.append((f"pv{j}", value, now, quality))
            for j in range(SWITCHES):
                items.append((f"sw{j}", active and kind == "switch" and j == target, now, good))
            publisher.publish_batch(f"data.{module}", items)
            mono = time.monotonic()
            if window[0] <= mono < window[1]:
                counts["batches"] += 1
                counts["excursions"] += phase == 0
            tick += 1
            next_at += 1.0 / (RATE * MODULES)
            if next_at < mono - 1.0:  # far behind (a stall): start afresh, do not burst
                next_at = mono
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    conn.send("ready")
    try:
        async with asyncio.TaskGroup() as tasks:
            for worker in workers:
                tasks.create_task(worker.run())
            tasks.create_task(publish())
            await stop.wait()
            for worker in workers:
                worker.stop()
    finally:
        publisher.close()


def run_observer(backend: str, cpus: set[int] | None, conn: Connection) -> None:
    """Alarm events and, as the baseline, data batches, with their latency in the window it
    is given (``("window", start, end)``); answers by itself once the window has passed."""
    pin_self(cpus)
    import zmq

    from plantd.bus import Record, decode, decode_batch

    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.set_hwm(0)
    sub.subscribe(b"event.alarm.")
    sub.subscribe(b"data.m")
    sub.connect(backend)
    window: tuple[float, float] | None = None
    alarm_ms: list[float] = []
    bus_ms: list[float] = []
    events = 0
    conn.send("ready")
    try:
        while True:
            if conn.poll():
                message = conn.recv()
                if message[0] != "window":
                    break
                window = (message[1], message[2])
                alarm_ms, bus_ms, events = [], [], 0
            if window is not None and time.monotonic() >= window[1]:
                conn.send({"alarm_ms": alarm_ms, "bus_ms": bus_ms, "events": events})
                window = None
            if not sub.poll(50):
                continue
            while sub.poll(0):
                topic, payload = sub.recv_multipart()
                now, mono = time.time(), time.monotonic()
                if window is None or not window[0] <= mono < window[1]:
                    continue
                if topic.startswith(b"data."):
                    _, items = decode_batch(payload)
                    bus_ms.append((now - items[0][1].timestamp) * 1000)
                    continue
                record = decode(payload)
                if not isinstance(record, Record):
                    continue
                events += 1
                fields = record.fields
                if (
                    fields.get("transition") in ("raised", "cleared")
                    and not str(fields.get("alarm", "")).endswith("-delayed")
                    and isinstance(fields.get("sample_time"), int | float)
                ):
                    alarm_ms.append((now - fields["sample_time"]) * 1000)
    finally:
        sub.close(linger=0)
        context.term()


def run_subscriber(backend: str, cpus: set[int] | None, conn: Connection) -> None:
    """The CPU floor: a BusSubscriber on the control's 200 points, taking every sample the
    way the engine loop does (``receive_within`` until the queue is empty), nothing else."""
    pin_self(cpus)
    conn.send(os.getpid())
    conn.send(asyncio.run(_subscriber(backend, conn)))


async def _subscriber(backend: str, conn: Connection) -> int:
    from plantd.bus import BusSubscriber, Sample

    subscriber = BusSubscriber(backend, point_prefixes())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_reader(conn.fileno(), stop.set)
    taken = 0
    try:
        while not stop.is_set():
            message = await subscriber.receive_within(0.25)
            while message is not None:
                if type(message.payload) is Sample:
                    taken += 1
                message = await subscriber.receive_within(0)
            await asyncio.sleep(0)
    finally:
        subscriber.close()
    return taken


# -- one run ------------------------------------------------------------------------------------


def _window(warmup: float, seconds: float) -> tuple[float, float]:
    start = time.monotonic() + warmup
    return start, start + seconds


def _control_status(endpoint: str) -> dict[str, Any]:
    from plantd.client import Client
    from plantd.service import call

    with Client(endpoint, timeout=10, retries=0) as client:
        result: Any = call(client, CONTROL_SERVICE, "list")
    status: dict[str, Any] = result["status"]
    return status


def _write_figures(writes: dict[str, list[float]]) -> dict[str, float]:
    jitter: list[float] = []
    skipped = 0
    for arrivals in writes.values():
        for before, after in itertools.pairwise(arrivals):
            interval = after - before
            ticks = max(1, round(interval / PERIOD))
            skipped += ticks - 1
            jitter.append(abs(interval - ticks * PERIOD) * 1000)
    return {
        "write_jitter_p50_ms": percentile(jitter, 50),
        "write_jitter_p99_ms": percentile(jitter, 99),
        "skipped": float(skipped),
    }


def control_run(
    stack: Stack,
    variant: str,
    cpu: str | None,
    warmup: float,
    seconds: float,
    *,
    profile: Path | None = None,
) -> Any:
    """One plantd-control process with ``variant``'s plan; its figures over one window.

    With ``profile``, the process runs under cProfile, which writes there when it exits.
    """
    config_dir = stack.variant_dir(variant)
    python = [sys.executable] + ([] if profile is None else ["-m", "cProfile", "-o", str(profile)])
    argv = pinned([*python, "-m", "plantd.control", "--config", str(config_dir)], cpu)
    with Children() as children:
        started = time.monotonic()
        control = children.add(
            ManagedProcess(argv, name=f"control-{stack.runs}", log_dir=stack.base).start()
        )
        try:
            wait_for_workers(stack.endpoint, CONTROL_SERVICE, timeout=120)
        except TimeoutError as exc:
            raise BenchError(f"plantd-control did not serve:\n{log_tail(control)}") from exc
        startup = time.monotonic() - started
        start, end = _window(warmup, seconds)
        for conn in (stack.plant, stack.observer):
            conn.send(("window", start, end))
        sleep_until(start)
        cpu0 = cpu_seconds(control.pid)
        sleep_until(end)
        cpu1 = cpu_seconds(control.pid)
        status = _control_status(stack.endpoint)
        stack.plant.send(("report",))
        plant = await_reply(stack.plant, what="plant", timeout=30)
        seen = await_reply(stack.observer, what="observer", timeout=30)
        if not control.running():
            raise BenchError(f"plantd-control died during the run:\n{log_tail(control)}")
        if not seen["bus_ms"]:
            raise BenchError("the observer received no data batch in the window")
    figures: dict[str, float] = {
        "cores": (cpu1 - cpu0) / seconds,
        "startup_s": startup,
        "excursions_per_s": plant["excursions"] / seconds,
        "bus_p50_ms": percentile(seen["bus_ms"], 50),
        "bus_p99_ms": percentile(seen["bus_ms"], 99),
    }
    if variant in ("full", "loops"):
        lateness = status.get("loop_lateness_p99")
        writes: dict[str, list[float]] = plant["writes"]
        figures |= {
            "lateness_p99_ms": math.nan if lateness is None else lateness * 1000,
            "writes_per_s": sum(map(len, writes.values())) / seconds,
            **_write_figures(writes),
        }
        figures["skipped_per_s"] = figures.pop("skipped") / seconds
    if variant in ("full", "alarms"):
        figures |= {
            "events_per_s": seen["events"] / seconds,
            "alarm_p50_ms": percentile(seen["alarm_ms"], 50),
            "alarm_p99_ms": percentile(seen["alarm_ms"], 99),
            "alarm_max_ms": max(seen["alarm_ms"], default=math.nan),
        }
        if not seen["alarm_ms"]:
            raise BenchError(f"no alarm event reached the observer ({variant})")
    return figures


def subscriber_run(stack: Stack, cpu: str | None, warmup: float, seconds: float) -> Any:
    """The floor: a plain BusSubscriber on the same points, pinned like the control."""
    cpus = None if cpu is None else {CONTROL_CPU}
    with Children() as children:
        conn = spawn(children, run_subscriber, stack.backend, cpus)
        pid = await_reply(conn, what="subscriber", timeout=30)
        start, end = _window(warmup, seconds)
        sleep_until(start)
        cpu0 = cpu_seconds(pid)
        sleep_until(end)
        cpu1 = cpu_seconds(pid)
        conn.send("stop")
        taken = await_reply(conn, what="subscriber", timeout=30)
    if not taken:
        raise BenchError("the plain subscriber took no sample")
    return {"cores": (cpu1 - cpu0) / seconds}


# -- report -------------------------------------------------------------------------------------

ROWS: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("cores", "CPU of plantd-control", "cores", ("full", "alarms", "loops", "empty")),
    ("lateness_p99_ms", "loop lateness p99 (process status)", "ms", ("full", "loops")),
    ("writes_per_s", "writes received/s (100 loops × 10 Hz)", "/s", ("full", "loops")),
    ("skipped_per_s", "loop ticks without a write/s", "/s", ("full", "loops")),
    ("write_jitter_p50_ms", "write interval jitter p50", "ms", ("full", "loops")),
    ("write_jitter_p99_ms", "write interval jitter p99", "ms", ("full", "loops")),
    ("excursions_per_s", "excursions sent/s", "/s", ("full", "alarms")),
    ("events_per_s", "alarm events received/s", "/s", ("full", "alarms")),
    ("alarm_p50_ms", "alarm latency p50 (sample → event)", "ms", ("full", "alarms")),
    ("alarm_p99_ms", "alarm latency p99", "ms", ("full", "alarms")),
    ("alarm_max_ms", "alarm latency max", "ms", ("full", "alarms")),
    ("bus_p50_ms", "baseline: bus latency p50 (sample → SUB)", "ms", ("full", "alarms")),
    ("bus_p99_ms", "baseline: bus latency p99", "ms", ("full", "alarms")),
    ("startup_s", "start to Control service registered", "s", ("full", "empty")),
]
GOALS: dict[str, tuple[str, Callable[[float], bool]]] = {
    "full.cores": (f"< {CPU_GOAL:g} core", lambda v: v < CPU_GOAL),
    "full.lateness_p99_ms": (f"< {LATENESS_GOAL_MS:g} ms", lambda v: v < LATENESS_GOAL_MS),
}


def _cores(value: float) -> str:
    return f"{value:.3f}"


def _plain(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def report(results: dict[str, list[dict[str, float]]]) -> list[Figure | Ratio]:
    figures: list[Figure | Ratio] = []
    for variant, runs in results.items():
        if variant == "subscriber":
            continue
        print(f"{variant}:")
        for key, name, unit, where in ROWS:
            if variant not in where or key not in runs[0]:
                continue
            values = tuple(run[key] for run in runs)
            goal = GOALS.get(f"{variant}.{key}")
            finite = [v for v in values if math.isfinite(v)]
            figure = Figure(
                f"{variant}.{key}",
                f"  {name}",
                unit,
                values,
                goal=goal[0] if goal else None,
                passed=goal[1](statistics.median(finite)) if goal and finite else None,
                fmt=_cores if key == "cores" else _plain,
            )
            figures.append(figure)
            print(figure.line())
    print("baseline: plain BusSubscriber on the same 200 points, pinned like the control:")
    floor = Figure(
        "subscriber.cores",
        "  CPU of the subscriber",
        "cores",
        tuple(run["cores"] for run in results["subscriber"]),
        fmt=_cores,
    )
    figures.append(floor)
    print(floor.line())
    print("ratios (per interleaved pair):")
    full = results["full"]
    ratios = [
        Ratio.paired(
            "ratio.cpu",
            "  CPU",
            [r["cores"] for r in full],
            [r["cores"] for r in results["subscriber"]],
            label="control (full) ÷ plain subscriber",
        ),
        Ratio.paired(
            "ratio.latency_p50",
            "  latency p50",
            [r["alarm_p50_ms"] for r in full],
            [r["bus_p50_ms"] for r in full],
            label="alarm event ÷ bus",
        ),
        Ratio.paired(
            "ratio.latency_p99",
            "  latency p99",
            [r["alarm_p99_ms"] for r in full],
            [r["bus_p99_ms"] for r in full],
            label="alarm event ÷ bus",
        ),
    ]
    for ratio in ratios:
        figures.append(ratio)
        print(ratio.line())
    return figures


def print_profile(path: Path, figures: dict[str, float]) -> None:
    """The top of a cProfile of plantd-control (its whole life: start-up, warm-up, window)."""
    import pstats

    print(
        f"\nprofile of one more full run under cProfile ({path}; CPU in the window "
        f"{figures['cores']:.3f} cores with the profiler's overhead):"
    )
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats("plantd", 25)


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="full, empty, subscriber; once")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None, help="measured window")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="then one more full run under cProfile, stats written to this file, top printed",
    )
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    warmup = 1.5 if args.quick else 3.0
    variants = QUICK_VARIANTS if args.quick else VARIANTS
    cpu = str(CONTROL_CPU) if taskset_available() else None
    others = _other_cpus()
    pinning = (
        f"plantd-control and the subscriber on CPU {CONTROL_CPU} (taskset); broker, plant and "
        f"observer on CPU {','.join(map(str, sorted(others)))}"
        if cpu is not None and others
        else "plantd-control on CPU 0 (taskset), the rest unpinned"
        if cpu is not None
        else "none (taskset unavailable)"
    )
    print(machine_line(pinning))
    print(
        f"load: {len(alarm_entries())} alarms, {len(loop_entries())} loops at "
        f"{PERIOD * 1000:g} ms, {MODULES} modules × {PVS + SWITCHES} points at {RATE:g} Hz "
        f"({MODULES * (PVS + SWITCHES) * RATE:,.0f} samples/s), {MODULES} excursions/s"
    )
    print(
        f"settings: {repeat} repetition(s) of {', '.join(variants)}, interleaved; "
        f"warm-up {warmup:g} s, window {seconds:g} s\n"
    )
    started = time.monotonic()
    figures: list[Figure | Ratio] = []
    try:
        with (
            exit_on_sigterm(),
            tempfile.TemporaryDirectory(prefix="plantd-bench-control-") as tmp,
            Children() as children,
        ):
            stack = Stack(Path(tmp), children)

            def runner(variant: str) -> Callable[[], Any]:
                if variant == "subscriber":
                    return lambda: subscriber_run(stack, cpu, warmup, seconds)
                return lambda: control_run(stack, variant, cpu, warmup, seconds)

            outcomes = interleaved([runner(v) for v in variants], repeat)
            figures = report(dict(zip(variants, outcomes, strict=True)))
            if args.profile is not None:
                profiled = control_run(stack, "full", cpu, warmup, seconds, profile=args.profile)
                print_profile(args.profile, profiled)
            stack.plant.send(("stop",))
            stack.observer.send(("stop",))
    except BenchError as exc:
        print(f"control benchmark: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(f"total {time.monotonic() - started:.0f} s")
    if args.json:
        write_json(args.json, machine_info(), figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
