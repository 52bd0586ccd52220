"""The MDP broker against the floor of a Python hop, in one run.

    python bench/mdp_broker.py [--quick] [--repeat N] [--json FILE]

Theory of operation. Each load is run through two hops, interleaved (A B, B A, …), each
repetition with fresh processes: the plantd broker (``python -m plantd.broker``) and
``bench/relay.py``, the ZeroMQ guide's load-balancing broker doing no MDP work. Clients and
workers are the same cheap raw-pyzmq loops on both sides, in their own processes; only the
frames differ (MDP on one side, the guide's envelopes on the other), so plantd ÷ relay
measures the hop. Every request body is 100 bytes and starts with its send time, so a client
with many requests in flight on one DEALER still measures each request's latency.

A run: start the hop, start the workers (and, for plantd, check with ``mmi.workers`` that
they are registered), start the clients, tell them a common window on the monotonic clock
(after a warm-up); clients count replies and latencies inside it, while this process reads
the hop's CPU time from ``/proc`` at both ends of it. One-in-flight loads run with every
process pinned to CPU 0 (``taskset``), which makes repetitions agree on a shared machine.

Then two plantd-only figures: the broker's RSS holding 10,000 queued requests (confirmed with
``mmi.workers``), and its CPU time while heartbeating 1,000 idle workers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import signal
import sys
import tempfile
import time
from array import array
from collections.abc import Sequence
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
    interleaved,
    log_tail,
    machine_info,
    machine_line,
    percentile,
    pin_self,
    pinned,
    raise_fd_limit,
    rss_bytes,
    sleep_until,
    spawn,
    taskset_available,
    warn,
    write_json,
)

from plantd.client import Client
from plantd.testing import (
    ANY_PORT,
    ManagedProcess,
    wait_for_broker,
    wait_for_endpoints,
    wait_for_workers,
    write_config,
)

SERVICE = b"bench.echo"
BODY_SIZE = 100
PAD = b"x" * (BODY_SIZE - 8)  # after the 8-byte send time
QUEUED = 10_000  # requests held by the broker for the RSS figure
IDLE_WORKERS = 1_000  # for the heartbeat figure
IDLE_WORKER_PROCESSES = 4
REPLY_TIMEOUT_MS = 5_000

# MDP/0.2 frames (RFC 18) the load generators send and expect.
MDPC, MDPW = b"MDPC02", b"MDPW02"
W_READY, W_REQUEST, W_FINAL, W_HEARTBEAT, W_DISCONNECT = b"\x01", b"\x02", b"\x04", b"\x05", b"\x06"


@dataclass(frozen=True)
class Settings:
    repeat: int
    warmup: float  # seconds of load before the measured window
    window: float  # seconds measured
    heartbeat_intervals: int  # broker heartbeat intervals measured with idle workers

    def describe(self) -> str:
        return (
            f"settings: {self.repeat} repetition(s) per hop and load, fresh processes each, "
            f"interleaved; warm-up {self.warmup:g} s, window {self.window:g} s; "
            f"{BODY_SIZE}-byte bodies"
        )


DEFAULT = Settings(repeat=5, warmup=0.5, window=2.0, heartbeat_intervals=4)
QUICK = Settings(repeat=1, warmup=0.2, window=0.5, heartbeat_intervals=2)


@dataclass(frozen=True)
class Load:
    key: str
    title: str
    clients: int
    depth: int  # requests each client keeps in flight
    workers: int
    pinned: bool
    goal: float | None  # floor for plantd ÷ relay requests/s


LOADS = (
    Load("one_in_flight", "1 client, 1 in flight, 1 worker", 1, 1, 1, True, 0.8),
    Load("pipelined_w1", "2 clients × 64 in flight, 1 worker", 2, 64, 1, False, None),
    Load("pipelined_w4", "2 clients × 64 in flight, 4 workers", 2, 64, 4, False, 0.7),
)


# -- load generators: child processes, raw pyzmq, the same loops for both hops ------------------


def _child_setup(cpus: set[int] | None) -> zmq.Context[zmq.Socket[bytes]]:
    """Leave Ctrl-C to the parent (it stops everyone), pin, then create the context."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pin_self(cpus)
    return zmq.Context()


def _orphaned(conn: Connection) -> bool:
    """The benchmark sends nothing after "go": a readable pipe is its end closing (it died)."""
    return conn.poll(0)


