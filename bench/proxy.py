"""plantd-proxy under load: 50 Server-Sent Event clients on 1,000 samples/s, and what a REST
call costs against the same call over MDP directly.

    python bench/proxy.py [--quick] [--repeat N] [--seconds S] [--clients N] [--json FILE]

Setup: a broker (``security.mode: none``) and the Echo worker (``plant serve echo``) from a
throwaway config directory; ``user.bench`` admitted with the ``viewer`` role and an API token
made for it with ``plantd.proxy._accounts`` (``Authorization: Bearer``); and, fresh for every
repetition, ``plantd-proxy`` (``python -m plantd.proxy``) in a process of its own.

1. **Streams.** A publisher process sends what ten modules polled at 10 Hz send
   (``BusPublisher.publish_batch`` on ``data.benchK``, one batch every 10 ms in turn: the
   modules' polls are not in step), each sample stamped with ``time.time()`` when sent: 10
   points a module, 1,000 samples/s (the issue's load), and, unless ``--quick``, 100 points a
   module, 10,000 samples/s (the same 100 events/s, ten times the bytes).
   ``--clients`` (50) SSE clients on ``?topic=data.`` in two other processes (raw
   asyncio sockets, so that the clients' CPU is not the proxy's and little of the machine's):
   each reads the chunked stream and, per event, the first sample's ``time`` (latency =
   arrival − sent, wall clock of the same machine), and counts events, samples and ``gap``
   drops. Beside them, the baseline: one plain ZeroMQ subscriber on the bus in a process of
   its own, the latency the bus itself gives in the same run. After a warm-up, a common window
   (monotonic clock) in which every process counts; the proxy's CPU time is read from
   ``/proc/<pid>/stat`` at both ends. Figures: proxy CPU in cores (goal < 0.5), bus → client
   latency p50/p99/max (goal p99 < 100 ms), events/s per client (expected 100), samples
   delivered ÷ published × clients, events dropped; the bus subscriber's p50/p99 and the
   ratio proxy ÷ bus of the p99s.
2. **REST ÷ MDP.** N calls of ``org.plantd.module.Echo echo {"text": …}`` one after another,
   through the proxy (``httpx.AsyncClient``, keep-alive, ``POST
   /api/v1/services/org.plantd.module.Echo/echo``) and directly (``plantd.client.AsyncClient``
   + ``call_async``), interleaved (REST, MDP, MDP, REST…), 20 unmeasured calls first each;
   time per call of each and the ratio per pair: what the HTTP hop adds.

``--quick``: one repetition, 1 s warm-up, 3 s window, 300 calls (the smoke test's mode).
Nothing is pinned: every process shares the machine's cores, as they would on a device.
Exit status 0 whatever the figures, 1 if a run went wrong, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
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
    sleep_until,
    spawn,
    write_json,
)

from plantd.testing import (
    ANY_PORT,
    ManagedProcess,
    start_broker,
    wait_for_workers,
    write_config,
)

MODULES, RATE = 10, 10.0  # 100 batches/s
LOADS = {"1k": 10, "10k": 100}  # points per module: 1,000 and 10,000 samples/s
CLIENTS = 50
CLIENT_PROCESSES = 2
TOPIC = "data."
ECHO = "org.plantd.module.Echo"
PERSON = "user.bench"
LATENCY_GOAL_MS = 100.0
CPU_GOAL = 0.5
WARM_CALLS = 20

_TIME = re.compile(rb'"time":([-0-9.eE+]+)')
_GAP = re.compile(rb'event: gap\ndata: \{"dropped":(\d+)\}')


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _cores(value: float) -> str:
    return f"{value:.3f}"


# -- the stack ----------------------------------------------------------------------------------


class Stack:
    """A broker and the Echo worker in ``base``; :meth:`start_proxy` starts a proxy on them."""

    def __init__(self, base: Path, children: Children) -> None:
        self.base = base
        self.config_dir = write_config(
            base / "etc",
            {
                "broker": {"endpoint": ANY_PORT},
                "bus": {"frontend": ANY_PORT, "backend": ANY_PORT},
                "logging": {"level": "warning", "publish": "off"},
                "metrics": {"enabled": False},
                "proxy": {"listen": "127.0.0.1:0"},
                "paths": {"data": str(base / "data"), "run": str(base / "run")},
            },
        )
        broker, bound = start_broker(self.config_dir, log_dir=base)
        children.add(broker)
        self.endpoint: str = bound["broker"]["endpoint"]
        self.frontend: str = bound["bus"]["frontend"]
        self.backend: str = bound["bus"]["backend"]
        argv = ["plantd.cli", "--config", str(self.config_dir), "serve", "echo"]
        echo = children.add(ManagedProcess.plantd(argv, name="echo", log_dir=base).start())
        try:
            wait_for_workers(self.endpoint, ECHO, timeout=30)
        except TimeoutError as exc:
            raise BenchError(f"{exc}\n{log_tail(echo)}") from exc
        self.token = self._make_token()

    def _make_token(self) -> str:
        """An API token of ``user.bench``, admitted as a viewer."""
        from plantd.clock import SYSTEM_CLOCK
        from plantd.config import load_config
        from plantd.proxy._accounts import Accounts
        from plantd.security import KeySet

        config = load_config(self.config_dir, {})
        KeySet(config).add(PERSON, roles=("viewer",), generate_secret=self.base / "bench.secret")
        accounts = Accounts.from_config(config, SYSTEM_CLOCK)
        try:
            secret, _ = accounts.create_token(PERSON, "bench", None)
        finally:
            accounts.close()
        return secret

    def start_proxy(self, children: Children, name: str) -> tuple[ManagedProcess, str]:
        """``plantd-proxy`` (one of ``children``) and its URL, once it answers the token."""
        argv = ["plantd.proxy", "--config", str(self.config_dir)]
        process = children.add(ManagedProcess.plantd(argv, name=name, log_dir=self.base).start())
        url = self._served_by(process)
        answer = httpx.get(f"{url}/api/v1/me", headers=self.headers, timeout=10)
        if answer.status_code != 200:
            raise BenchError(f"the proxy refused the bench's token: {answer.text}")
        return process, url

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _served_by(self, process: ManagedProcess, timeout: float = 30.0) -> str:
        from plantd.config import load_config
        from plantd.proxy._server import endpoints_path, read_endpoints

        config = load_config(self.config_dir, {})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not process.running():
                raise BenchError(f"the proxy exited:\n{log_tail(process)}")
            with contextlib.suppress(OSError, ValueError):
                record = json.loads(endpoints_path(config).read_text())
                url = read_endpoints(config)
                if record.get("pid") == process.pid and url:
                    return url
            time.sleep(0.05)
        raise BenchError(f"the proxy did not record its URL within {timeout:g} s")


# -- child processes: the publisher, the clients, the bus baseline ----------------------------


def run_publisher(frontend: str, points: int, conn: Connection) -> None:
    """Ten modules' batches, one every 10 ms in turn, until told to stop; sends the count of
    batches whose send time fell in the window it is given."""
    from plantd.bus import BusPublisher, Quality

    publisher = BusPublisher(frontend)
    names = [f"p{i:03d}" for i in range(points)]
    good = Quality.GOOD
    period = 1.0 / (RATE * MODULES)
    window: tuple[float, float] | None = None
    sent_in_window = 0
    conn.send("ready")
    next_at = time.monotonic()
    tick = 0
    try:
        while True:
            if conn.poll():
                message = conn.recv()
                if message == "stop":
                    break
                window = message
            module = tick % MODULES
            value = float(tick)
            stamp = time.time()
            publisher.publish_batch(
                f"data.bench{module}", [(name, value, stamp, good) for name in names]
            )
            now = time.monotonic()
            if window is not None and window[0] <= now < window[1]:
                sent_in_window += 1
            tick += 1
            next_at += period
            if (left := next_at - time.monotonic()) > 0:
                time.sleep(left)
    finally:
        publisher.close()
    conn.send(sent_in_window)


class ClientStats:
    def __init__(self) -> None:
        self.events = 0
        self.samples = 0
        self.dropped = 0
        self.chunks = 0
        self.latencies: list[float] = []

    def add(self, chunk: bytes, now: float) -> None:
        self.chunks += 1
        self.samples += chunk.count(b'"point":')
        start = 0
        while (at := chunk.find(b"event: samples", start)) >= 0:
            self.events += 1
            found = _TIME.search(chunk, at)
            if found is not None:
                self.latencies.append((now - float(found.group(1))) * 1000)
            start = at + 14
        for gap in _GAP.finditer(chunk):
            self.dropped += int(gap.group(1))


def run_clients(url: str, headers: dict[str, str], count: int, conn: Connection) -> None:
    """``count`` SSE clients; reports ready once every stream is open, then counts in the
    window it is sent and reports what each saw."""
    conn.send(asyncio.run(_clients(url, headers, count, conn)))


async def _clients(
    url: str, headers: dict[str, str], count: int, conn: Connection
) -> list[dict[str, Any]]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    stats = [ClientStats() for _ in range(count)]
    window: list[float] = []
    opened = [asyncio.Event() for _ in range(count)]
    done = asyncio.Event()
    tasks = [
        asyncio.create_task(
            _client(host, int(port), headers, stats=s, opened=o, window=window, done=done)
        )
        for s, o in zip(stats, opened, strict=True)
    ]
    for event in opened:
        await event.wait()
    conn.send("ready")
    window.extend(await asyncio.to_thread(conn.recv))
    await asyncio.sleep(max(0.0, window[1] - time.monotonic()) + 0.2)
    done.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return [
        {
            "events": s.events,
            "samples": s.samples,
            "dropped": s.dropped,
            "chunks": s.chunks,
            "latencies": s.latencies,
        }
        for s in stats
    ]


async def _client(
    host: str,
    port: int,
    headers: dict[str, str],
    *,
    stats: ClientStats,
    opened: asyncio.Event,
    window: list[float],
    done: asyncio.Event,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(
        f"GET /api/v1/stream?topic={TOPIC} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Accept: text/event-stream\r\n{extra}\r\n".encode()
    )
    status = await reader.readline()
    if b" 200 " not in status:
        raise BenchError(f"the stream answered {status!r}")
    while (await reader.readline()) not in (b"\r\n", b""):
        pass  # the headers (uvicorn sends a streamed body chunked)
    try:
        while not done.is_set():
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                return
            chunk = (await reader.readexactly(size + 2))[:-2]
            opened.set()
            if window and window[0] <= time.monotonic() < window[1]:
                stats.add(chunk, time.time())
    finally:
        writer.close()


def run_bus_subscriber(backend: str, conn: Connection) -> None:
    """The baseline: a plain SUB on the bus, the first sample's time of every batch."""
    import zmq

    from plantd.bus import decode_batch

    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.subscribe(TOPIC.encode())
    sub.connect(backend)
    latencies: list[float] = []
    window: tuple[float, float] | None = None
    conn.send("ready")
    try:
        while True:
            if window is None and conn.poll():
                window = conn.recv()
            if window is not None and time.monotonic() >= window[1]:
                break
            if not sub.poll(100):
                continue
            _, payload = sub.recv_multipart()
            now, mono = time.time(), time.monotonic()
            if window is not None and window[0] <= mono:
                _, items = decode_batch(payload)
                latencies.append((now - items[0][1].timestamp) * 1000)
    finally:
        sub.close(linger=0)
        context.term()
    conn.send(latencies)


