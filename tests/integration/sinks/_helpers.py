"""Real upstream servers the sink tests can take down: a private Mosquitto, a TCP proxy in
front of the machine's PostgreSQL; an MQTT subscriber keyed on (point, seq); a bus recorder."""

from __future__ import annotations

import contextlib
import json
import random
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import zmq
from paho.mqtt.enums import CallbackAPIVersion

from plantd.bus import Sample, decode, decode_batch, is_batch
from plantd.testing import ManagedProcess, wait_for_listening_port, wait_for_workers
from tests.conftest import Stack

MOSQUITTO = "/usr/sbin/mosquitto"


class Mosquitto:
    """A private broker with persistence so that a subscriber's session (and the messages
    queued for it) survive a restart, as on a production broker.

    Its port: Mosquitto cannot listen on port 0 (``listener 0`` means a unix socket), so the
    first start tries a random port below the kernel's ephemeral range (where port-0 binds and
    outgoing connections never land) and, if Mosquitto says it is in use, another one. The
    port is taken as Mosquitto's only once its own process is seen listening there. A restart
    binds the same port again (as a restarted production broker would).
    """

    _PORTS = range(20_000, 32_768)
    _TRIES = 20

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = 0
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "mosquitto.conf"
        self.process = ManagedProcess([MOSQUITTO, "-c", str(self.config)], name="mosquitto",
                                      log_dir=directory)  # fmt: skip

    def _write_config(self, port: int) -> None:
        self.config.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {self.directory}/\nmax_queued_messages 0\nuser root\n"
            "autosave_interval 1\n"
        )

    def start(self) -> None:
        if self.port:
            self.process.start()
            wait_for_port(self.port)
            return
        for _ in range(self._TRIES):
            port = random.choice(self._PORTS)
            self._write_config(port)
            logged = len(self.process.log_text())
            self.process.start()
            try:
                listening = wait_for_listening_port(self.process)
            except RuntimeError:
                if "Address already in use" in self.process.log_text()[logged:]:
                    continue  # someone has that port: try another
                raise
            assert listening == port, (listening, port)
            self.port = port
            return
        raise RuntimeError(f"mosquitto found no free port in {self._TRIES} tries")

    def stop(self) -> None:
        self.process.terminate()


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class MqttCollector:
    """A QoS 1 subscriber with a persistent session: every (topic prefix, point, seq) seen and
    how many times, from one-sample payloads (a JSON object) and ``batching: module`` ones (a
    JSON array of them). ``raw=False`` keeps no copy of the payloads (for heavy flows)."""

    def __init__(self, port: int, pattern: str, client_id: str, *, raw: bool = True) -> None:
        self.seen: dict[str, Counter[tuple[str, int]]] = {}
        self.keep_raw = raw
        self.raw: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        client.reconnect_delay_set(0.1, 0.5)
        client.on_connect = lambda c, u, f, rc, p: c.subscribe(pattern, qos=1)
        client.on_subscribe = lambda *args: self.subscribed.set()
        client.on_message = self._on_message
        client.connect("127.0.0.1", port)
        client.loop_start()
        self.client = client

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            if self.keep_raw:
                self.raw.append((message.topic, bytes(message.payload)))
            if message.payload[:1] in (b"{", b"["):
                data = json.loads(message.payload)
                prefix = message.topic.split("/")[1]
                counter = self.seen.setdefault(prefix, Counter())
                for item in data if isinstance(data, list) else [data]:
                    if "alarm" not in item:  # a sample (an alarm record is counted apart)
                        counter[(item["point"], item["seq"])] += 1

    def count(self, prefix: str) -> int:
        with self.lock:
            return len(self.seen.get(prefix, ()))

    def keys(self, prefix: str) -> set[tuple[str, int]]:
        with self.lock:
            return set(self.seen.get(prefix, Counter()))

    def duplicates(self, prefix: str) -> int:
        with self.lock:
            return sum(n - 1 for n in self.seen.get(prefix, Counter()).values())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class BusRecorder:
    """Every sample published on ``data.``, keyed (point, seq), with its arrival time."""

    def __init__(self, endpoint: str) -> None:
        self.arrived: dict[tuple[str, int], float] = {}
        self.epochs: set[int] = set()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(endpoint,), daemon=True)
        self._thread.start()
        self._ready.wait(5)
        time.sleep(0.3)  # the subscription reaches the broker's XPUB

    def _run(self, endpoint: str) -> None:
        context = zmq.Context.instance()
        sub = context.socket(zmq.SUB)
        sub.subscribe(b"data.")
        sub.connect(endpoint)
        self._ready.set()
        try:
            while not self._stop.is_set():
                if sub.poll(100):
                    topic, payload = sub.recv_multipart()
                    if is_batch(payload):  # a module's poll: data.<module>, a sample per point
                        _, items = decode_batch(payload)
                        samples = [(f"{topic.decode()[5:]}.{n}", s) for n, s in items]
                    else:
                        sample = decode(payload)
                        assert isinstance(sample, Sample)
                        samples = [(topic.decode()[5:], sample)]
                    for point, sample in samples:
                        self.epochs.add(sample.epoch)
                        self.arrived[(point, sample.seq)] = time.time()
        finally:
            sub.close(linger=0)

    def keys(self) -> set[tuple[str, int]]:
        return set(self.arrived)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