def worker_main(
    protocol: str, endpoint: str, heartbeat: float, cpus: set[int] | None, conn: Connection
) -> None:
    """One echo worker on one DEALER; MDP workers also send HEARTBEAT every ``heartbeat`` s."""
    context = _child_setup(cpus)
    sock = context.socket(zmq.DEALER)
    sock.linger = 0
    sock.rcvtimeo = 1000
    sock.connect(endpoint)
    if protocol == "mdp":
        sock.send_multipart([MDPW, W_READY, SERVICE])
        # MDP . FINAL . client . "" . body   (a request is MDP . REQUEST . client . "" . body)
        head, skip, beat = [MDPW, W_FINAL], 2, [MDPW, W_HEARTBEAT]
    else:
        sock.send_multipart([b"", b"READY"])
        head, skip, beat = [], 0, None  # the reply is the request: "" . client . "" . body
    conn.send("ready")
    next_beat = time.monotonic() + heartbeat
    while True:
        try:
            frames = sock.recv_multipart()
        except zmq.Again:
            if _orphaned(conn):
                return
            frames = []
        if len(frames) >= 4:
            sock.send_multipart(head + frames[skip:])
        elif frames == [MDPW, W_DISCONNECT]:
            raise SystemExit("the broker disconnected this worker")
        # other short messages are the broker's HEARTBEATs: nothing to answer
        if beat is not None and time.monotonic() >= next_beat:
            sock.send_multipart(beat)
            next_beat = time.monotonic() + heartbeat


def client_main(
    protocol: str, endpoint: str, depth: int, cpus: set[int] | None, conn: Connection
) -> None:
    """Keep ``depth`` requests in flight on one DEALER; report replies inside the window.

    Replies are matched to nothing: each body carries its own send time, which is all the
    latency needs, and every reply is the same echo.
    """
    context = _child_setup(cpus)
    sock = context.socket(zmq.DEALER)
    sock.linger = 0
    sock.rcvtimeo = REPLY_TIMEOUT_MS
    sock.connect(endpoint)
    head = [MDPC, b"\x01", SERVICE] if protocol == "mdp" else [b""]
    conn.send("ready")
    start_ns, end_ns = conn.recv()
    latencies = array("q")
    errors = 0
    send, recv, clock = sock.send_multipart, sock.recv_multipart, time.monotonic_ns
    try:
        for _ in range(depth):
            send([*head, clock().to_bytes(8, "little") + PAD])
        while True:
            body = recv()[-1]  # MDP: MDPC02 . FINAL . service . body; relay: "" . body
            now = clock()
            if now >= end_ns:
                break
            if len(body) != BODY_SIZE:
                errors += 1  # a broker error reply (JSON) instead of the echo
            elif now >= start_ns:
                latencies.append(now - int.from_bytes(body[:8], "little"))
            send([*head, now.to_bytes(8, "little") + PAD])
    except zmq.Again:
        conn.send(("error", f"no reply for {REPLY_TIMEOUT_MS} ms"))
        return
    conn.send(("ok", errors, latencies.tobytes()))


def idle_workers_main(endpoint: str, count: int, heartbeat: float, conn: Connection) -> None:
    """``count`` idle MDP workers on as many DEALERs; each sends HEARTBEAT every interval."""
    context = _child_setup(None)
    sockets = [context.socket(zmq.DEALER) for _ in range(count)]
    poller = zmq.Poller()
    for sock in sockets:
        sock.linger = 0
        sock.connect(endpoint)
        sock.send_multipart([MDPW, W_READY, b"bench.idle"])
        poller.register(sock, zmq.POLLIN)
    conn.send("ready")
    next_beat = time.monotonic() + heartbeat
    while not _orphaned(conn):
        timeout_ms = int(max(0.0, min(1.0, next_beat - time.monotonic())) * 1000)
        for sock, _ in poller.poll(timeout_ms):
            while sock.get(zmq.EVENTS) & zmq.POLLIN:
                if sock.recv_multipart() == [MDPW, W_DISCONNECT]:
                    raise SystemExit("the broker disconnected an idle worker")
        if time.monotonic() >= next_beat:
            for sock in sockets:
                sock.send_multipart([MDPW, W_HEARTBEAT])
            next_beat += heartbeat


