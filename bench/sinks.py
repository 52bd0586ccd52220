"""Sink throughput: the historian, the MQTT sink and the PostgreSQL sink, each against a
baseline measured in the same run, then each at line rate from batched input.

For each repetition, with fresh processes (a broker, then the sink under test):

- **live flow**: a publisher sends N samples over 100 points on the bus (in bursts of 1,000,
  2 ms apart, well below the bus high-water mark); the figure is N ÷ the time from the first
  publish until the sink reports every sample stored (historian) or delivered (sinks);
- **backlog drain** (MQTT, PostgreSQL): a queue file pre-filled with B samples (as the sink's
  intake queues them: a batch per module per commit), the sink started with ``drain_rate: 0``
  (no limit); B ÷ the time from its service answering until it reports all B delivered;
- **disk bytes per 1,000 samples**: ``write_bytes`` of ``/proc/<pid>/io`` of the historian,
  and of a sink process (its disk queue), over the live flow, per 1,000 samples.

Baselines, in-process, same machine, same run: raw SQLite ``executemany`` into a plain table
in batches of 5,000 (WAL, ``synchronous=FULL``: the historian's settings); raw paho-mqtt QoS 1
publishing of N messages waiting for every PUBACK; raw psycopg ``COPY`` of N rows in one
transaction. MQTT runs against the machine's Mosquitto (127.0.0.1:1883) and PostgreSQL against
the machine's server (127.0.0.1:5432, database ``test``); a sink whose server is not there is
skipped with a note.

**Line rate** (the data plane as modules feed it): a load process publishes 10 modules ×
1,000 points every second, every value changing, as modules do — one batch per module per
poll (``BusPublisher.publish_batch``): 10,000 samples/s offered as 10 messages/s. Each
consumer in turn, fresh processes each time: the historian, the MQTT sink with
``batching: none`` (one message per sample, the default) and ``batching: module``, the
PostgreSQL sink (default queue settings, repair off). After a warm-up, over a window:

- **offered** and **delivered** samples/s: the consumer's ``received`` and its ``delivered``
  (historian: ``stored``) counters over the window;
- **CPU per sample**: the consumer process's CPU time (``/proc/<pid>/stat``, every thread) ÷
  samples delivered in the window;
- **p99 age** (MQTT): a QoS 0 subscriber in a process of its own, on Mosquitto: receipt time
  − the sample's source timestamp, over every sample it got in the window;
- **queue growth** (sinks): the disk queue's entries at the end − at the start, per second:
  what the upstream did not keep up with (0 when everything is delivered);
- **broker RSS**: the plantd broker's ``VmRSS`` at the end of the window, and its growth over
  it (a subscriber that falls behind makes ZeroMQ queue messages in the broker).

``--before DIR`` runs the line-rate consumers of another plantd tree too, interleaved with
this checkout's (each repetition: after, before; then before, after…): DIR holds a ``plantd``
package (``git archive REV plantd | tar -x -C DIR``) that the consumer processes import
(``PYTHONPATH``); the broker and the load are this checkout's. Ratios after ÷ before are
printed per pair; MQTT's ``batching: module`` is compared with the tree's default sink.

    .venv/bin/python bench/sinks.py            # N = 20,000, B = 100,000, 3 repetitions
    .venv/bin/python bench/sinks.py --quick    # N = 3,000, B = 10,000, 1 repetition
    .venv/bin/python bench/sinks.py --before /tmp/before   # line rate against an older tree
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    BenchError,
    Children,
    Figure,
    Ratio,
    await_ready,
    cpu_seconds,
    machine_info,
    machine_line,
    percentile,
    rss_bytes,
    sleep_until,
    spawn,
    write_json,
)

from plantd.bus import BusPublisher, Quality, Sample
from plantd.client import Client
from plantd.config import load_config
from plantd.errors import PlantdError
from plantd.service import call
from plantd.sinks import DiskQueue
from plantd.sinks._intake import IntakeState
from plantd.testing import (
    ANY_PORT,
    ManagedProcess,
    start_broker,
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
        self.settings = {
            "broker": {"endpoint": ANY_PORT},
            "bus": {"frontend": ANY_PORT, "backend": ANY_PORT},
            "paths": {"data": str(base / "data"), "run": str(base / "run")},
            "logging": {"level": "warning"},
            "historian": {"status_interval": 3600, "batch_interval": 0.5},
        }
        self.config_dir = write_config(base / "etc", self.settings)
        self.processes: list[ManagedProcess] = []
        broker, _ = start_broker(self.config_dir, log_dir=base / "logs")
        self.processes.append(broker)
        self.config = load_config(self.config_dir)  # with the ports the broker got

    def start(self, args: list[str], name: str, tree: Path | None = None) -> ManagedProcess:
        """``python -m args``; with ``tree``, importing the ``plantd`` package found there."""
        env = None if tree is None else {**os.environ, "PYTHONPATH": str(tree)}
        process = ManagedProcess.plantd(args, name=name, log_dir=self.base / "logs", env=env)
        self.processes.append(process.start())
        return process

    def plant(self, name: str, *args: str, tree: Path | None = None) -> ManagedProcess:
        return self.start(["plantd.cli", "--config", str(self.config_dir), *args], name, tree)

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

        # The backlog as the sink's intake queues it: a batch per module per commit.
        queue = DiskQueue(
            stack.config.paths.data / "sinks" / "drain.queue.db", max_bytes=2**31, max_age=1e9
        )
        intake = IntakeState({}, [], batch_size=1000)
        now = time.time()
        for chunk in range(0, backlog, 10_000):
            for i in range(chunk, min(backlog, chunk + 10_000)):
                topic = f"data.bench.p{i % POINTS:03d}"
                intake.offer(topic, Sample(float(i), now, seq=i // POINTS + 1), now)
            queue.commit_now(intake.take())
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


# -- line rate: 10 modules x 1,000 points every second, as batches ------------------------------

LINE_MODULES, LINE_POINTS = 10, 1000
POLL_PHASE = 0.75  # seconds after a poll when the counters are read (a poll's delivery is done)
VARIANTS = {  # name: (what runs, the sink file's extra mqtt settings, runs on --before trees)
    "historian": ("historian", None, True),
    "mqtt": ("mqtt", {}, True),
    "mqtt-module": ("mqtt", {"batching": "module"}, False),
    "postgres": ("postgres", None, True),
}
LABELS = {
    "historian": "historian",
    "mqtt": "mqtt (batching: none)",
    "mqtt-module": "mqtt (batching: module)",
    "postgres": "postgres",
}


def publish_polls(frontend: str, seconds: float, conn: Connection) -> None:
    """(A child process.) Every module's poll once a second for ``seconds``, every value
    changing, one batch per module per poll: what LINE_MODULES modules publish."""
    publisher = BusPublisher(frontend)
    names = [f"p{i:04d}" for i in range(LINE_POINTS)]
    time.sleep(0.5)  # the publisher learns the subscriptions (ZeroMQ's slow joiner)
    conn.send("ready")
    started, polls = time.monotonic(), 0
    while time.monotonic() - started < seconds:
        now = time.time()
        for module in range(LINE_MODULES):
            publisher.publish_batch(
                f"data.m{module}",
                [(n, float(polls * LINE_POINTS + i), now, Quality.GOOD)
                 for i, n in enumerate(names)],
            )  # fmt: skip
        polls += 1
        sleep_until(started + polls)
    publisher.close()


def subscribe_ages(topic: str, conn: Connection) -> None:
    """(A child process.) A QoS 0 paho subscriber on ``topic``: at each message on ``conn``,
    sends back the samples received since the last one and their p99 age (receipt time − the
    sample's source timestamp), in either payload shape (an object, or an array of them)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    lock = threading.Lock()
    ages: list[float] = []
    subscribed = threading.Event()

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        now = time.time()
        data = json.loads(message.payload)
        stamps = (
            [item["timestamp"] for item in data] if isinstance(data, list) else [data["timestamp"]]
        )
        with lock:
            ages.extend(now - stamp for stamp in stamps)

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=0)
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_message = on_message
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    subscribed.wait(10)
    conn.send("ready")
    while conn.recv() != "stop":
        with lock:
            window, ages[:] = list(ages), []
        conn.send((len(window), percentile(window, 99)))
    client.loop_stop()