class TcpProxy:
    """Forwards a loopback port to ``target``; ``down()`` closes the listener and cuts every
    connection (the database is unreachable), ``up()`` listens again, on the same port.

    The first ``up()`` binds port 0 and keeps the port the system gave."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._stop = threading.Event()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self.up()

    def _wake(self) -> None:
        self._wake_w.send(b"x")

    def up(self) -> None:
        with self._lock:
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            self.port = listener.getsockname()[1]
            listener.listen(64)
            listener.setblocking(False)
            self._listener = listener
            self._pending: list[Callable[[], None]] = [
                lambda: self._selector.register(listener, selectors.EVENT_READ, "accept")
            ]
        self._wake()

    def down(self) -> None:
        done = threading.Event()

        def cut() -> None:
            if self._listener is not None:
                self._selector.unregister(self._listener)
                self._listener.close()
                self._listener = None
            for a, b in self._pairs:
                for sock in (a, b):
                    with contextlib.suppress(KeyError, ValueError):
                        self._selector.unregister(sock)
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    sock.close()
            self._pairs.clear()
            done.set()

        with self._lock:
            self._pending.append(cut)
        self._wake()
        done.wait(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(0.5):
                if key.data is None:
                    self._wake_r.recv(64)
                    with self._lock:
                        pending, self._pending = self._pending, []
                    for job in pending:
                        job()
                elif key.data == "accept":
                    self._accept()
                else:
                    self._pump(key.fileobj, key.data)  # type: ignore[arg-type]

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        client.setblocking(False)
        server.setblocking(False)
        self._pairs.append((client, server))
        self._selector.register(client, selectors.EVENT_READ, server)
        self._selector.register(server, selectors.EVENT_READ, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            data = source.recv(65536)
            if data:
                sink.setblocking(True)
                sink.sendall(data)
                sink.setblocking(False)
                return
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            sock.close()
        self._pairs = [p for p in self._pairs if source not in p]

    def close(self) -> None:
        self.down()
        self._stop.set()
        self._wake()
        self._thread.join(5)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()


def plant_process(stack: Stack, name: str, *args: str) -> ManagedProcess:
    process = ManagedProcess.plantd(
        ["plantd.cli", "--config", str(stack.config_dir), *args], name=name, log_dir=stack.log_dir
    ).start()
    stack.processes.append(process)
    return process


def start_sink(stack: Stack, name: str) -> ManagedProcess:
    process = plant_process(stack, f"sink-{name}", "sink", "run", name)
    wait_for_workers(stack.endpoint, f"org.plantd.sink.{name}")
    return process


def start_historian(stack: Stack) -> ManagedProcess:
    process = plant_process(stack, "historian", "historian", "run")
    wait_for_workers(stack.endpoint, "org.plantd.Historian")
    return process


def write_file(stack: Stack, folder: str, name: str, text: str) -> None:
    directory = stack.config_dir / folder
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.yaml").write_text(text)


def counter_module(points: int, interval: str = "100ms") -> str:
    """A fake module whose ``points`` counters change at every poll (so all are published)."""
    lines = [
        "driver: fake",
        "groups:",
        "  - name: main",
        f"    interval: {interval}",
        "    points:",
    ]
    lines += [f"      - {{name: p{i:02d}, value: 0, pattern: counter}}" for i in range(points)]
    return "\n".join(lines) + "\n"


def plant_json(stack: Stack, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir), *args, "--json"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def contiguous(keys: set[tuple[str, int]]) -> dict[str, list[int]]:
    """Per point, the seqs missing between its lowest and highest (empty lists: no gap)."""
    by_point: dict[str, set[int]] = {}
    for point, seq in keys:
        by_point.setdefault(point, set()).add(seq)
    return {
        point: sorted(set(range(min(seqs), max(seqs) + 1)) - seqs)
        for point, seqs in by_point.items()
    }