# -- the hops -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Running:
    """A started hop: its pid, where clients and workers connect."""

    process: ManagedProcess
    front: str
    back: str

    @property
    def pid(self) -> int:
        return self.process.pid


def broker_config(directory: Path, **broker: Any) -> Path:
    """A broker on ports the system picks: it records them in its run directory."""
    write_config(
        directory,
        {
            "broker": {"endpoint": ANY_PORT, **broker},
            "bus": {"frontend": ANY_PORT, "backend": ANY_PORT},
            "paths": {"run": str(directory / "run")},
            "logging": {"level": "warning"},
        },
    )
    return directory


def start_plantd(
    children: Children, workdir: Path, name: str, cpus: str | None, **broker: Any
) -> Running:
    config_dir = broker_config(workdir / name, **broker)
    argv = pinned([sys.executable, "-m", "plantd.broker", "--config", str(config_dir)], cpus)
    process = children.add(ManagedProcess(argv, name=name, log_dir=workdir / "logs").start())
    try:
        endpoint = wait_for_endpoints(config_dir / "run", process, 20.0)["broker"]["endpoint"]
        wait_for_broker(endpoint, timeout=20.0)
    except Exception as exc:
        raise BenchError(f"broker {name} did not answer mmi.broker\n{log_tail(process)}") from exc
    return Running(process, endpoint, endpoint)


def start_relay(children: Children, workdir: Path, name: str, cpus: str | None) -> Running:
    relay = str(Path(__file__).with_name("relay.py"))
    argv = pinned([sys.executable, relay, ANY_PORT, ANY_PORT], cpus)
    process = children.add(ManagedProcess(argv, name=name, log_dir=workdir / "logs").start())
    deadline = time.monotonic() + 20.0
    while (ready := re.search(r"relay ready on (\S+) (\S+)", process.log_text())) is None:
        if not process.running() or time.monotonic() > deadline:
            raise BenchError(f"relay {name} did not start\n{log_tail(process)}")
        time.sleep(0.02)
    return Running(process, ready[1], ready[2])


# -- one measured run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    requests_per_s: float
    p50_us: float
    p99_us: float
    cpu_us_per_request: float


class Bench:
    """Starts processes for one benchmark run and owns them until it ends."""

    def __init__(self, workdir: Path, settings: Settings, pin_cpu: str | None) -> None:
        self.workdir = workdir
        self.settings = settings
        self.pin_cpu = pin_cpu  # "0" when taskset can pin, else None
        self._runs = 0

    def run(self, hop: str, load: Load) -> Run:
        self._runs += 1
        name = f"{hop}-{load.key}-{self._runs}"
        cpu_arg = self.pin_cpu if load.pinned else None
        cpus = {int(cpu_arg)} if cpu_arg is not None else None
        with Children() as children:
            if hop == "plantd":
                running = start_plantd(
                    children, self.workdir, name, cpu_arg, heartbeat_interval=10.0
                )
            else:
                running = start_relay(children, self.workdir, name, cpu_arg)
            protocol = "mdp" if hop == "plantd" else "relay"
            workers = [
                spawn(children, worker_main, protocol, running.back, 10.0, cpus)
                for _ in range(load.workers)
            ]
            await_ready(workers, what="worker")
            if hop == "plantd":
                wait_for_workers(running.front, SERVICE.decode(), load.workers)
            clients = [
                spawn(children, client_main, protocol, running.front, load.depth, cpus)
                for _ in range(load.clients)
            ]
            await_ready(clients, what="client")
            return self._measure(running, clients, name)

    def _measure(self, running: Running, clients: list[Connection], name: str) -> Run:
        start = time.monotonic() + self.settings.warmup
        end = start + self.settings.window
        for conn in clients:
            conn.send((int(start * 1e9), int(end * 1e9)))
        sleep_until(start)
        cpu_start = cpu_seconds(running.pid)
        sleep_until(end)
        cpu = cpu_seconds(running.pid) - cpu_start
        latencies_ns: list[int] = []
        for conn in clients:
            if not conn.poll(REPLY_TIMEOUT_MS / 1000 + 5):
                raise BenchError(f"{name}: a client sent no result\n{log_tail(running.process)}")
            result = conn.recv()
            if result[0] != "ok":
                raise BenchError(f"{name}: client failed: {result[1]}\n{log_tail(running.process)}")
            if result[1]:
                raise BenchError(f"{name}: {result[1]} error replies\n{log_tail(running.process)}")
            samples = array("q")
            samples.frombytes(result[2])
            latencies_ns.extend(samples)
        if not latencies_ns:
            raise BenchError(f"{name}: no replies in the window\n{log_tail(running.process)}")
        replies = len(latencies_ns)
        return Run(
            requests_per_s=replies / self.settings.window,
            p50_us=percentile(latencies_ns, 50) / 1000,
            p99_us=percentile(latencies_ns, 99) / 1000,
            cpu_us_per_request=cpu / replies * 1e6,
        )


