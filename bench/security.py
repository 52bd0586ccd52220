"""What CURVE security costs the broker, in one run: ``security.mode: curve`` ÷ ``none``.

    python bench/security.py [--quick] [--repetitions N] [--json FILE]

Theory of operation. Every figure is measured on two brokers, interleaved (curve, none, none,
curve, …), each repetition with a fresh ``python -m plantd.broker`` and a fresh key set: one
with ``security.mode: curve`` (a CURVE server, its ZAP handler thread, the per-request policy
check, the audit trail, the guarded bus) and one with ``security.mode: none`` (plain MDP, the C
bus proxy). Load generators are raw-pyzmq loops in their own processes, as in
``bench/mdp_broker.py`` (whose measurement, loads and helpers this reuses), the same on both
sides except that under CURVE each socket is made a CURVE client with
:func:`plantd.security.secure` and the principal's credentials:

- **requests**: clients (``user.bench``, role ``viewer``) call ``org.plantd.module.Echo`` with
  the service-call convention (an operation frame, ``echo``, then a 100-byte body starting with
  its send time), and workers (``service.echo``, which may serve it) echo the body back. Loads:
  one request in flight (every process pinned to CPU 0) and 2 clients × 64 in flight over 4
  workers (unpinned). Figures: requests/s, latency, and the broker's own CPU time per request
  (``/proc/<pid>/stat``, every thread: libzmq's I/O thread does the cryptography);
- **connections**: one process opens N fresh DEALERs one after the other, each connecting and
  completing one ``mmi.service`` request before it is closed (pinned with the broker to CPU 0):
  time per connection, the broker's CPU per connection, the client's. Under CURVE every
  connection is a CURVE handshake plus a ZAP request answered in Python;
- **data bus** (information, no goal): one ``BusPublisher`` (``module.bench``, publishing
  ``data.bench.*``) → one ``BusSubscriber`` (``service.historian``), the publisher at most a
  window of samples ahead of what the subscriber confirmed (so nothing is dropped and the rate
  is what the chain carries): samples/s and the broker's CPU per sample. Under CURVE the bus is
  the broker's Python forwarder checking each publisher's topic; without, ``zmq.proxy_steerable``.

Goal: the CURVE broker keeps at least 0.7 of the plain broker's requests/s, in both loads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import multiprocessing
import resource
import signal
import sys
import tempfile
import time
from array import array
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import mdp_broker
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
    pinned,
    sleep_until,
    spawn,
    taskset_available,
    warn,
    write_json,
)
from mdp_broker import (
    BODY_SIZE,
    MDPC,
    MDPW,
    PAD,
    REPLY_TIMEOUT_MS,
    W_DISCONNECT,
    W_FINAL,
    W_READY,
    Bench,
    Load,
    Run,
    Running,
    _child_setup,
    _orphaned,
)

from plantd.config import load_config
from plantd.security import BROKER, Credentials, Identity, KeySet, secure, use_identity
from plantd.testing import (
    ANY_PORT,
    ManagedProcess,
    wait_for_broker,
    wait_for_endpoints,
    wait_for_workers,
    write_config,
)

MODES = ("curve", "none")  # candidate, baseline
LABEL = "curve ÷ none"
GOAL = 0.7
ECHO = b"org.plantd.module.Echo"
OPERATION = b"echo"  # any operation of Echo needs `read` access
CLIENT, WORKER = "user.bench", "service.echo"
PUBLISHER, SUBSCRIBER = "module.bench", "service.historian"
TOPIC = "data.bench.value"
BUS_WINDOW = 2_000  # samples the publisher may be ahead of the subscriber's confirmation
BUS_CREDIT = 250  # the subscriber confirms every this many samples
BUS_BURST = 50  # samples published between looks at the clock and the credits

LOADS = tuple(
    dataclasses.replace(load, goal=GOAL)
    for load in mdp_broker.LOADS
    if load.key in ("one_in_flight", "pipelined_w4")
)


@dataclass(frozen=True)
class Settings:
    repeat: int
    warmup: float  # seconds of load before a measured window
    window: float  # seconds measured, for requests and the bus
    connections: int  # fresh sockets per connection run

    def describe(self) -> str:
        return (
            f"settings: {self.repeat} repetition(s) per mode and figure, fresh broker and keys "
            f"each, interleaved; warm-up {self.warmup:g} s, window {self.window:g} s; "
            f"{BODY_SIZE}-byte bodies; {self.connections} connections per connection run"
        )


DEFAULT = Settings(repeat=5, warmup=0.5, window=2.0, connections=1000)
QUICK = Settings(repeat=1, warmup=0.2, window=0.5, connections=100)


# -- load generators: child processes, raw pyzmq (mdp_broker.py's loops, with credentials) -----


def worker_main(
    credentials: Credentials | None, endpoint: str, cpus: set[int] | None, conn: Connection
) -> None:
    """An Echo worker on one DEALER: REQUEST client "" op body → FINAL client "" op body.

    It sends no heartbeat: the broker's interval is 10 s, far longer than a run.
    """
    context = _child_setup(cpus)
    sock = context.socket(zmq.DEALER)
    sock.linger = 0
    sock.rcvtimeo = 1000
    secure(sock, credentials)
    sock.connect(endpoint)
    sock.send_multipart([MDPW, W_READY, ECHO])
    conn.send("ready")
    while True:
        try:
            frames = sock.recv_multipart()
        except zmq.Again:
            if _orphaned(conn):
                return
            continue
        if len(frames) >= 4:
            sock.send_multipart([MDPW, W_FINAL, *frames[2:]])
        elif frames == [MDPW, W_DISCONNECT]:
            raise SystemExit("the broker disconnected this worker (may it serve Echo?)")


def client_main(
    credentials: Credentials | None,
    endpoint: str,
    depth: int,
    cpus: set[int] | None,
    conn: Connection,
) -> None:
    """Keep ``depth`` calls to Echo in flight; report replies inside the window (the same
    protocol as ``mdp_broker.client_main``, whose results ``Bench._measure`` reads).

    The operation is a frame of its own, as real callers send it: the broker's policy decides
    per (principal, service, operation), and caches that decision.
    """
    context = _child_setup(cpus)
    sock = context.socket(zmq.DEALER)
    sock.linger = 0
    sock.rcvtimeo = REPLY_TIMEOUT_MS
    secure(sock, credentials)
    sock.connect(endpoint)
    head = [MDPC, b"\x01", ECHO, OPERATION]
    conn.send("ready")
    start_ns, end_ns = conn.recv()
    latencies = array("q")
    errors = 0
    send, recv, clock = sock.send_multipart, sock.recv_multipart, time.monotonic_ns
    try:
        for _ in range(depth):
            send([*head, clock().to_bytes(8, "little") + PAD])
        while True:
            body = recv()[-1]  # MDPC02 . FINAL . service . op . body (or a JSON error)
            now = clock()
            if now >= end_ns:
                break
            if len(body) != BODY_SIZE:
                errors += 1
            elif now >= start_ns:
                latencies.append(now - int.from_bytes(body[:8], "little"))
            send([*head, now.to_bytes(8, "little") + PAD])
    except zmq.Again:
        conn.send(("error", f"no reply for {REPLY_TIMEOUT_MS} ms"))
        return
    conn.send(("ok", errors, latencies.tobytes()))


def connector_main(
    credentials: Credentials | None,
    endpoint: str,
    count: int,
    cpus: set[int] | None,
    conn: Connection,
) -> None:
    """``count`` fresh DEALERs one after the other: connect, one ``mmi.service``, close.

    A tenth as many first, unmeasured. Reports the wall time and this process's CPU time.
    """
    context = _child_setup(cpus)
    request = [MDPC, b"\x01", b"mmi.service", ECHO]

    def one() -> bool:
        sock = context.socket(zmq.DEALER)
        sock.linger = 0
        sock.rcvtimeo = REPLY_TIMEOUT_MS
        secure(sock, credentials)
        sock.connect(endpoint)
        sock.send_multipart(request)
        try:
            reply = sock.recv_multipart()
        except zmq.Again:
            return False
        finally:
            sock.close()
        return reply[0] == MDPC

    for _ in range(max(1, count // 10)):
        one()
    conn.send("ready")
    conn.recv()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_start = usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    for _ in range(count):
        if not one():
            conn.send(("error", f"no mmi.service reply within {REPLY_TIMEOUT_MS} ms"))
            return
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    conn.send(("ok", elapsed, usage.ru_utime + usage.ru_stime - cpu_start))


def publisher_main(
    credentials: Credentials | None, endpoint: str, credits: Connection, conn: Connection
) -> None:
    """Publish samples through ``BusPublisher`` until the window ends, at most ``BUS_WINDOW``
    ahead of the count the subscriber last confirmed on ``credits``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from plantd.bus import BusPublisher

    publisher = BusPublisher(endpoint, credentials=credentials)
    if not asyncio.run(publisher.wait_for_subscribers(10.0)):
        conn.send(("error", "no subscription reached the publisher in 10 s"))
        return
    conn.send("ready")
    _, end_ns = conn.recv()
    sent = confirmed = 0
    publish, clock = publisher.publish_sample, time.monotonic_ns
    try:
        while clock() < end_ns:
            while credits.poll(0):
                confirmed = credits.recv()
            if sent - confirmed >= BUS_WINDOW:
                if not credits.poll(REPLY_TIMEOUT_MS / 1000):
                    conn.send(
                        ("error", f"no confirmation from the subscriber for {REPLY_TIMEOUT_MS} ms")
                    )
                    return
                continue
            for _ in range(BUS_BURST):
                publish(TOPIC, 1.0)
            sent += BUS_BURST
    except EOFError:
        pass  # the subscriber's window ended a moment before ours (had it died, it says so)
    publisher.close()
    conn.send(("ok", sent))


