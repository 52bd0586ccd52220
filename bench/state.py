"""The state service: acknowledged sets/s and gets/s through the broker, against the broker's
echo rate and against SQLite in-process, in one run.

    python bench/state.py [--quick] [--repeat N] [--json FILE]

Theory of operation. Each repetition starts fresh processes — the plantd broker, ``plantd-state``
(16 workers, its database in a temporary directory on this machine's disk) and the Echo service
(16 workers) — and runs six loads through the broker, in alternating order (A B C…, …C B A):
``echo``, ``get`` and ``set`` with one client and one request in flight, then with two clients
and 16 requests in flight each. The load generators are the same raw-pyzmq MDP client loop for
all three operations, in their own processes, and the request bodies are the same size, so
get ÷ echo measures what the store adds to a service call. Every ``set`` carries a fresh
``request_id`` and writes one of 64 keys per client; a reply counts only if it is
``{"ok": true, …}``, so the figures are *acknowledged* operations: on disk, in the case of sets.

One-in-flight loads run with every process pinned to CPU 0 (when ``taskset`` may pin), which
makes repetitions agree on a shared machine; pipelined loads are unpinned. Each repetition also
measures the same operations directly on SQLite in this process, with the same schema and
durability settings (WAL, ``synchronous=FULL``): one set per transaction (fsync-bound) and point
reads; and the in-process :class:`~plantd.state.Store` with 32 writes in flight (group commit
without the broker).

Goals (BENCHMARKING.md: ratios of figures measured in the same run): gets through the broker
reach at least half the broker's echo rate; group commit lifts pipelined sets to at least 5×
one-at-a-time sets.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import zmq
from _harness import (
    BenchError,
    Children,
    Figure,
    Ratio,
    await_ready,
    cpu_seconds,
    exit_on_sigterm,
    log_tail,
    machine_info,
    machine_line,
    percentile,
    pin_self,
    sleep_until,
    spawn,
    taskset_available,
    warn,
    write_json,
)

from plantd.client import Client
from plantd.service import call
from plantd.state import CreateScope, Set, Store, Write
from plantd.state._schema import connect, migrate
from plantd.testing import ANY_PORT, ManagedProcess, start_broker, write_config

STATE, ECHO = b"org.plantd.State", b"org.plantd.module.Echo"
SCOPE = "bench"
KEYS = 64
WORKERS = 16
REPLY_TIMEOUT_MS = 10_000
MDPC = b"MDPC02"


@dataclass(frozen=True)
class Settings:
    repeat: int
    warmup: float
    window: float

    def describe(self) -> str:
        return (
            f"settings: {self.repeat} repetition(s), fresh processes each, loads interleaved; "
            f"warm-up {self.warmup:g} s, window {self.window:g} s; {WORKERS} workers for "
            f"org.plantd.State and for Echo; database on {tempfile.gettempdir()}"
        )


DEFAULT = Settings(repeat=3, warmup=0.5, window=2.0)
QUICK = Settings(repeat=1, warmup=0.2, window=0.5)


@dataclass(frozen=True)
class Load:
    key: str
    kind: str  # echo, get, set
    clients: int
    depth: int

    @property
    def pinned(self) -> bool:
        return self.depth == 1


LOADS = [
    Load(f"{kind}/{shape}", kind, clients, depth)
    for shape, clients, depth in (("one", 1, 1), ("pipelined", 2, 16))
    for kind in ("echo", "get", "set")
]


# -- the load generator: a child process, raw pyzmq ----------------------------------------------


def client_main(
    endpoint: str, job: tuple[str, int, int], cpus: set[int] | None, conn: Connection
) -> None:
    """Keep ``depth`` calls in flight on one DEALER; count good replies inside the window.

    ``job`` is (kind, depth, lane): the operation, the calls in flight, which client this is.
    """
    kind, depth, lane = job
    pin_self(cpus)
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.linger = 0
    sock.rcvtimeo = REPLY_TIMEOUT_MS
    sock.connect(endpoint)
    salt = uuid.uuid4().hex[:8]
    service, operation = (ECHO, b"echo") if kind == "echo" else (STATE, kind.encode())
    n = 0

    def request() -> list[bytes]:
        nonlocal n
        n += 1
        params: dict[str, Any] = {"scope": SCOPE, "key": f"k{n % KEYS}"}
        if kind == "set":
            params = {
                "scope": SCOPE,
                "key": f"c{lane}k{n % KEYS}",
                "value": n,
                "request_id": f"{salt}-{n}",
            }
        body = json.dumps(params, separators=(",", ":")).encode()
        return [MDPC, b"\x01", service, operation, body]

    conn.send("ready")
    start_ns, end_ns = conn.recv()
    latencies = array("q")
    replies = errors = 0
    sent_at = time.monotonic_ns()
    try:
        for _ in range(depth):
            sock.send_multipart(request())
        while True:
            body = sock.recv_multipart()[-1]
            now = time.monotonic_ns()
            if now >= end_ns:
                break
            if not body.startswith(b'{"ok":true'):
                errors += 1
                if errors == 1:
                    first_error = body[:200].decode(errors="replace")
            elif now >= start_ns:
                replies += 1
                if depth == 1:
                    latencies.append(now - sent_at)
            sent_at = now
            sock.send_multipart(request())
    except zmq.Again:
        conn.send(("error", f"no reply for {REPLY_TIMEOUT_MS} ms"))
        return
    if errors:
        conn.send(("error", f"{errors} error replies, the first: {first_error}"))
        return
    conn.send(("ok", replies, latencies.tobytes()))


# -- the stack -----------------------------------------------------------------------------------


def set_affinity(pid: int, cpus: set[int]) -> None:
    """Move every thread of ``pid`` (libzmq's I/O threads, the store's writer) to ``cpus``."""
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that just ended
            os.sched_setaffinity(int(task), cpus)


@dataclass
class Stack:
    endpoint: str
    broker: ManagedProcess
    state: ManagedProcess
    echo: ManagedProcess

    @property
    def pids(self) -> list[int]:
        return [self.broker.pid, self.state.pid, self.echo.pid]


def start_stack(children: Children, workdir: Path) -> Stack:
    quiet = {"heartbeat_interval": 10.0}
    config = write_config(
        workdir / "etc",
        {
            "broker": {"endpoint": ANY_PORT, **quiet},
            "bus": {"frontend": ANY_PORT, "backend": ANY_PORT},
            "worker": quiet,
            "paths": {"data": str(workdir / "data"), "run": str(workdir / "run")},
            "state": {"workers": WORKERS},
            "logging": {"level": "warning"},
        },
    )
    logs = workdir / "logs"

    def start(name: str, *args: str) -> ManagedProcess:
        argv = [sys.executable, "-m", *args, "--config", str(config)]
        return children.add(ManagedProcess(argv, name=name, log_dir=logs).start())

    broker, bound = start_broker(config, log_dir=logs)  # the real ports go into the config
    children.add(broker)
    endpoint = bound["broker"]["endpoint"]
    state = start("state", "plantd.state")
    serve_echo = ["serve", "echo", "--instances", str(WORKERS)]
    argv = [sys.executable, "-m", "plantd.cli", "--config", str(config), *serve_echo]
    echo = children.add(ManagedProcess(argv, name="echo", log_dir=logs).start())
    stack = Stack(endpoint, broker, state, echo)
    with Client(endpoint, timeout=2.0, retries=10) as client:
        try:
            call(client, STATE.decode(), "create-scope", {"scope": SCOPE})
            ops = [
                {"op": "set", "scope": SCOPE, "key": f"k{n}", "value": n * 1.5} for n in range(KEYS)
            ]
            call(client, STATE.decode(), "batch", {"ops": ops})
            call(client, ECHO.decode(), "echo", {})
        except Exception as exc:
            raise BenchError(f"the stack did not come up: {exc}\n{log_tail(state)}") from exc
    return stack


# -- one measured load ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    per_s: float
    p50_us: float
    cpu_us: float  # CPU of the serving process (state or echo) per operation
    per_commit: float = 0.0  # writes per commit (sets only)


def health(stack: Stack) -> dict[str, Any]:
    with Client(stack.endpoint, timeout=2.0, retries=2) as client:
        result: dict[str, Any] = call(client, STATE.decode(), "health")
        return result


def run_load(children: Children, stack: Stack, load: Load, settings: Settings, pin: bool) -> Run:
    cpus = {0} if pin and load.pinned else None
    everywhere = os.sched_getaffinity(0)
    for pid in stack.pids:
        set_affinity(pid, cpus or everywhere)
    conns = [
        spawn(children, client_main, stack.endpoint, (load.kind, load.depth, lane), cpus)
        for lane in range(load.clients)
    ]
    await_ready(conns, what="client")
    server = stack.echo if load.kind == "echo" else stack.state
    before = health(stack) if load.kind == "set" else {}
    start = time.monotonic() + settings.warmup
    end = start + settings.window
    for conn in conns:
        conn.send((int(start * 1e9), int(end * 1e9)))
    sleep_until(start)
    cpu_start = cpu_seconds(server.pid)
    sleep_until(end)
    cpu = cpu_seconds(server.pid) - cpu_start
    replies = 0
    latencies: list[int] = []
    for conn in conns:
        if not conn.poll(REPLY_TIMEOUT_MS / 1000 + 5):
            raise BenchError(f"{load.key}: a client sent no result\n{log_tail(server)}")
        result = conn.recv()
        if result[0] != "ok":
            raise BenchError(f"{load.key}: {result[1]}\n{log_tail(server)}")
        replies += result[1]
        samples = array("q")
        samples.frombytes(result[2])
        latencies.extend(samples)
    if not replies:
        raise BenchError(f"{load.key}: no replies in the window\n{log_tail(server)}")
    per_commit = 0.0
    if load.kind == "set":
        after = health(stack)
        commits = after["commits"] - before["commits"]
        per_commit = (after["writes"] - before["writes"]) / max(1, commits)
    return Run(
        per_s=replies / settings.window,
        p50_us=percentile(latencies, 50) / 1000 if latencies else float("nan"),
        cpu_us=cpu / replies * 1e6,
        per_commit=per_commit,
    )


# -- SQLite in this process, the same settings -----------------------------------------------------


def timed(settings: Settings, operation: Callable[[int], None]) -> float:
    """Operations per second of ``operation(n)`` over the window, after the warm-up."""
    n = 0
    deadline = time.monotonic() + settings.warmup
    while time.monotonic() < deadline:
        n += 1
        operation(n)
    done, started = 0, time.monotonic()
    deadline = started + settings.window
    while (now := time.monotonic()) < deadline:
        n += 1
        operation(n)
        done += 1
    return done / (now - started)


def fsync_p50_us(workdir: Path, count: int = 100) -> float:
    """The median time to fsync a 4 KiB append in ``workdir``: what one durable commit waits."""
    path = workdir / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    times = []
    try:
        for _ in range(count):
            os.write(fd, b"x" * 4096)
            started = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()
    return percentile(times, 50) * 1e6


def in_process(workdir: Path, settings: Settings, pin: bool) -> dict[str, float]:
    """SQLite and the Store in this process, the schema and durability of the service."""
    everywhere = os.sched_getaffinity(0)
    if pin:
        os.sched_setaffinity(0, {0})
    figures: dict[str, float] = {"fsync_us": fsync_p50_us(workdir)}
    try:
        conn = connect(workdir / "inprocess.db")
        migrate(conn)
        upsert = (
            "INSERT INTO entries (scope, key, value, revision, version, created_revision) "
            "VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT (scope, key) DO UPDATE SET "
            "value = excluded.value, revision = excluded.revision, version = version + 1"
        )

        def set_one(n: int) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(upsert, (SCOPE, f"k{n % KEYS}", str(n), n, n))
            conn.execute("COMMIT")

        def get_one(n: int) -> None:
            conn.execute(
                "SELECT value, revision, version FROM entries WHERE scope = ? AND key = ?",
                (SCOPE, f"k{n % KEYS}"),
            ).fetchone()

        figures["sqlite_set"] = timed(settings, set_one)
        figures["sqlite_get"] = timed(settings, get_one)
        conn.close()
        with Store(workdir / "store.db") as store:
            store.write(Write("create-scope", (CreateScope(SCOPE),)))

            def store_set(n: int) -> Write:
                return Write("set", (Set(SCOPE, f"k{n % KEYS}", n, str(n)),))

            figures["store_set_one"] = timed(settings, lambda n: store.write(store_set(n)))
            pending: list[concurrent.futures.Future[Any]] = []

            def submit(n: int) -> None:
                pending.append(store.submit(store_set(n)))
                if len(pending) >= 32:
                    pending.pop(0).result()

            figures["store_set_32"] = timed(settings, submit)
            concurrent.futures.wait(pending)
    finally:
        os.sched_setaffinity(0, everywhere)
    for name in ("inprocess.db", "store.db"):
        for suffix in ("", "-wal", "-shm", ".lock"):
            (workdir / (name + suffix)).unlink(missing_ok=True)
    return figures


# -- the figures -----------------------------------------------------------------------------------


def repetition(index: int, workdir: Path, settings: Settings, pin: bool) -> dict[str, Any]:
    """One repetition: fresh processes, every load, and the in-process figures in the middle
    (the disk's fsync time drifts: measure it near the sets it explains); order alternating."""
    results: dict[str, Any] = {}
    order: list[Load | None] = [*LOADS[:3], None, *LOADS[3:]]
    if index % 2:
        order.reverse()
    with Children() as children:
        stack = start_stack(children, workdir / f"rep{index}")
        for load in order:
            if load is None:
                results["inprocess"] = in_process(workdir, settings, pin)
                continue
            with Children() as clients:
                results[load.key] = run_load(clients, stack, load, settings, pin)
    return results


def figures_of(reps: list[dict[str, Any]], pin: bool) -> list[Figure | Ratio]:
    def values(key: str, attr: str) -> tuple[float, ...]:
        return tuple(getattr(rep[key], attr) for rep in reps)

    out: list[Figure | Ratio] = []
    titles = {"one": "1 client, 1 in flight", "pipelined": "2 clients × 16 in flight"}
    for load in LOADS:
        shape = titles[load.key.split("/")[1]]
        what = {"echo": "echo (baseline)", "get": "get", "set": "set, acknowledged"}[load.kind]
        out.append(
            Figure(f"{load.key}/per_s", f"{what}, {shape}", "op/s", values(load.key, "per_s"))
        )
        if load.pinned:
            out.append(
                Figure(f"{load.key}/p50_us", "  latency p50", "µs", values(load.key, "p50_us"))
            )
        server = "Echo" if load.kind == "echo" else "plantd-state"
        out.append(
            Figure(
                f"{load.key}/cpu_us",
                f"  {server} CPU per operation",
                "µs",
                values(load.key, "cpu_us"),
            )
        )
        if load.kind == "set":
            out.append(
                Figure(
                    f"{load.key}/per_commit",
                    "  writes per commit",
                    "",
                    values(load.key, "per_commit"),
                )
            )

    def local(name: str) -> tuple[float, ...]:
        return tuple(rep["inprocess"][name] for rep in reps)

    out += [
        Figure("inprocess/fsync_us", "fsync of a 4 KiB append, p50", "µs", local("fsync_us")),
        Figure("inprocess/sqlite_set_per_s", "SQLite: set, 1 per transaction", "op/s",
               local("sqlite_set")),
        Figure("inprocess/sqlite_get_per_s", "SQLite: get by key", "op/s", local("sqlite_get")),
        Figure("inprocess/store_set_one_per_s", "Store: set, 1 in flight", "op/s",
               local("store_set_one")),
        Figure("inprocess/store_set_32_per_s", "Store: set, 32 in flight (group commit)", "op/s",
               local("store_set_32")),
    ]  # fmt: skip

    def ratio(
        key: str, name: str, a: Sequence[float], b: Sequence[float], label: str, **kw: Any
    ) -> Ratio:
        return Ratio.paired(key, name, a, b, label=label, **kw)

    per_s = {load.key: values(load.key, "per_s") for load in LOADS}
    out += [
        ratio("ratio/get_vs_echo_one", "gets vs the broker's echo, 1 in flight",
              per_s["get/one"], per_s["echo/one"], "get ÷ echo", goal=0.5),
        ratio("ratio/get_vs_echo_pipelined", "gets vs the broker's echo, pipelined",
              per_s["get/pipelined"], per_s["echo/pipelined"], "get ÷ echo"),
        ratio("ratio/set_pipelined_vs_one", "group commit: pipelined vs 1 in flight",
              per_s["set/pipelined"], per_s["set/one"], "set ÷ set", goal=5),
        ratio("ratio/store_32_vs_one", "group commit in-process: 32 vs 1 in flight",
              local("store_set_32"), local("store_set_one"), "set ÷ set"),
        ratio("ratio/set_vs_sqlite", "set via broker vs SQLite, 1 at a time",
              per_s["set/one"], local("sqlite_set"), "broker ÷ sqlite"),
        ratio("ratio/set_pipelined_vs_sqlite", "pipelined set via broker vs SQLite 1/txn",
              per_s["set/pipelined"], local("sqlite_set"), "broker ÷ sqlite"),
        ratio("ratio/get_vs_sqlite", "get via broker vs SQLite, 1 at a time",
              per_s["get/one"], local("sqlite_get"), "broker ÷ sqlite"),
    ]  # fmt: skip
    del pin
    return out


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (~15 s)")
    parser.add_argument("--repeat", type=int, help="repetitions (fresh processes each)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every figure here")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else DEFAULT
    if args.repeat is not None:
        if args.repeat < 1:
            parser.error("--repeat must be at least 1")
        settings = dataclasses.replace(settings, repeat=args.repeat)
    return settings, args.json


def main(argv: Sequence[str] | None = None) -> int:
    settings, json_path = parse_args(argv)
    pin = taskset_available()
    pinning = (
        "every process of one-in-flight loads and the SQLite loops on CPU 0; others unpinned"
        if pin
        else "none (CPU 0 not available)"
    )
    print(machine_line(pinning), flush=True)
    print(settings.describe(), flush=True)
    started = time.monotonic()
    reps: list[dict[str, Any]] = []
    try:
        with exit_on_sigterm(), tempfile.TemporaryDirectory(prefix="plantd-bench-state-") as tmp:
            for index in range(settings.repeat):
                reps.append(repetition(index, Path(tmp), settings, pin))
                print(f"repetition {index + 1}/{settings.repeat} done", flush=True)
    except (BenchError, sqlite3.Error) as exc:
        warn(f"\nbenchmark failed: {exc}")
        return 1
    except KeyboardInterrupt:
        warn("\ninterrupted")
        return 130
    figures = figures_of(reps, pin)
    sections = [
        ("through the broker", lambda f: f.key.split("/")[0] in ("echo", "get", "set")),
        ("in this process, same schema and durability (WAL, synchronous=FULL)",
         lambda f: f.key.startswith("inprocess/")),
        ("ratios, measured side by side in each repetition", lambda f: f.key.startswith("ratio/")),
    ]  # fmt: skip
    for title, belongs in sections:
        print(f"\n{title}", flush=True)
        for figure in figures:
            if belongs(figure):
                print(f"  {figure.line()}", flush=True)
    print(f"\ntotal {time.monotonic() - started:.0f} s", flush=True)
    if json_path is not None:
        write_json(json_path, machine_info(), figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