def line_sink_file(kind: str, tag: str, extra: dict[str, Any] | None) -> str:
    settings = {"type": kind, "repair": {"enabled": False}}
    if kind == "mqtt":
        module = (extra or {}).get("batching") == "module"
        topic = f"bench/{tag}/{{module}}" + ("" if module else "/{point}")
        settings["mqtt"] = {"host": "127.0.0.1", "port": 1883, "topic": topic, "will": None,
                            **(extra or {})}  # fmt: skip
    else:
        settings["postgres"] = {"dsn": PG_DSN, "table": tag}
    return json.dumps(settings)  # JSON is YAML


def line_rate(
    base: Path, variant: str, tree: Path | None, warmup: float, window: float
) -> dict[str, float]:
    """One consumer at line rate (see the module's docstring); ``tree``: the plantd to run it."""
    kind, extra, _ = VARIANTS[variant]
    tag = f"plantd_line_{secrets.token_hex(4)}"
    stack = Stack(base)
    broker = stack.processes[0]
    try:
        with Children() as children:
            if kind == "historian":
                service, delivered = "org.plantd.Historian", ("stored",)
                consumer = stack.plant("historian", "historian", "run", tree=tree)
            else:
                service, delivered = "org.plantd.sink.line", ("counters", "delivered")
                (stack.config_dir / "sinks.d").mkdir()
                (stack.config_dir / "sinks.d" / "line.yaml").write_text(
                    line_sink_file(kind, tag, extra)
                )
                consumer = stack.plant("sink", "sink", "run", "line", tree=tree)
            wait_for_workers(stack.config.broker.endpoint, service, timeout=60)
            ages = None
            if kind == "mqtt":
                ages = spawn(children, subscribe_ages, f"bench/{tag}/#")
                await_ready([ages], what="MQTT subscriber")
            load = spawn(children, publish_polls, stack.config.bus.frontend, warmup + window + 2)
            await_ready([load], what="load")
            # Polls go at whole seconds from now: sampling between two of them (at the same
            # phase at both ends of a whole number of seconds) counts exactly `window` polls.
            polled_from = time.monotonic()

            def sample() -> tuple[dict[str, Any], float, int]:
                return stack.status(service), cpu_seconds(consumer.pid), rss_bytes(broker.pid)

            sleep_until(polled_from + warmup + POLL_PHASE)
            first, cpu0, rss0 = sample()
            if ages is not None:
                ages.send("mark")
                ages.recv()
            sleep_until(polled_from + warmup + POLL_PHASE + window)
            last, cpu1, rss1 = sample()
            age = at_subscriber = float("nan")
            if ages is not None:
                ages.send("mark")
                received, age = ages.recv()
                at_subscriber = received / window
                ages.send("stop")
            if not consumer.running():
                raise BenchError(f"{variant}: the consumer died; logs in {stack.base / 'logs'}")
    finally:
        stack.close()
        if kind == "postgres":
            import psycopg

            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {tag}")
    # The counters moved by exactly `window` polls: rates are per `window` seconds.
    done = _get(last, delivered) - _get(first, delivered)
    queued = 0.0
    if kind != "historian":
        queued = (last["queue"]["entries"] - first["queue"]["entries"]) / window
    return {
        "offered": (last["received"] - first["received"]) / window,
        "delivered": done / window,
        "cpu_us": (cpu1 - cpu0) / done * 1e6 if done else float("nan"),
        "at_subscriber": at_subscriber,
        "age_p99": age,
        "queue_growth": queued,
        "broker_rss": rss1 / 2**20,
        "broker_rss_growth": (rss1 - rss0) / 2**20,
    }