# -- the figures --------------------------------------------------------------------------------


def bench_load(bench: Bench, load: Load) -> list[Figure | Ratio]:
    plantd, relay = interleaved(
        [lambda: bench.run("plantd", load), lambda: bench.run("relay", load)],
        bench.settings.repeat,
    )
    figures: list[Figure | Ratio] = []
    for metric, unit, label in (
        ("requests_per_s", "req/s", "requests/s"),
        ("p50_us", "µs", "p50 latency"),
        ("p99_us", "µs", "p99 latency"),
        ("cpu_us_per_request", "µs", "hop CPU per request"),
    ):
        for hop, runs in (("plantd", plantd), ("relay", relay)):
            values = tuple(getattr(run, metric) for run in runs)
            figures.append(Figure(f"{load.key}/{hop}/{metric}", f"{hop} {label}", unit, values))
    rps = [r.requests_per_s for r in plantd], [r.requests_per_s for r in relay]
    cpu = [r.cpu_us_per_request for r in plantd], [r.cpu_us_per_request for r in relay]
    goal_note = "" if load.goal is not None else "(no goal)"
    figures.append(
        Ratio.paired(
            f"{load.key}/ratio/requests_per_s", "requests/s", *rps, goal=load.goal, note=goal_note
        )
    )
    figures.append(
        Ratio.paired(
            f"{load.key}/ratio/cpu_us_per_request",
            "CPU per request",
            *cpu,
            note="(cost: lower is better)",
        )
    )
    return figures


def bench_memory(bench: Bench, children: Children) -> list[Figure | Ratio]:
    """Broker RSS idle, then holding ``QUEUED`` requests for a service nobody serves."""
    running = start_plantd(
        children,
        bench.workdir,
        "plantd-rss",
        None,
        max_queue_per_service=QUEUED,
        request_expiry=600.0,
    )
    time.sleep(0.5)  # let start-up allocations settle
    idle = rss_bytes(running.pid)
    context = zmq.Context()
    try:
        senders = [_sender(context, running.front) for _ in range(4)]
        request = [MDPC, b"\x01", b"bench.nobody", bytes(BODY_SIZE)]
        for index in range(QUEUED):
            senders[index % len(senders)].send_multipart(request)
        queued = _wait_queued(running.front, "bench.nobody", QUEUED)
        held = rss_bytes(running.pid)
        if any(sock.poll(0) for sock in senders):
            raise BenchError("the broker answered a queued request (queue full?)")
    finally:
        context.destroy(linger=0)
    mb = 1024 * 1024
    return [
        Figure("memory/rss_idle", "broker RSS, idle", "MB", (idle / mb,)),
        Figure(
            "memory/rss_queued",
            f"broker RSS, {queued:,} requests queued",
            "MB",
            (held / mb,),
            goal="< 40 MB",
            passed=held < 40 * mb,
        ),
    ]


def _sender(context: zmq.Context[zmq.Socket[bytes]], endpoint: str) -> zmq.Socket[bytes]:
    sock = context.socket(zmq.DEALER)
    sock.linger = 0
    sock.sndtimeo = 10_000  # blocks at the high-water mark until the broker reads
    sock.connect(endpoint)
    return sock


def _mmi_workers(endpoint: str, service: str) -> dict[str, int]:
    with Client(endpoint, timeout=2.0, retries=2) as client:
        table: dict[str, dict[str, int]] = json.loads(
            client.request("mmi.workers", service.encode())[0]
        )
    return table.get(service, {"idle": 0, "busy": 0, "queued": 0})