def subscriber_main(
    credentials: Credentials | None, endpoint: str, credits: Connection, conn: Connection
) -> None:
    """Receive through ``BusSubscriber``; confirm the count (lost samples included) every
    ``BUS_CREDIT``; report the samples received inside the window and those lost."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_subscribe(credentials, endpoint, credits, conn))


async def _subscribe(
    credentials: Credentials | None, endpoint: str, credits: Connection, conn: Connection
) -> None:
    from plantd.bus import BusSubscriber, GapTracker, Sample

    subscriber = BusSubscriber(endpoint, ["data.bench."], credentials=credentials)
    gaps = GapTracker()
    conn.send("ready")
    start_ns, end_ns = conn.recv()
    received = counted = 0
    clock = time.monotonic_ns
    while (now := clock()) < end_ns:
        message = await subscriber.receive_within((end_ns - now) / 1e9)
        if message is None:
            continue
        received += 1
        if clock() >= start_ns:
            counted += 1
        if isinstance(message.payload, Sample):
            gaps.observe(message.topic, message.payload)
        if received % BUS_CREDIT == 0:
            with contextlib.suppress(OSError):  # the publisher's window ended first
                credits.send(received + gaps.missing)
    subscriber.close()
    conn.send(("ok", counted, gaps.missing))


# -- the brokers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Broker:
    """A started broker, its bus endpoints, and the credentials of the bench's principals
    (None for each with ``security.mode: none``)."""

    running: Running
    bus_in: str
    bus_out: str
    credentials: Mapping[str, Credentials | None]


def admit(config_dir: Path, principal: str, roles: tuple[str, ...] = ()) -> Identity:
    """``principal``'s identity in the key set of ``config_dir``, admitted with ``roles`` (and
    its secret written) if it is not yet; as ``tests/conftest.py`` ``Stack.credentials``."""
    keyset = KeySet(load_config(config_dir))
    secret = keyset.secret_path(principal)
    if not keyset.public_path(principal).exists():
        keyset.add(principal, roles=roles, generate_secret=secret)
    return Identity(secret, keyset.public_path(BROKER))


def start_broker(
    children: Children, workdir: Path, name: str, mode: str, cpus: str | None
) -> Broker:
    """A broker with ``security.mode: mode``; under CURVE, its keys (``write_config`` makes
    the broker's, the services' and an admin's) and the bench's principals, admitted before it
    starts. This process then calls it as ``user.bench``."""
    directory = workdir / name
    write_config(
        directory,
        {
            "broker": {"endpoint": ANY_PORT, "heartbeat_interval": 10.0},
            "bus": {"frontend": ANY_PORT, "backend": ANY_PORT},
            "logging": {"level": "warning"},
            "paths": {"data": str(directory / "data"), "run": str(directory / "run")},
            "security": {"mode": mode},
        },
    )
    credentials: dict[str, Credentials | None] = dict.fromkeys(
        (CLIENT, WORKER, PUBLISHER, SUBSCRIBER)
    )
    if mode == "curve":
        identities = {
            CLIENT: admit(directory, CLIENT, ("viewer",)),
            WORKER: admit(directory, WORKER),  # made by write_config: serves Echo by its kind
            PUBLISHER: admit(directory, PUBLISHER),  # publishes data.bench.* by its kind
            SUBSCRIBER: admit(directory, SUBSCRIBER),
        }
        credentials = {principal: i.credentials() for principal, i in identities.items()}
        use_identity(identities[CLIENT])  # for wait_for_broker and wait_for_workers
    else:
        use_identity(None)
    argv = pinned([sys.executable, "-m", "plantd.broker", "--config", str(directory)], cpus)
    process = children.add(ManagedProcess(argv, name=name, log_dir=workdir / "logs").start())
    try:
        bound = wait_for_endpoints(directory / "run", process, 20.0)  # the ports it got
        endpoint = bound["broker"]["endpoint"]
        wait_for_broker(endpoint, timeout=20.0, process=process)
    except Exception as exc:
        raise BenchError(f"broker {name} did not answer mmi.broker\n{log_tail(process)}") from exc
    bus_in, bus_out = bound["bus"]["frontend"], bound["bus"]["backend"]
    return Broker(Running(process, endpoint, endpoint), bus_in, bus_out, credentials)


# -- the runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connect:
    ms_per_connection: float
    broker_cpu_us: float  # per connection
    client_cpu_us: float  # per connection


@dataclass(frozen=True)
class BusRun:
    samples_per_s: float
    broker_cpu_us: float  # per sample
    lost: int


class SecurityBench(Bench):
    """``mdp_broker.Bench`` with brokers of either mode; its ``_measure`` reads the clients."""

    def _name(self, what: str, mode: str) -> str:
        self._runs += 1
        return f"{mode}-{what}-{self._runs}"

    def run(self, hop: str, load: Load) -> Run:
        name = self._name(load.key, hop)
        cpu_arg = self.pin_cpu if load.pinned else None
        cpus = {int(cpu_arg)} if cpu_arg is not None else None
        with Children() as children:
            broker = start_broker(children, self.workdir, name, hop, cpu_arg)
            endpoint = broker.running.front
            workers = [
                spawn(children, worker_main, broker.credentials[WORKER], endpoint, cpus)
                for _ in range(load.workers)
            ]
            await_ready(workers, what="worker")
            try:
                wait_for_workers(endpoint, ECHO.decode(), load.workers)
            except TimeoutError as exc:
                raise BenchError(f"{name}: {exc}\n{log_tail(broker.running.process)}") from exc
            clients = [
                spawn(children, client_main, broker.credentials[CLIENT], endpoint, load.depth, cpus)
                for _ in range(load.clients)
            ]
            await_ready(clients, what="client")
            return self._measure(broker.running, clients, name)

    def connect(self, mode: str) -> Connect:
        name = self._name("connect", mode)
        cpus = {int(self.pin_cpu)} if self.pin_cpu is not None else None
        count = self.settings.connections
        with Children() as children:
            broker = start_broker(children, self.workdir, name, mode, self.pin_cpu)
            conn = spawn(
                children,
                connector_main,
                broker.credentials[CLIENT],
                broker.running.front,
                count,
                cpus,
            )
            await_ready([conn], what="connector", timeout=60.0)
            cpu_start = cpu_seconds(broker.running.pid)
            conn.send("go")
            result = _result(conn, 120.0, name, broker)
            cpu = cpu_seconds(broker.running.pid) - cpu_start
        _, elapsed, client_cpu = result
        return Connect(elapsed / count * 1e3, cpu / count * 1e6, client_cpu / count * 1e6)

    def bus(self, mode: str) -> BusRun:
        name = self._name("bus", mode)
        with Children() as children:
            broker = start_broker(children, self.workdir, name, mode, None)
            credit_in, credit_out = multiprocessing.Pipe(duplex=False)  # subscriber → publisher
            sub = spawn(
                children,
                subscriber_main,
                broker.credentials[SUBSCRIBER],
                broker.bus_out,
                credit_out,
            )
            await_ready([sub], what="subscriber")
            pub = spawn(
                children, publisher_main, broker.credentials[PUBLISHER], broker.bus_in, credit_in
            )
            credit_in.close()
            credit_out.close()
            await_ready([pub], what="publisher")
            start = time.monotonic() + self.settings.warmup
            end = start + self.settings.window
            for conn in (sub, pub):
                conn.send((int(start * 1e9), int(end * 1e9)))
            sleep_until(start)
            cpu_start = cpu_seconds(broker.running.pid)
            sleep_until(end)
            cpu = cpu_seconds(broker.running.pid) - cpu_start
            _result(pub, REPLY_TIMEOUT_MS / 1000 + 5, f"{name} publisher", broker)
            _, counted, lost = _result(sub, 10.0, f"{name} subscriber", broker)
        if not counted:
            raise BenchError(f"{name}: no sample reached the subscriber in the window")
        return BusRun(counted / self.settings.window, cpu / counted * 1e6, lost)


def _result(conn: Connection, timeout: float, name: str, broker: Broker) -> tuple[Any, ...]:
    process = broker.running.process
    if not conn.poll(timeout):
        raise BenchError(f"{name}: no result in {timeout:g} s\n{log_tail(process)}")
    result: tuple[Any, ...] = conn.recv()
    if result[0] != "ok":
        raise BenchError(f"{name}: {result[1]}\n{log_tail(process)}")
    return result


# -- the figures ---------------------------------------------------------------------------------


def compare(
    key: str,
    runs: Sequence[Sequence[Any]],
    metrics: Sequence[tuple[str, str, str]],
) -> list[Figure | Ratio]:
    """One figure per metric and mode, ``curve`` then ``none``."""
    return [
        Figure(
            f"{key}/{mode}/{metric}",
            f"{mode} {label}",
            unit,
            tuple(getattr(r, metric) for r in mode_runs),
        )
        for metric, unit, label in metrics
        for mode, mode_runs in zip(MODES, runs, strict=True)
    ]


def ratio(key: str, name: str, runs: Sequence[Sequence[Any]], metric: str, **kw: Any) -> Ratio:
    curve, none = ([getattr(r, metric) for r in mode_runs] for mode_runs in runs)
    return Ratio.paired(f"{key}/ratio/{metric}", name, curve, none, label=LABEL, **kw)


def extra(key: str, name: str, unit: str, runs: Sequence[Sequence[Any]], metric: str) -> Figure:
    """curve − none, per interleaved pair."""
    curve, none = ([getattr(r, metric) for r in mode_runs] for mode_runs in runs)
    values = tuple(c - n for c, n in zip(curve, none, strict=True))
    return Figure(f"{key}/extra/{metric}", name, unit, values, note="(curve − none, per pair)")


COST = "(cost: lower is better)"


def bench_load(bench: SecurityBench, load: Load) -> list[Figure | Ratio]:
    runs = interleaved(
        [lambda mode=mode: bench.run(mode, load) for mode in MODES], bench.settings.repeat
    )
    metrics = [
        ("requests_per_s", "req/s", "requests/s"),
        ("p50_us", "µs", "p50 latency"),
        ("p99_us", "µs", "p99 latency"),
        ("cpu_us_per_request", "µs", "broker CPU per request"),
    ]
    return [
        *compare(load.key, runs, metrics),
        ratio(load.key, "requests/s", runs, "requests_per_s", goal=load.goal),
        ratio(load.key, "p50 latency", runs, "p50_us", note=COST),
        ratio(load.key, "broker CPU per request", runs, "cpu_us_per_request", note=COST),
    ]


def bench_connections(bench: SecurityBench) -> list[Figure | Ratio]:
    runs = interleaved(
        [lambda mode=mode: bench.connect(mode) for mode in MODES], bench.settings.repeat
    )
    metrics = [
        ("ms_per_connection", "ms", "time per connection"),
        ("broker_cpu_us", "µs", "broker CPU per connection"),
        ("client_cpu_us", "µs", "client CPU per connection"),
    ]
    return [
        *compare("connect", runs, metrics),
        extra("connect", "CURVE + ZAP, extra time per connection", "ms", runs, "ms_per_connection"),
        extra(
            "connect", "CURVE + ZAP, extra broker CPU per connection", "µs", runs, "broker_cpu_us"
        ),
        ratio("connect", "time per connection", runs, "ms_per_connection", note=COST),
        ratio("connect", "broker CPU per connection", runs, "broker_cpu_us", note=COST),
    ]


def bench_bus(bench: SecurityBench) -> list[Figure | Ratio]:
    runs = interleaved([lambda mode=mode: bench.bus(mode) for mode in MODES], bench.settings.repeat)
    metrics = [
        ("samples_per_s", "samples/s", "samples/s"),
        ("broker_cpu_us", "µs", "broker CPU per sample"),
        ("lost", "samples", "samples lost"),
    ]
    return [
        *compare("bus", runs, metrics),
        ratio("bus", "samples/s", runs, "samples_per_s", note="(information, no goal)"),
        ratio("bus", "broker CPU per sample", runs, "broker_cpu_us", note=COST),
    ]


# -- the program ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (~25 s)")
    parser.add_argument(
        "--repetitions", "--repeat", type=int, dest="repeat", help="repetitions per mode and figure"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every figure here")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else DEFAULT
    if args.repeat is not None:
        if args.repeat < 1:
            parser.error("--repetitions must be at least 1")
        settings = dataclasses.replace(settings, repeat=args.repeat)
    return settings, args.json


def section(title: str, results: Sequence[Figure | Ratio]) -> list[Figure | Ratio]:
    print(f"\n{title}", flush=True)
    for figure in results:
        print(f"  {figure.line()}", flush=True)
    return list(results)


def run_all(settings: Settings, pin_cpu: str | None, workdir: Path) -> list[Figure | Ratio]:
    bench = SecurityBench(workdir, settings, pin_cpu)
    on_cpu = f", pinned to CPU {pin_cpu}" if pin_cpu is not None else ""
    figures: list[Figure | Ratio] = []
    for load in LOADS:
        where = on_cpu if load.pinned else ", unpinned"
        figures += section(f"{load.title}{where}", bench_load(bench, load))
    title = (
        f"connections: {settings.connections} fresh DEALERs in turn, each connect + one "
        f"mmi.service request{on_cpu}"
    )
    figures += section(title, bench_connections(bench))
    title = "data bus: BusPublisher → BusSubscriber, one each, unpinned (information, no goal)"
    figures += section(title, bench_bus(bench))
    return figures


@contextmanager
def no_identity() -> Iterator[None]:
    try:
        yield
    finally:
        use_identity(None)


def main(argv: Sequence[str] | None = None) -> int:
    settings, json_path = parse_args(argv)
    pin_cpu = "0" if taskset_available() else None
    pinning = (
        "taskset -c 0 for every process of one-in-flight and connection runs; others unpinned"
        if pin_cpu is not None
        else "none (taskset unavailable)"
    )
    print(machine_line(pinning), flush=True)
    print(settings.describe(), flush=True)
    started = time.monotonic()
    try:
        with (
            exit_on_sigterm(),
            no_identity(),
            tempfile.TemporaryDirectory(prefix="plantd-bench-security-") as tmp,
        ):
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
