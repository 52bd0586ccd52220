"""Polling Modbus devices onto the bus: plantd's module runtime against one request per point.

    python bench/modbus.py [--quick] [--repeat N] [--seconds S] [--json FILE]

Ten simulated Modbus TCP devices (``hil.modbus``, one process) each serve 1,000 points of mixed
types in 1,400 holding registers (400 uint16, 200 int16, 300 float32 CDAB, 100 uint32). Ten
``plant module run`` processes poll them through a real broker; a subscriber counts what
arrives on the bus. Loads:

- every point at 1 s and at 100 ms, values steady (publish on change sends almost nothing) and
  values changing on every read (every point published on every poll);
- the naive baseline: one process reading each point with its own pymodbus request and
  publishing it, the way a simple gateway does.

Figures: points/s polled and delivered to the subscriber, requests/s on the simulators,
CPU milliseconds of the module processes per 1,000 points, and the p99 age of a sample when the
subscriber gets it (source timestamp → receipt, so bus transit included). Ratios: requests per
point and CPU per point, naive ÷ plantd, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import struct
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    BenchError,
    Children,
    Figure,
    Ratio,
    await_ready,
    await_reply,
    cpu_seconds,
    exit_on_sigterm,
    log_tail,
    machine_info,
    machine_line,
    percentile,
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

DEVICES = 10
LAYOUT = (  # (type, count, registers each, order)
    ("uint16", 400, 1, "ABCD"),
    ("int16", 200, 1, "ABCD"),
    ("float32", 300, 2, "CDAB"),
    ("uint32", 100, 2, "ABCD"),
)
POINTS = sum(count for _, count, _, _ in LAYOUT)
REGISTERS = sum(count * size for _, count, size, _ in LAYOUT)


def layout() -> list[tuple[str, int, str, int]]:
    """(name, address, type, register count) for every point, in address order."""
    points, address = [], 0
    for value_type, count, size, _ in LAYOUT:
        for i in range(count):
            points.append((f"{value_type}_{i}", address, value_type, size))
            address += size
    return points


# -- the simulated devices (a child process) ---------------------------------------------------


def run_simulators(count: int, changing: bool, conn: Connection) -> None:
    """``count`` simulated devices, each on a port the system picks: sends the ports once all
    listen, then answers each message with the requests served since the last."""
    asyncio.run(_simulators(count, changing, conn))


async def _simulators(count: int, changing: bool, conn: Connection) -> None:
    from hil.modbus import Device, Simulator, TcpServer

    points = layout()
    # The low-order register of each value: bumping it changes every value a little.
    low_words = [address + size - 1 if size == 1 else address for _, address, _, size in points]

    class Changing(Device):
        def respond(self, pdu: bytes) -> bytes:
            if changing and len(pdu) == 5 and pdu[0] == 3:
                start, count = struct.unpack(">HH", pdu[1:5])
                store = self.registers["holding"]
                for address in low_words:
                    if start <= address < start + count:
                        store[address] = (store[address] + 1) & 0x7FFF
            return super().respond(pdu)

    simulators, servers = [], []
    for _ in range(count):
        device = Changing()
        device.map("holding", 0, REGISTERS)
        for index, (_, address, value_type, _) in enumerate(points):
            order = next(o for t, _, _, o in LAYOUT if t == value_type)
            value: float | int = index % 1000 + (0.5 if value_type == "float32" else 0)
            device.set_value("holding", address, value_type, value, order=order)
        simulator = Simulator({1: device})
        server = TcpServer(simulator, port=0)
        await server.start()
        simulators.append(simulator)
        servers.append(server)
    conn.send([server.port for server in servers])  # as bound
    loop = asyncio.get_running_loop()
    while True:
        if await loop.run_in_executor(None, conn.poll, 0.5):
            conn.recv()
            conn.send(sum(len(s.requests) for s in simulators))
            for simulator in simulators:
                simulator.requests.clear()  # keep memory flat over long runs


# -- the naive baseline (a child process) -------------------------------------------------------


def run_naive(ports: list[int], interval: float, bus: str, conn: Connection) -> None:
    asyncio.run(_naive(ports, interval, bus, conn))


async def _naive(ports: list[int], interval: float, bus: str, conn: Connection) -> None:
    from pymodbus.client import AsyncModbusTcpClient

    from plantd.bus import BusPublisher

    publisher = BusPublisher(bus)
    formats = {"uint16": ">H", "int16": ">h", "float32": ">f", "uint32": ">I"}
    points = layout()
    polled = 0

    async def device(port: int, name: str) -> None:
        nonlocal polled
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2)
        await client.connect()
        deadline = time.monotonic()
        while True:
            for point, address, value_type, size in points:
                reply = await client.read_holding_registers(address, count=size, device_id=1)
                words = reply.registers
                if value_type == "float32":  # CDAB
                    words = list(reversed(words))
                raw = b"".join(w.to_bytes(2, "big") for w in words)
                publisher.publish_sample(
                    f"data.{name}.{point}", struct.unpack(formats[value_type], raw)[0]
                )
                polled += 1
            deadline += interval
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))

    tasks = [asyncio.create_task(device(port, f"naive{i}")) for i, port in enumerate(ports)]
    conn.send("ready")
    loop = asyncio.get_running_loop()
    while True:
        if await loop.run_in_executor(None, conn.poll, 0.5):
            conn.recv()
            conn.send(polled)
        if any(task.done() for task in tasks):
            for task in tasks:
                if task.done():
                    task.result()


# -- the bus subscriber (a child process) --------------------------------------------------------


def run_subscriber(bus: str, conn: Connection) -> None:
    """Count every sample (a module publishes a poll's changes as one batch); the age (source
    timestamp → receipt) of one message in 16."""
    from plantd.bus import decode_batch, decode_sample, is_batch

    sock = zmq.Context().socket(zmq.SUB)
    sock.rcvhwm = 1_000_000
    sock.subscribe(b"data.")
    sock.connect(bus)
    received, messages, ages = 0, 0, []
    conn.send("ready")
    recv = sock.recv_multipart
    while True:
        if sock.poll(100):
            for _ in range(1000):
                try:
                    frames = recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                messages += 1
                if is_batch(frames[1]):
                    _, items = decode_batch(frames[1])
                    received += len(items)
                    first = items[0][1] if items else None
                else:
                    received += 1
                    first = decode_sample(frames[1]) if messages % 16 == 0 else None
                if first is not None and messages % 16 == 0:
                    ages.append(time.time() - first.timestamp)
        if conn.poll():
            conn.recv()
            conn.send((received, ages))
            received, ages = 0, []


# -- one measured run -----------------------------------------------------------------------------


def module_file(port: int, interval: float) -> str:
    points = "\n".join(
        f"      - {{name: {name}, address: {address}, type: {value_type}"
        + (", order: CDAB}" if value_type == "float32" else "}")
        for name, address, value_type, _ in layout()
    )
    return f"""driver: modbus