def _wait_queued(endpoint: str, service: str, count: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while (queued := _mmi_workers(endpoint, service)["queued"]) < count:
        if time.monotonic() > deadline:
            raise BenchError(f"only {queued} of {count} requests queued after {timeout:g} s")
        time.sleep(0.1)
    return queued


def bench_heartbeats(bench: Bench, children: Children) -> list[Figure | Ratio]:
    """Broker CPU while ``IDLE_WORKERS`` idle workers heartbeat at the default interval."""
    interval = 2.5
    running = start_plantd(
        children, bench.workdir, "plantd-heartbeat", None, heartbeat_interval=interval
    )
    per_process = IDLE_WORKERS // IDLE_WORKER_PROCESSES
    conns = [
        spawn(children, idle_workers_main, running.back, per_process, interval)
        for _ in range(IDLE_WORKER_PROCESSES)
    ]
    await_ready(conns, what="idle-worker")
    wait_for_workers(running.front, "bench.idle", IDLE_WORKERS, timeout=60.0)
    time.sleep(0.5)  # the registration burst is not what we measure
    intervals = bench.settings.heartbeat_intervals
    shares: list[float] = []  # per heartbeat interval, to show the spread
    first_mark, first_cpu = time.monotonic(), cpu_seconds(running.pid)
    mark, cpu = first_mark, first_cpu
    for _ in range(intervals):
        sleep_until(mark + interval)
        now, used = time.monotonic(), cpu_seconds(running.pid)
        shares.append((used - cpu) / (now - mark) * 100)
        mark, cpu = now, used
    # The headline is the whole window: CPU time comes in 10 ms ticks, too coarse per interval.
    share = (cpu - first_cpu) / (mark - first_mark) * 100
    still = _mmi_workers(running.front, "bench.idle")
    if still["idle"] + still["busy"] != IDLE_WORKERS:
        raise BenchError(f"idle workers expired during the measurement: {still}")
    spread = f"{min(shares):.1f}–{max(shares):.1f}"
    return [
        Figure(
            "heartbeat/cpu_percent",
            f"broker CPU, {IDLE_WORKERS:,} idle workers, {interval * intervals:g} s",
            "% of a core",
            (share,),
            goal="< 5 %",
            passed=share < 5.0,
            note=f"(per {interval:g} s interval: {spread})",
        )
    ]


# -- the program --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (~30 s)")
    parser.add_argument("--repeat", type=int, help="repetitions per hop and load")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every figure here")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else DEFAULT
    if args.repeat is not None:
        if args.repeat < 1:
            parser.error("--repeat must be at least 1")
        settings = dataclasses.replace(settings, repeat=args.repeat)
    return settings, args.json


def report(figures: Sequence[Figure | Ratio]) -> None:
    for figure in figures:
        print(f"  {figure.line()}", flush=True)


def run_all(settings: Settings, pin_cpu: str | None, workdir: Path) -> list[Figure | Ratio]:
    bench = Bench(workdir, settings, pin_cpu)
    figures: list[Figure | Ratio] = []
    for load in LOADS:
        where = f", pinned to CPU {pin_cpu}" if load.pinned and pin_cpu is not None else ""
        print(f"\n{load.title}{where}", flush=True)
        results = bench_load(bench, load)
        report(results)
        figures += results
    print("\nbroker memory", flush=True)
    with Children() as children:
        results = bench_memory(bench, children)
    report(results)
    figures += results
    print("\nbroker heartbeating", flush=True)
    with Children() as children:
        results = bench_heartbeats(bench, children)
    report(results)
    return figures + results


def main(argv: Sequence[str] | None = None) -> int:
    settings, json_path = parse_args(argv)
    raise_fd_limit(4 * IDLE_WORKERS)
    pin_cpu = "0" if taskset_available() else None
    pinning = (
        "taskset -c 0 for every process of one-in-flight loads; others unpinned"
        if pin_cpu is not None
        else "none (taskset unavailable)"
    )
    print(machine_line(pinning), flush=True)
    print(settings.describe(), flush=True)
    started = time.monotonic()
    try:
        with exit_on_sigterm(), tempfile.TemporaryDirectory(prefix="plantd-bench-") as tmp:
            figures = run_all(settings, pin_cpu, Path(tmp))
    except BenchError as exc:
        warn(f"\nbenchmark failed: {exc}")
        return 1
    except KeyboardInterrupt:
        warn("\ninterrupted")
        return 130
    print(f"\ntotal {time.monotonic() - started:.0f} s", flush=True)
    if json_path is not None:
        write_json(json_path, machine_info(), figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
