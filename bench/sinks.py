"""Sink throughput: the historian, the MQTT sink and the PostgreSQL sink, each against a
baseline measured in the same run.

For each repetition, with fresh processes (a broker, then the sink under test):

- **live flow**: a publisher sends N samples over 100 points on the bus (in bursts of 1,000,
  2 ms apart, well below the bus high-water mark); the figure is N ÷ the time from the first
  publish until the sink reports every sample stored (historian) or delivered (sinks);
- **backlog drain** (MQTT, PostgreSQL): a queue file pre-filled with B samples, the sink
  started with ``drain_rate: 0`` (no limit); B ÷ the time from its service answering until it
  reports all B delivered;
- **disk bytes per 1,000 samples**: ``write_bytes`` of ``/proc/<pid>/io`` of the historian,
  and of a sink process (its disk queue), over the live flow, per 1,000 samples.

Baselines, in-process, same machine, same run: raw SQLite ``executemany`` into a plain table
in batches of 5,000 (WAL, ``synchronous=FULL``: the historian's settings); raw paho-mqtt QoS 1
publishing of N messages waiting for every PUBACK; raw psycopg ``COPY`` of N rows in one
transaction. MQTT runs against the machine's Mosquitto (127.0.0.1:1883) and PostgreSQL against
the machine's server (127.0.0.1:5432, database ``test``); a sink whose server is not there is
skipped with a note.

    .venv/bin/python bench/sinks.py            # N = 20,000, B = 100,000, 3 repetitions
    .venv/bin/python bench/sinks.py --quick    # N = 3,000, B = 10,000, 1 repetition
"""

from __future__ import annotations

import argparse
import json
import secrets
import socket
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Figure, Ratio, machine_info, machine_line, write_json

from plantd.bus import BusPublisher, Sample, encode_sample
from plantd.client import Client
from plantd.config import load_config
from plantd.errors import PlantdError
from plantd.service import call
from plantd.sinks import DiskQueue, Intake
from plantd.testing import (
    ManagedProcess,
    free_tcp_ports,
    wait_for_broker,
    wait_for_workers,
    write_config,
)

POINTS = 100
PG_DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres"


def reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


class Stack:
    """A config directory, a broker, and the processes started from it."""

    def __init__(self, base: Path) -> None:
        self.base = base
        mdp, bus_in, bus_out = free_tcp_ports(3)
        self.settings = {
            "broker": {"endpoint": f"tcp://127.0.0.1:{mdp}"},
            "bus": {
                "frontend": f"tcp://127.0.0.1:{bus_in}",
                "backend": f"tcp://127.0.0.1:{bus_out}",
            },
            "paths": {"data": str(base / "data"), "run": str(base / "run")},
            "logging": {"level": "warning"},
            "historian": {"status_interval": 3600, "batch_interval": 0.5},
        }
        self.config_dir = write_config(base / "etc", self.settings)
        self.config = load_config(self.config_dir)
        self.processes: list[ManagedProcess] = []
        self.start(["plantd.broker", "--config", str(self.config_dir)], "broker")
        wait_for_broker(self.config.broker.endpoint)

    def start(self, args: list[str], name: str) -> ManagedProcess:
        process = ManagedProcess.plantd(args, name=name, log_dir=self.base / "logs").start()
        self.processes.append(process)
        return process

    def plant(self, name: str, *args: str) -> ManagedProcess:
        return self.start(["plantd.cli", "--config", str(self.config_dir), *args], name)

    def status(self, service: str) -> dict[str, Any]:
        with Client(self.config.broker.endpoint, timeout=5, retries=2) as client:
            result: dict[str, Any] = call(client, service, "status")
            return result

    def close(self) -> None:
        for process in self.processes:
            process.kill()


def publish(stack: Stack, count: int) -> float:
    """Publish ``count`` samples over POINTS topics; returns the monotonic start time."""
    publisher = BusPublisher(stack.config.bus.frontend)
    time.sleep(0.5)  # the publisher learns the subscriptions (ZeroMQ's slow joiner)
    started = time.monotonic()
    for index in range(count):
        publisher.publish_sample(f"data.bench.p{index % POINTS:03d}", float(index))
        if index % 1000 == 999:
            time.sleep(0.002)
    publisher.close()
    return started