state_interval: 1h
connection:
  transport: tcp
  host: 127.0.0.1
  port: {port}
  timeout: 2s
groups:
  - name: all
    unit: 1
    table: holding
    interval: {interval}
    points:
{points}
"""


def measure(
    load: str,
    interval: float,
    changing: bool,
    seconds: float,
    warmup: float,
    *,
    settings: dict[str, dict[str, Any]] | None = None,
    companions: tuple[str, ...] = (),
) -> dict[str, float]:
    """One run of ``load``. ``settings`` are added to plantd.yaml's sections; ``companions``
    are plantd programs (``plantd.logger``) started with the broker and stopped with it."""
    from plantd.client import Client
    from plantd.service import call

    with tempfile.TemporaryDirectory(prefix="plantd-bench-modbus-") as tmp, Children() as children:
        base = Path(tmp)
        sections: dict[str, dict[str, Any]] = {
            "broker": {"endpoint": ANY_PORT},
            "bus": {"frontend": ANY_PORT, "backend": ANY_PORT},
            "logging": {"level": "warning"},
            "paths": {"data": str(base / "data"), "run": str(base / "run")},
        }
        for section, values in (settings or {}).items():
            sections.setdefault(section, {}).update(values)
        config_dir = write_config(base / "etc", sections)
        broker, bound = start_broker(config_dir, log_dir=base)  # on ports the system picks
        children.add(broker)
        for program in companions:
            children.add(
                ManagedProcess.plantd(
                    [program, "--config", str(config_dir)], name=program, log_dir=base
                ).start()
            )
        endpoint, bus_in, bus_out = (
            bound["broker"]["endpoint"],
            bound["bus"]["frontend"],
            bound["bus"]["backend"],
        )
        sims = spawn(children, run_simulators, DEVICES, changing)
        subscriber = spawn(children, run_subscriber, bus_out)
        ports: list[int] = await_reply(sims, what="simulator")
        await_ready([subscriber], what="subscriber")
        pids: list[int] = []
        naive: Connection | None = None
        if load == "naive":
            naive = spawn(children, run_naive, ports, interval, bus_in)
            await_ready([naive], what="naive baseline")
            pids = [children._alive[-1].pid]  # type: ignore[union-attr]
        else:
            (config_dir / "modules.d").mkdir()
            modules = []
            for i, port in enumerate(ports):
                (config_dir / "modules.d" / f"dev{i}.yaml").write_text(module_file(port, interval))
                modules.append(
                    children.add(
                        ManagedProcess.plantd(
                            ["plantd.cli", "--config", str(config_dir), "module", "run", f"dev{i}"],
                            name=f"dev{i}",
                            log_dir=base,
                        ).start()
                    )
                )
            for i, module in enumerate(modules):
                try:
                    wait_for_workers(endpoint, f"org.plantd.module.dev{i}", timeout=60)
                except TimeoutError as exc:
                    raise BenchError(f"{exc}\n{log_tail(module)}") from exc
            pids = [m.pid for m in modules]

        def polled_points() -> float:
            if naive is not None:
                naive.send("polled?")
                return float(naive.recv())
            total = 0
            with Client(endpoint, timeout=5, retries=1) as client:
                for i in range(DEVICES):
                    status = call(client, f"org.plantd.module.dev{i}", "status")
                    total += status["groups"]["all"]["polls"] * POINTS
            return float(total)

        def exchange(conn: Connection) -> Any:
            conn.send("?")
            return conn.recv()

        time.sleep(warmup)
        exchange(sims)
        exchange(subscriber)
        cpu0 = sum(cpu_seconds(pid) for pid in pids)
        polled0 = polled_points()
        start = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - start
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu0
        polled = polled_points() - polled0
        requests = exchange(sims)
        received, ages = exchange(subscriber)
        return {
            "polled_per_s": polled / elapsed,
            "delivered_per_s": received / elapsed,
            "requests_per_s": requests / elapsed,
            "requests_per_point": requests / polled if polled else float("nan"),
            "cpu_cores": cpu / elapsed,
            "cpu_ms_per_1000": cpu / polled * 1_000_000 if polled else float("nan"),
            "age_p99_ms": percentile(ages, 99) * 1000 if ages else float("nan"),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one repetition, short windows")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None, help="measured window")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    seconds = args.seconds or (3.0 if args.quick else 8.0)
    warmup = 2.0 if args.quick else 3.0
    loads = [
        ("plantd, 1 s, steady values", "plantd", 1.0, False),
        ("plantd, 1 s, every value changing", "plantd", 1.0, True),
        ("plantd, 100 ms, steady values", "plantd", 0.1, False),
        ("plantd, 100 ms, every value changing", "plantd", 0.1, True),
        ("naive, 1 s, one request per point", "naive", 1.0, True),
    ]
    print(machine_line("none (10 module processes and the simulators share both cores)"))
    print(
        f"settings: {DEVICES} devices × {POINTS} points ({REGISTERS} registers), {repeat} "
        f"repetition(s), warm-up {warmup:g} s, window {seconds:g} s; module state_interval 1h\n"
    )
    results: dict[str, list[dict[str, float]]] = {label: [] for label, *_ in loads}
    started = time.monotonic()
    with exit_on_sigterm():
        for _ in range(repeat):
            for label, load, interval, changing in loads:
                results[label].append(measure(load, interval, changing, seconds, warmup))
    figures: list[Figure | Ratio] = []
    for label, *_ in loads:
        runs = results[label]
        print(label)
        key = label.replace(", ", "_").replace(" ", "_")
        rows = [
            ("polled_per_s", "points polled/s", "pt/s"),
            ("delivered_per_s", "samples delivered to the subscriber/s", "pt/s"),
            ("requests_per_s", "requests/s on the simulators", "req/s"),
            ("cpu_cores", "CPU of the polling processes", "cores"),
            ("cpu_ms_per_1000", "CPU per 1,000 points", "ms"),
            ("age_p99_ms", "p99 sample age at the subscriber", "ms"),
        ]
        for field, name, unit in rows:
            values = tuple(run[field] for run in runs)
            goal = passed = None
            if label == "plantd, 100 ms, every value changing" and field == "polled_per_s":
                goal, passed = "≥ 95,000 pt/s", statistics.median(values) >= 95_000
            if label == "plantd, 100 ms, every value changing" and field == "cpu_cores":
                goal, passed = "≤ 1 core", statistics.median(values) <= 1.0
            figure = Figure(f"{key}.{field}", f"  {name}", unit, values, goal=goal, passed=passed)
            figures.append(figure)
            print(figure.line())
        print()
    plantd = results["plantd, 1 s, every value changing"]
    naive = results["naive, 1 s, one request per point"]
    print("naive ÷ plantd, 1 s, every value changing (higher is better for plantd)")
    for field, name, goal in (
        ("requests_per_point", "requests per point", 20.0),
        ("cpu_ms_per_1000", "CPU per point", 5.0),
    ):
        ratio = Ratio.paired(
            f"ratio.{field}",
            f"  {name}",
            [n[field] for n in naive],
            [p[field] for p in plantd],
            label="naive ÷ plantd",
            goal=goal,
        )
        figures.append(ratio)
        print(ratio.line())
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    if args.json:
        write_json(args.json, machine_info(), figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