# -- part 1: streams ------------------------------------------------------------------------------


def stream_run(
    stack: Stack, points: int, clients: int, warmup: float, seconds: float
) -> dict[str, float]:
    """One repetition: a fresh proxy, publisher, clients and bus subscriber."""
    with Children() as children:
        proxy, url = stack.start_proxy(children, "proxy")
        headers = stack.headers
        publisher = spawn(children, run_publisher, stack.frontend, points)
        baseline = spawn(children, run_bus_subscriber, stack.backend)
        shares = [clients // CLIENT_PROCESSES] * CLIENT_PROCESSES
        shares[0] += clients - sum(shares)
        groups = [spawn(children, run_clients, url, headers, n) for n in shares if n]
        await_ready([publisher, baseline, *groups], what="load", timeout=60)
        start = time.monotonic() + warmup
        end = start + seconds
        for conn in (publisher, baseline, *groups):
            conn.send((start, end))
        sleep_until(start)
        cpu0 = cpu_seconds(proxy.pid)
        sleep_until(end)
        cpu1 = cpu_seconds(proxy.pid)
        bus = await_reply(baseline, what="bus subscriber", timeout=30)
        seen = [c for conn in groups for c in await_reply(conn, what="clients", timeout=30)]
        publisher.send("stop")
        batches = await_reply(publisher, what="publisher", timeout=30)
        if not proxy.running():
            raise BenchError(f"the proxy died during the run:\n{log_tail(proxy)}")
    latencies = [v for c in seen for v in c["latencies"]]
    if not latencies or not bus:
        raise BenchError("no event reached a client (or the bus subscriber) in the window")
    published_samples = batches * points
    return {
        "proxy_cores": (cpu1 - cpu0) / seconds,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
        "events_per_s": statistics.median(c["events"] for c in seen) / seconds,
        "writes_per_s": statistics.median(c["chunks"] for c in seen) / seconds,
        "delivered": sum(c["samples"] for c in seen) / max(1, published_samples * clients),
        "dropped": float(sum(c["dropped"] for c in seen)),
        "published_per_s": published_samples / seconds,
        "bus_p50_ms": percentile(bus, 50),
        "bus_p99_ms": percentile(bus, 99),
    }


def part_streams(
    stack: Stack, load: str, *, repeat: int, clients: int, warmup: float, seconds: float
) -> list[Figure | Ratio]:
    points = LOADS[load]
    print(
        f"1. Streams: {clients} SSE clients on {TOPIC!r}, {MODULES} modules × {points} points "
        f"at {RATE:g} Hz ({MODULES * points * RATE:,.0f} samples/s)"
    )
    runs = [stream_run(stack, points, clients, warmup, seconds) for _ in range(repeat)]
    rows: list[tuple[str, str, str, dict[str, Any]]] = [
        ("published_per_s", "samples published/s", "/s", {"fmt": _count}),
        ("proxy_cores", "CPU of the proxy", "cores", {"fmt": _cores}),
        ("p50_ms", "bus → client latency p50", "ms", {}),
        ("p99_ms", "bus → client latency p99", "ms", {}),
        ("max_ms", "bus → client latency max", "ms", {}),
        ("events_per_s", "events/s per client (median)", "/s", {}),
        ("writes_per_s", "writes/s per client (median)", "/s", {}),
        ("delivered", "samples delivered ÷ published × clients", "", {}),
        ("dropped", "events dropped (gaps), all clients", "", {"fmt": _count}),
        ("bus_p50_ms", "baseline: bus → plain subscriber p50", "ms", {}),
        ("bus_p99_ms", "baseline: bus → plain subscriber p99", "ms", {}),
    ]
    goals = {
        "proxy_cores": (f"< {CPU_GOAL:g} core", lambda v: v < CPU_GOAL),
        "p99_ms": (f"< {LATENCY_GOAL_MS:g} ms", lambda v: v < LATENCY_GOAL_MS),
    }
    figures: list[Figure | Ratio] = []
    for key, name, unit, extra in rows:
        values = tuple(r[key] for r in runs)
        goal = goals.get(key)
        figure = Figure(
            f"stream.{load}.{key}",
            f"  {name}",
            unit,
            values,
            goal=goal[0] if goal else None,
            passed=goal[1](statistics.median(values)) if goal else None,
            **extra,
        )
        figures.append(figure)
        print(figure.line())
    ratio = Ratio.paired(
        f"stream.{load}.ratio.p99",
        "  latency p99",
        [r["p99_ms"] for r in runs],
        [r["bus_p99_ms"] for r in runs],
        label="proxy ÷ plain subscriber",
    )
    figures.append(ratio)
    print(ratio.line())
    print()
    return figures


# -- part 2: REST ÷ MDP ---------------------------------------------------------------------------


def rest_run(url: str, headers: dict[str, str], calls: int) -> float:
    """Seconds per echo call through the proxy."""
    import httpx

    async def run() -> float:
        path = f"/api/v1/services/{ECHO}/echo"
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as http:
            for index in range(WARM_CALLS + calls):
                if index == WARM_CALLS:
                    started = time.perf_counter()
                answer = await http.post(path, json={"text": "bench", "n": index})
                if answer.status_code != 200 or answer.json()["result"]["n"] != index:
                    raise BenchError(f"REST echo answered {answer.status_code}: {answer.text}")
            return (time.perf_counter() - started) / calls

    return asyncio.run(run())


def mdp_run(endpoint: str, calls: int) -> float:
    """Seconds per echo call straight to the broker."""
    from plantd.client import AsyncClient
    from plantd.service import call_async

    async def run() -> float:
        async with AsyncClient(endpoint, retries=0, timeout=10) as client:
            for index in range(WARM_CALLS + calls):
                if index == WARM_CALLS:
                    started = time.perf_counter()
                result: Any = await call_async(client, ECHO, "echo", {"text": "bench", "n": index})
                if result["n"] != index:
                    raise BenchError(f"MDP echo answered {result!r}")
            return (time.perf_counter() - started) / calls

    return asyncio.run(run())


def part_rest(stack: Stack, repeat: int, calls: int) -> list[Figure | Ratio]:
    print(f"2. REST ÷ MDP: {calls} echo calls one after another, interleaved")
    with Children() as children:
        _, url = stack.start_proxy(children, "proxy-rest")
        rest, mdp = interleaved(
            [lambda: rest_run(url, stack.headers, calls), lambda: mdp_run(stack.endpoint, calls)],
            repeat,
        )
    figures: list[Figure | Ratio] = [
        Figure("rest.rest_us", "  per call through the proxy (REST)", "µs", _us(rest)),
        Figure("rest.mdp_us", "  per call over MDP directly", "µs", _us(mdp)),
        Ratio.paired("rest.ratio", "  time per call", rest, mdp, label="REST ÷ MDP"),
    ]
    for figure in figures:
        print(figure.line())
    print()
    return figures


def _us(values: list[float]) -> tuple[float, ...]:
    return tuple(v * 1e6 for v in values)


# -- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one repetition, short windows")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None, help="measured window")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--calls", type=int, default=None, help="REST/MDP calls per run")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    warmup = 1.0 if args.quick else 3.0
    calls = args.calls or (300 if args.quick else 1000)
    print(machine_line("none (every process shares the cores)"))
    print(
        f"settings: {repeat} repetition(s), warm-up {warmup:g} s, window {seconds:g} s, "
        f"{calls} calls per REST/MDP run\n"
    )
    started = time.monotonic()
    figures: list[Figure | Ratio] = []
    try:
        with (
            exit_on_sigterm(),
            tempfile.TemporaryDirectory(prefix="plantd-bench-proxy-") as tmp,
            Children() as children,
        ):
            stack = Stack(Path(tmp), children)
            for load in ("1k",) if args.quick else ("1k", "10k"):
                figures += part_streams(
                    stack, load, repeat=repeat, clients=args.clients, warmup=warmup, seconds=seconds
                )
            figures += part_rest(stack, max(repeat, 3), calls)
    except BenchError as exc:
        print(f"proxy benchmark: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(f"total {time.monotonic() - started:.0f} s")
    if args.json:
        write_json(args.json, machine_info(), figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