def wait_for(stack: Stack, service: str, done: Any, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done(stack.status(service)):
            return time.monotonic()
        time.sleep(0.02)
    raise RuntimeError(f"{service}: not done in {timeout:g} s; logs in {stack.base / 'logs'}")


def run_historian(base: Path, count: int) -> dict[str, float]:
    stack = Stack(base)
    try:
        historian = stack.plant("historian", "historian", "run")
        wait_for_workers(stack.config.broker.endpoint, "org.plantd.Historian")
        before = write_bytes(historian.pid)
        started = publish(stack, count)
        ended = wait_for(stack, "org.plantd.Historian", lambda s: s["stored"] >= count, 120)
        written = write_bytes(historian.pid) - before
        return {"rate": count / (ended - started), "bytes": written / count * 1000}
    finally:
        stack.close()


def sink_file(kind: str, base: Path, table: str) -> str:
    if kind == "mqtt":
        body = f"mqtt: {{host: 127.0.0.1, port: 1883, topic: 'bench/{table}/{{point}}'}}"
    else:
        body = f"postgres: {{dsn: '{PG_DSN}', table: {table}}}"
    settings = "queue: {drain_rate: 0, batch_size: 1000}\nrepair: {enabled: false}"
    return f"type: {kind}\n{settings}\n{body}\n"


def run_sink(base: Path, kind: str, count: int, backlog: int) -> dict[str, float]:
    table = f"plantd_bench_{secrets.token_hex(4)}"
    stack = Stack(base)
    try:
        (stack.config_dir / "sinks.d").mkdir()
        (stack.config_dir / "sinks.d" / "live.yaml").write_text(sink_file(kind, base, table))
        (stack.config_dir / "sinks.d" / "drain.yaml").write_text(sink_file(kind, base, table))
        service = "org.plantd.sink.live"
        live = stack.plant("sink-live", "sink", "run", "live")
        wait_for_workers(stack.config.broker.endpoint, service)
        before = write_bytes(live.pid)
        started = publish(stack, count)
        ended = wait_for(stack, service, lambda s: s["counters"]["delivered"] >= count, 120)
        written = write_bytes(live.pid) - before
        live.kill()

        queue = DiskQueue(
            stack.config.paths.data / "sinks" / "drain.queue.db", max_bytes=2**31, max_age=1e9
        )
        now = time.time()
        for chunk in range(0, backlog, 10_000):
            intake = Intake()
            intake.entries = [
                (f"data.bench.p{i % POINTS:03d}", encode_sample(Sample(float(i), now, seq=i + 1)))
                for i in range(chunk, min(backlog, chunk + 10_000))
            ]
            queue.commit_now(intake)
        queue.close()
        stack.plant("sink-drain", "sink", "run", "drain")
        wait_for_workers(stack.config.broker.endpoint, "org.plantd.sink.drain", timeout=60)
        # From the first status on: what was delivered before it does not count.
        begun = time.monotonic()
        first = stack.status("org.plantd.sink.drain")["counters"]["delivered"]
        finished = wait_for(
            stack, "org.plantd.sink.drain", lambda s: s["queue"]["entries"] == 0, 300
        )
        if backlog - first < backlog // 2:
            raise RuntimeError(f"the backlog drained before it could be timed ({first} sent)")
        return {
            "rate": count / (ended - started),
            "bytes": written / count * 1000,
            "drain": (backlog - first) / (finished - begun),
        }
    finally:
        stack.close()
        if kind == "postgres":
            import psycopg

            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {table}")


def store_throughput(base: Path, count: int) -> float:
    """The historian's writer in-process: ``HistoryStore.write_batch`` in batches of 5,000."""
    from plantd.config import HistorianConfig
    from plantd.historian import HistoryStore

    store = HistoryStore(base / f"store-{secrets.token_hex(3)}.db", HistorianConfig())
    now = time.time()
    batch = [
        (f"bench.p{i % POINTS:03d}", Sample(float(i), now + i / 1000, seq=i)) for i in range(count)
    ]
    started = time.monotonic()
    for chunk in range(0, count, 5000):
        store.write_batch(batch[chunk : chunk + 5000])
    elapsed = time.monotonic() - started
    store.close()
    return count / elapsed


def baseline_sqlite(base: Path, count: int) -> float:
    path = base / f"raw-{secrets.token_hex(3)}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (point TEXT, ts REAL, value REAL, quality INTEGER, seq INTEGER)")
    rows = [(f"bench.p{i % POINTS:03d}", time.time(), float(i), 0, i) for i in range(count)]
    started = time.monotonic()
    for chunk in range(0, count, 5000):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO t VALUES (?,?,?,?,?)", rows[chunk : chunk + 5000])
        conn.execute("COMMIT")
    elapsed = time.monotonic() - started
    conn.close()
    return count / elapsed