def _get(status: dict[str, Any], path: tuple[str, ...]) -> int:
    value: Any = status
    for key in path:
        value = value[key]
    return int(value)


_ALL = ("historian", "mqtt", "postgres")
LINE_METRICS = (  # key, name, unit, for which kinds of consumer
    ("delivered", "delivered samples/s", "/s", _ALL),
    ("offered", "offered (taken off the bus)", "/s", _ALL),
    ("cpu_us", "CPU per sample delivered", "µs", _ALL),
    ("at_subscriber", "samples/s at a subscriber", "/s", ("mqtt",)),
    ("age_p99", "p99 sample age at the subscriber", "s", ("mqtt",)),
    ("queue_growth", "disk queue growth", "/s", ("mqtt", "postgres")),
    ("broker_rss", "broker RSS at the end", "MB", _ALL),
    ("broker_rss_growth", "broker RSS growth in the window", "MB", _ALL),
)


def line_figures(
    runs: dict[str, list[dict[str, float]]], before: dict[str, list[dict[str, float]]]
) -> list[Figure | Ratio]:
    """Every line-rate figure, per variant (and per tree), then the after ÷ before ratios."""
    figures: list[Figure | Ratio] = []
    for variant, results in runs.items():
        kind = VARIANTS[variant][0]
        for key, tag, these in (("", "", results), ("before.", " [before]", before.get(variant))):
            for index, (metric, name, unit, kinds) in enumerate(LINE_METRICS):
                if these and kind in kinds:
                    title = f"{LABELS[variant]}{tag}: {name}" if index == 0 else f"  {name}"
                    values = tuple(r[metric] for r in these)
                    figures.append(Figure(f"line.{variant}.{key}{metric}", title, unit, values))
    for variant, results in runs.items():
        old = before.get(variant if VARIANTS[variant][2] else "mqtt")  # module vs none
        if not old or not results:
            continue
        pairs = min(len(old), len(results))
        against = "before" if VARIANTS[variant][2] else "mqtt (batching: none) [before]"
        for metric, what, note in (
            ("delivered", "delivered", ""),
            ("cpu_us", "CPU per sample", "(lower is better)"),
        ):
            figures.append(Ratio.paired(
                f"line.{variant}.ratio.{metric}", f"{LABELS[variant]}: {what} ÷ {against}",
                [r[metric] for r in results[:pairs]], [r[metric] for r in old[:pairs]],
                label="after ÷ before", note=note,
            ))  # fmt: skip
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small N, one repetition")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument(
        "--before", type=Path, default=None, metavar="DIR",
        help="also run the line-rate consumers from the plantd package in DIR, interleaved",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.before is not None and not (args.before / "plantd" / "__init__.py").is_file():
        parser.error(f"--before {args.before}: no plantd package there")
    count = 3000 if args.quick else 20_000
    backlog = 10_000 if args.quick else 100_000
    repeat = args.repeat or (1 if args.quick else 3)
    warmup, window = (3, 5) if args.quick else (5, 15)  # whole seconds: whole polls
    mqtt_ok, pg_ok = reachable(1883), reachable(5432)
    variants = [
        v for v, (kind, _, _) in VARIANTS.items()
        if (kind != "mqtt" or mqtt_ok) and (kind != "postgres" or pg_ok)
    ]  # fmt: skip
    print(machine_line("none (sinks, broker and load share both cores)"))
    print(f"N = {count:,} live samples over {POINTS} points, backlog B = {backlog:,}, "
          f"{repeat} repetition(s)")  # fmt: skip
    line_runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    line_before: dict[str, list[dict[str, float]]] = {}
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
            for rep in range(repeat):  # after, before; before, after; …
                trees: list[Path | None] = [None] if args.before is None else [None, args.before]
                for variant in variants:
                    for tree in trees if rep % 2 == 0 else trees[::-1]:
                        if tree is not None and not VARIANTS[variant][2]:
                            continue  # a setting the older tree does not have
                        where = (
                            base / f"line-{variant}-{rep}-{'after' if tree is None else 'before'}"
                        )
                        result = line_rate(where, variant, tree, warmup, window)
                        into = line_runs if tree is None else line_before
                        into.setdefault(variant, []).append(result)
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
    print(
        f"line rate: {LINE_MODULES} modules × {LINE_POINTS:,} points every 1 s "
        f"({LINE_MODULES * LINE_POINTS:,} samples/s offered as {LINE_MODULES} batches/s), "
        f"warm-up {warmup:g} s, window {window:g} s"
        + (f"; before: the plantd in {args.before}" if args.before else "")
    )
    line = line_figures(line_runs, line_before)
    for figure in line:
        print(figure.line())
    figures += line
    if args.json:
        write_json(args.json, machine_info(), figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