def baseline_paho(count: int) -> float:
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    connected = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_connect = lambda *args: connected.set()
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    connected.wait(10)
    payload = json.dumps({"point": "bench.p000", "value": 1.5, "timestamp": time.time()}).encode()
    started = time.monotonic()
    for chunk in range(0, count, 1000):  # bursts of 1,000 in flight, as the sink's batches
        infos = [
            client.publish(f"bench/raw/p{i % POINTS}", payload, 1)
            for i in range(chunk, min(count, chunk + 1000))
        ]
        for info in infos:
            info.wait_for_publish(30)
    elapsed = time.monotonic() - started
    client.disconnect()
    client.loop_stop()
    return count / elapsed


def baseline_copy(count: int) -> float:
    import datetime as dt

    import psycopg

    with psycopg.connect(PG_DSN) as conn:
        conn.execute(
            "CREATE TEMP TABLE raw (time timestamptz, point text, value double precision, "
            "quality smallint, epoch bigint, seq bigint)"
        )
        now = dt.datetime.now(dt.UTC)
        started = time.monotonic()
        with conn.cursor().copy("COPY raw FROM STDIN") as copy:
            for i in range(count):
                copy.write_row((now, f"bench.p{i % POINTS:03d}", float(i), 0, 1, i))
        conn.commit()
        return count / (time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small N, one repetition")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = parser.parse_args(argv)
    count = 3000 if args.quick else 20_000
    backlog = 10_000 if args.quick else 100_000
    repeat = args.repeat or (1 if args.quick else 3)
    mqtt_ok, pg_ok = reachable(1883), reachable(5432)
    print(machine_line("none (sinks, broker and load share both cores)"))
    print(f"N = {count:,} live samples over {POINTS} points, backlog B = {backlog:,}, "
          f"{repeat} repetition(s)")  # fmt: skip
    figures: list[Figure | Ratio] = []
    runs: dict[str, list[dict[str, float]]] = {"historian": [], "mqtt": [], "postgres": []}
    base_rates: dict[str, list[float]] = {"sqlite": [], "paho": [], "copy": []}
    stores: list[float] = []
    store_count = max(count, 50_000)
    try:
        with tempfile.TemporaryDirectory(prefix="plantd-bench-sinks-") as tmp:
            base = Path(tmp)
            for rep in range(repeat):
                base_rates["sqlite"].append(baseline_sqlite(base, store_count))
                stores.append(store_throughput(base, store_count))
                runs["historian"].append(run_historian(base / f"h{rep}", count))
                if mqtt_ok:
                    base_rates["paho"].append(baseline_paho(backlog))
                    runs["mqtt"].append(run_sink(base / f"m{rep}", "mqtt", count, backlog))
                if pg_ok:
                    base_rates["copy"].append(baseline_copy(backlog))
                    runs["postgres"].append(run_sink(base / f"p{rep}", "postgres", count, backlog))
    except (PlantdError, RuntimeError, OSError) as exc:
        print(f"bench/sinks.py: a run went wrong: {exc}", file=sys.stderr)
        return 1
    baseline_for = {"historian": "sqlite", "mqtt": "paho", "postgres": "copy"}
    label_for = {
        "sqlite": "raw SQLite executemany",
        "paho": "raw paho QoS 1",
        "copy": "raw psycopg COPY",
    }
    for sink, results in runs.items():
        if not results:
            figures.append(Figure(f"{sink}.skipped", f"{sink}: skipped", "", (float("nan"),),
                                  note="its server is not reachable"))  # fmt: skip
            continue
        baseline = base_rates[baseline_for[sink]]
        figures.append(
            Figure(f"{sink}.live", f"{sink}: samples/s, live flow", "/s",
                   tuple(r["rate"] for r in results), note=f"N = {count:,}, end to end")
        )  # fmt: skip
        if sink == "historian":
            capacity, note = stores, f"in-process writer, {store_count:,} samples"
        else:
            capacity, note = [r["drain"] for r in results], f"B = {backlog:,}"
        what = "writer throughput" if sink == "historian" else "backlog drain"
        figures.append(Figure(f"{sink}.capacity", f"{sink}: {what}, samples/s", "/s",
                              tuple(capacity), note=note))  # fmt: skip
        figures.append(
            Figure(f"{sink}.baseline", f"  baseline: {label_for[baseline_for[sink]]}", "/s",
                   tuple(baseline))
        )  # fmt: skip
        figures.append(
            Ratio.paired(f"{sink}.ratio", f"  {sink} {what} ÷ baseline", capacity, baseline,
                         label="sink ÷ baseline")
        )  # fmt: skip
        unit = "historian database" if sink == "historian" else "disk queue"
        figures.append(
            Figure(f"{sink}.bytes", f"{sink}: bytes to disk per 1,000 samples", "B",
                   tuple(r["bytes"] for r in results), note=f"({unit}, /proc write_bytes)")
        )  # fmt: skip
    for figure in figures:
        print(figure.line())
    if args.json:
        write_json(args.json, machine_info(), figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
