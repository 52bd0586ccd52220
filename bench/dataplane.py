"""The data plane end to end: ten Modbus devices through the whole plantd stack, against a plain
pymodbus + paho-mqtt script doing the same job, in one run.

    python bench/dataplane.py [--quick] [--repetitions N] [--only 1s|100ms] [--curve]
                              [--no-sink] [--json FILE]

Setup. Ten simulated Modbus TCP devices (``bench/modbus.py``'s simulators, one process), each
1,000 holding registers whose every value changes on every read; two profiles, 1,000 uint16
points or 500 float32 points (CDAB); polled every 1 s and every 100 ms. Every repetition starts
a fresh stack, each part a process of its own, from a throwaway config directory: the broker,
the state service, the historian, the modules (``bench/modbus.py``'s module files at the
default ``state_interval``: one ``plant module host`` process where this checkout has one that
works, else one ``plant module run NAME`` each; the output says which) and an MQTT sink to the
machine's Mosquitto (127.0.0.1:1883), in its batched JSON mode if it has one. Consumers, each in
a process of its own: ``BusSubscriber(["data."])`` counting samples, and a paho subscriber on
Mosquitto counting the samples in the sink's payloads (one a message, or every one of a batch).

Baseline, interleaved with plantd (plantd, script; script, plantd; …): :func:`baseline_script`,
a plain script in its own interpreter (``python -c``: it imports pymodbus and paho and nothing
else) that polls the same devices, one request per 125 registers, and publishes one QoS 1 MQTT
message per device per poll with every value as JSON. The same MQTT subscriber counts it.

A run: start the stack and the consumers; start the modules (or the script), noting the time;
wait for the first sample at each consumer (*start to first data*) and read memory (*start*);
warm up; read every counter and CPU time at both ends of a window that is a whole number of
poll intervals; memory again (*end*). Counters move in lumps (a poll, a historian batch), so
rates are taken between the ends of lumps: a module's last polls, the historian's last
commits, the moments a consumer counted; other readings are timed at the midpoint of the call
(a busy service answers late). Figures per interval and profile, medians over the repetitions
with their spread (a run whose service did not answer in time left out, and counted):

- points/s polled (the modules' ``status``: polls × points, and points skipped by overruns) and
  delivered: to the bus subscriber, to the historian (``status``: ``stored``), acknowledged to
  the sink by Mosquitto (its ``status``), and at the MQTT subscriber; Modbus requests/s;
- CPU of every plantd process (``/proc/PID/stat`` utime + stime over the window, in cores), in
  total and per process; the devices' and consumers' as information (they share the cores);
- RSS and PSS sums (``VmRSS``, ``smaps_rollup`` ``Pss``) at start, at the window's start and at
  the end; p99 sample age at each consumer (receipt − source timestamp); start to first data.

plantd ÷ script: MQTT points delivered per core (higher is better for plantd), RSS and PSS at
the end (costs). The issue's goals, PASS/MISS: at 1 s every point reaches MQTT with ≤ 0.5 core
of plantd processes in total; at 100 ms 100,000 pt/s reach the historian and a subscriber with
≤ 1.5 cores, p99 age < 1 s, memory flat (end ≤ start + 10 %); broker + state + historian +
modules ≤ 200 MB RSS at start (1 s); start to first data ≤ 5 s. ``--no-sink`` runs the stack
without the sink (the 100 ms goals do not name it).

Exit status: 0 whatever the figures (a MISS is information), 1 if a run went wrong (a process
died, a service did not come up: the output says which, with the end of its log), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import inspect
import json
import math
import os
import pwd
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

import modbus
from _harness import (
    BenchError,
    Children,
    Figure,
    Ratio,
    await_reply,
    cpu_seconds,
    exit_on_sigterm,
    log_tail,
    machine_info,
    machine_line,
    percentile,
    rss_bytes,
    spawn,
    warn,
    write_json,
)

from plantd.client import Client
from plantd.config import load_config
from plantd.errors import PlantdError, RequestTimeout
from plantd.security import Credentials, secret_key_path, use_identity, user_identity
from plantd.service import call
from plantd.testing import (
    ANY_PORT,
    ManagedProcess,
    make_keys,
    start_broker,
    wait_for_workers,
    write_config,
)

T = TypeVar("T")
Run = dict[str, Any]  # one repetition's figures

DEVICES, REGISTERS = 10, 1000
MQTT = ("127.0.0.1", 1883)
MB = 1024 * 1024
NAN = float("nan")
STATUS_TIMEOUT = 3.0  # a service that does not answer `status` by then is swamped: nan
HOST_TIMEOUT = 90.0  # for a module host to register every module (it loads them in turn)
INTERVALS = {"1s": 1.0, "100ms": 0.1}
PROFILES = ("uint16", "float32")
ROLES = ("broker", "state", "historian", "modules", "sink")  # the plantd processes, by job
CORE_ROLES = ("broker", "state", "historian", "modules")  # the 200 MB goal's
OTHERS = ("devices", "bus_subscriber", "mqtt_subscriber")  # not plantd: information


@contextmanager
def use_profile(profile: str, registers: int) -> Iterator[None]:
    """Make ``bench/modbus.py``'s simulators and module files use ``profile`` (its functions
    read its module-level LAYOUT, POINTS and REGISTERS)."""
    saved = modbus.LAYOUT, modbus.POINTS, modbus.REGISTERS
    if profile == "uint16":
        modbus.LAYOUT = (("uint16", registers, 1, "ABCD"),)
    else:
        modbus.LAYOUT = (("float32", registers // 2, 2, "CDAB"),)
    modbus.POINTS = sum(count for _, count, _, _ in modbus.LAYOUT)
    modbus.REGISTERS = sum(count * size for _, count, size, _ in modbus.LAYOUT)
    try:
        yield
    finally:
        modbus.LAYOUT, modbus.POINTS, modbus.REGISTERS = saved


# -- child processes: the devices and the consumers ---------------------------------------------


def run_devices(profile: str, registers: int, count: int, conn: Connection) -> None:
    """The simulated devices, every value changing on every read (sends its pid, then the
    ports they listen on, picked by the system; then answers each message with the Modbus
    requests served since the last)."""
    conn.send(os.getpid())
    with use_profile(profile, registers):
        modbus.run_simulators(count, True, conn)


def run_bus_subscriber(endpoint: str, credentials: Credentials | None, conn: Connection) -> None:
    asyncio.run(_bus_subscriber(endpoint, credentials, conn))


async def _bus_subscriber(endpoint: str, credentials: Credentials | None, conn: Connection) -> None:
    """Count the ``data.`` samples ``BusSubscriber`` hands out; the age of one in 16."""
    from plantd.bus import BusSubscriber, Sample

    subscriber = BusSubscriber(endpoint, ["data."], credentials=credentials)
    await asyncio.sleep(0.3)  # the subscription reaches the broker before anyone publishes
    received, ages, first, looked = 0, [], None, 0.0
    conn.send(os.getpid())
    while True:
        message = await subscriber.receive_within(0.02)
        if message is not None and isinstance(message.payload, Sample):
            received += 1
            first = first or time.time()
            if received % 16 == 0:
                ages.append(time.time() - message.payload.timestamp)
        if time.monotonic() - looked < 0.01:
            continue  # under load, a look at the pipe every 10 ms
        looked = time.monotonic()
        if conn.poll():
            conn.recv()
            conn.send({"samples": received, "ages": ages, "first": first, "at": time.monotonic()})
            received, ages = 0, []


def count_samples(payload: bytes) -> tuple[int, list[float], str]:
    """Samples in one MQTT payload, up to 16 of their source timestamps, and its shape.

    One sample: a JSON object with ``value`` (the sink's default payload). A batch: a JSON
    list of samples, or an object with them in a list or object under ``samples``, ``points``,
    ``values``, ``metrics`` or ``data``, with per-sample timestamps or a common one.
    """
    try:
        data = json.loads(payload)
    except ValueError:
        return 1, [], f"not JSON ({len(payload)} bytes)"
    items: Any = data if isinstance(data, list) else None
    shape = f"a JSON list of {len(data)}" if isinstance(data, list) else type(data).__name__
    if isinstance(data, dict):
        shape = "{" + ", ".join(list(data)[:7]) + ("…}" if len(data) > 7 else "}")
        if "value" not in data:
            key = next((k for k in ("samples", "points", "values", "metrics", "data")
                        if isinstance(data.get(k), list | dict)), None)  # fmt: skip
            items = None if key is None else data[key]
    if items is None:
        return 1, [s for s in (_stamp(data),) if s is not None], shape
    listed = list(items.values()) if isinstance(items, dict) else items
    every = max(1, -(-len(listed) // 16))  # at most 16 stamps a payload
    stamps = [s for item in listed[::every] if (s := _stamp(item))]
    return len(listed), stamps or [s for s in (_stamp(data),) if s is not None], shape


def _stamp(item: Any) -> float | None:
    for key in ("timestamp", "ts", "t", "time") if isinstance(item, dict) else ():
        if isinstance(value := item.get(key), int | float) and not isinstance(value, bool):
            return value / 1000 if value > 1e11 else float(value)  # milliseconds
    return None


def run_mqtt_subscriber(prefix: str, conn: Connection) -> None:
    """A paho subscriber on ``prefix/#`` (QoS 0), counting the samples in the payloads."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    lock, subscribed = threading.Lock(), threading.Event()
    counts: dict[str, Any] = {"samples": 0, "ages": [], "first": None, "shape": None}

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        now = time.time()
        samples, stamps, shape = count_samples(message.payload)
        with lock:
            counts["samples"] += samples
            counts["ages"].extend(now - stamp for stamp in stamps)
            if counts["first"] is None:
                counts["first"], counts["shape"] = now, shape

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix.replace('/', '-')}-sub")
    client.on_connect = lambda client, *args: client.subscribe(f"{prefix}/#", qos=0)
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_message = on_message
    client.connect(*MQTT)
    client.loop_start()
    if not subscribed.wait(10):
        raise SystemExit("the MQTT subscriber could not subscribe")
    conn.send(os.getpid())
    while True:
        if conn.poll(0.5):
            conn.recv()
            with lock:
                conn.send({**counts, "at": time.monotonic()})
                counts.update(samples=0, ages=[])


def wait_pids(conns: Sequence[Connection], timeout: float = 30.0) -> list[int]:
    """Each child's first message: its pid (a consumer sends it once subscribed)."""
    if not all(conn.poll(timeout) for conn in conns):
        raise BenchError(f"a device or consumer process did not start within {timeout:g} s")
    return [conn.recv() for conn in conns]


def exchange(conn: Connection) -> Any:
    conn.send("?")
    if not conn.poll(10):
        raise BenchError("a device or consumer process did not answer")
    return conn.recv()


# -- the baseline: a plain script, run with `python -c` so that it imports only what it uses -----


def baseline_script(settings_json: str) -> None:
    """Poll every device, one request per 125 registers; publish one QoS 1 message per device
    per poll, ``{"device", "timestamp", "values": {point: value}}``. Prints ``ready`` once
    connected, then the points polled so far for every line read on stdin."""
    import asyncio
    import json
    import struct
    import sys
    import threading
    import time

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from pymodbus.client import AsyncModbusTcpClient

    settings = json.loads(settings_json)
    float32, registers = settings["profile"] == "float32", settings["registers"]
    size = 2 if float32 else 1
    names = [f"{settings['profile']}_{i}" for i in range(registers // size)]
    step = 125 - 125 % size  # never split a value over two requests
    chunks = [(a, min(step, registers - a)) for a in range(0, registers, step)]
    prefix, polled = settings["prefix"], 0

    connected = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=prefix.replace("/", "-"))
    client.on_connect = lambda *args: connected.set()
    client.connect(settings["mqtt_host"], settings["mqtt_port"])
    client.loop_start()
    connected.wait(10)

    def decode(words: list[int]) -> list[float] | list[int]:
        if not float32:
            return words
        pairs = zip(words[1::2], words[0::2], strict=True)  # CDAB: the low word comes first
        return [struct.unpack(">f", struct.pack(">HH", high, low))[0] for high, low in pairs]

    async def device(index: int, port: int) -> None:
        nonlocal polled
        modbus = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2)
        await modbus.connect()
        deadline = time.monotonic()
        while True:
            stamp, words = time.time(), []
            for address, count in chunks:
                reply = await modbus.read_holding_registers(address, count=count, device_id=1)
                if reply.isError():
                    raise RuntimeError(f"device {index}: {reply}")
                words += reply.registers
            values = dict(zip(names, decode(words), strict=True))
            message = {"device": f"dev{index}", "timestamp": stamp, "values": values}
            client.publish(f"{prefix}/dev{index}", json.dumps(message), qos=1)
            polled += len(names)
            deadline = max(deadline + settings["interval"], time.monotonic())
            await asyncio.sleep(deadline - time.monotonic())

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with asyncio.TaskGroup() as tasks:
            for index, port in enumerate(settings["ports"]):
                tasks.create_task(device(index, port))
            print("ready", flush=True)
            while await loop.run_in_executor(None, sys.stdin.readline):
                print(polled, flush=True)
            raise SystemExit(0)

    asyncio.run(main())


# Taken now: inspect reads the file again when asked, and it may be edited while a run goes on.
BASELINE_SOURCE = inspect.getsource(baseline_script)


class ScriptProcess(ManagedProcess):
    """The baseline script, with pipes to ask it for its count (stderr goes to its log)."""

    def start(self) -> ScriptProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
            )
        return self

    def ask(self, question: str | None = "?") -> str:
        assert self.process is not None
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        if question is not None:
            self.process.stdin.write(question + "\n")
            self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        if not answer:
            raise BenchError(f"the baseline script ended\n{log_tail(self)}")
        return answer


# -- the stack --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    interval: str  # a key of INTERVALS
    profile: str
    devices: int
    registers: int

    @property
    def seconds(self) -> float:
        return INTERVALS[self.interval]

    @property
    def points(self) -> int:
        """Points per device."""
        return self.registers // (2 if self.profile == "float32" else 1)

    @property
    def expected(self) -> float:
        """Points per second, every device polled on time."""
        return self.devices * self.points / self.seconds

    @property
    def title(self) -> str:
        return f"{self.interval}, {self.profile}"


class Modules:
    """How modules run: one ``plant module host`` if this checkout has one that works, else one
    ``plant module run NAME`` each (decided at the first run, kept after)."""

    def __init__(self) -> None:
        probe = [sys.executable, "-m", "plantd.cli", "module", "host", "--help"]
        found = importlib.util.find_spec("plantd.module._host") is not None and (
            subprocess.run(probe, capture_output=True, check=False, timeout=60).returncode == 0
        )
        self.host: bool | None = None if found else False  # None: to be tried
        self.note = "" if found else "this checkout has no `plant module host`"

    def describe(self) -> str:
        if self.host:
            return "one `plant module host` process"
        note = f" ({self.note})" if self.note else ""
        return f"one `plant module run NAME` process each{note}"


def sink_mode() -> tuple[dict[str, Any], str]:
    """The MQTT sink's batched JSON mode, if it has one: a setting under ``mqtt:`` named
    ``*batch*`` (a Literal: its first value but ``none``; a boolean: true), or any Literal
    setting with a value containing ``batch``."""
    from plantd.sinks.mqtt import MqttConfig

    hints = typing.get_type_hints(MqttConfig, include_extras=True)
    for item in dataclasses.fields(MqttConfig):
        kind = hints[item.name]
        while typing.get_origin(kind) is typing.Annotated:
            kind = typing.get_args(kind)[0]
        named = "batch" in item.name
        choices = typing.get_args(kind) if typing.get_origin(kind) is typing.Literal else ()
        for choice in choices:
            if isinstance(choice, str) and ("batch" in choice or (named and choice != "none")):
                return {item.name: choice}, f"batched JSON (mqtt.{item.name}: {choice})"
        if kind is bool and named:
            return {item.name: True}, f"batched JSON (mqtt.{item.name}: true)"
    return {}, "JSON, one message per sample (this checkout's sink has no batched mode)"


class Stack:
    """A throwaway config directory and the plantd processes started from it, by role."""

    def __init__(
        self, base: Path, children: Children, setting: Setting, sink: dict[str, Any] | None
    ) -> None:
        self.base, self.children, self.setting, self.sink = base, children, setting, sink
        self.names = [f"dev{i}" for i in range(setting.devices)]
        self.prefix = f"dpbench/{secrets.token_hex(4)}"
        self.ports: list[int] = []  # the devices', once they listen (before configure)
        self.endpoint = self.bus_out = ""  # the broker's, once it has started
        self.roles: dict[str, list[ManagedProcess]] = {}  # what is measured
        self.started: list[ManagedProcess] = []
        self.credentials: Credentials | None = None

    def configure(self, curve: bool) -> None:
        """``plantd.yaml``, ``modules.d`` (``bench/modbus.py``'s module files, at the default
        ``state_interval``), ``sinks.d/mqtt.yaml``; under CURVE, every key, and this process
        calls as the admin ``write_config`` made."""
        config_dir = self.config_dir = write_config(
            self.base / "etc",
            {
                "broker": {"endpoint": ANY_PORT},  # the broker's start writes the real ones
                "bus": {"frontend": ANY_PORT, "backend": ANY_PORT},
                "logging": {"level": "warning"},
                "paths": {"data": str(self.base / "data"), "run": str(self.base / "run")},
                "security": {"mode": "curve" if curve else "none"},
            },
        )
        (config_dir / "modules.d").mkdir()
        with use_profile(self.setting.profile, self.setting.registers):
            for name, port in zip(self.names, self.ports, strict=True):
                text = modbus.module_file(port, self.setting.seconds)
                (config_dir / "modules.d" / f"{name}.yaml").write_text(
                    text.replace("state_interval: 1h\n", "")
                )
        sinks = []
        if self.sink is not None:
            sinks.append("mqtt")
            client_id = f"{self.prefix}-sink".replace("/", "-")
            mqtt = {"host": MQTT[0], "port": MQTT[1], "client_id": client_id, "will": None}
            # A batch holds one module's samples: its topic names no point.
            topic = "{module}" if self.sink else "{module}/{point}"
            mqtt |= {"topic": f"{self.prefix}/{topic}", **self.sink}
            (config_dir / "sinks.d").mkdir()
            (config_dir / "sinks.d" / "mqtt.yaml").write_text(
                json.dumps({"type": "mqtt", "topics": ["data."], "mqtt": mqtt})  # JSON is YAML
            )
        if curve:
            make_keys(config_dir, modules=self.names, sinks=sinks)
            config = load_config(config_dir)
            login = pwd.getpwuid(os.geteuid()).pw_name
            admin = secret_key_path(config, f"user.{login}")
            identity = user_identity(config, {}, explicit=admin)
            assert identity is not None
            use_identity(identity)
            self.credentials = identity.credentials()

    def start(self, role: str, args: list[str], name: str, service: str | None) -> ManagedProcess:
        """Start ``python -m args`` and, with ``service``, wait until it serves."""
        process = ManagedProcess.plantd(args, name=name, log_dir=self.base / "logs").start()
        self.children.add(process)
        self.started.append(process)
        if service is not None:
            self.serving(process, service)
            self.roles.setdefault(role, []).append(process)
        return process

    def serving(self, process: ManagedProcess, service: str, timeout: float = 60) -> None:
        try:
            wait_for_workers(self.endpoint, service, timeout=timeout)
        except TimeoutError as exc:
            raise BenchError(f"{exc}\n{log_tail(process)}") from exc
        if not process.running():
            raise BenchError(f"{process.name} exited\n{log_tail(process)}")

    def start_services(self) -> None:
        """Broker, state service, historian and sink, each serving."""
        config = ["--config", str(self.config_dir)]
        try:
            broker, bound = start_broker(self.config_dir, log_dir=self.base / "logs", timeout=30)
        except (RuntimeError, TimeoutError) as exc:
            raise BenchError(f"the broker did not start: {exc}") from exc
        self.children.add(broker)
        self.started.append(broker)
        self.endpoint, self.bus_out = bound["broker"]["endpoint"], bound["bus"]["backend"]
        self.roles["broker"] = [broker]
        self.start("state", ["plantd.state", *config], "state", "org.plantd.State")
        self.start("historian", ["plantd.historian", *config], "historian", "org.plantd.Historian")
        if self.sink is not None:
            self.start("sink", ["plantd.sinks", *config, "mqtt"], "sink", "org.plantd.sink.mqtt")

    def start_modules(self, modules: Modules) -> None:
        """The modules as ``modules`` says; if a host never tried before does not get them all
        registered, one process each from then on (``modules`` says why)."""
        command = ["plantd.cli", "--config", str(self.config_dir), "module"]
        if modules.host is not False:
            host = self.start("modules", [*command, "host"], "module-host", None)
            try:
                for name in self.names:
                    self.serving(host, f"org.plantd.module.{name}", HOST_TIMEOUT)
            except BenchError as exc:
                if modules.host:  # it worked before: this run went wrong
                    raise
                modules.host, modules.note = False, f"`plant module host` did not serve: {exc}"
                host.kill()
            else:
                modules.host = True
                self.roles["modules"] = [host]
                return
        for name in self.names:
            self.start("modules", [*command, "run", name], f"module-{name}", None)
        for name, process in zip(self.names, self.started[-len(self.names) :], strict=True):
            self.serving(process, f"org.plantd.module.{name}")
            self.roles.setdefault("modules", []).append(process)

    def pids(self, role: str) -> list[int]:
        """The processes of ``role``; BenchError if one has exited (its log says why)."""
        for process in self.roles.get(role, ()):
            if not process.running():
                raise BenchError(f"{process.name} exited\n{log_tail(process)}")
        return [process.pid for process in self.roles.get(role, ())]

    def cpu(self) -> list[float]:
        """CPU seconds so far, per role in the order of ROLES."""
        return [sum(map(cpu_seconds, self.pids(role))) if role in self.roles else NAN
                for role in ROLES]  # fmt: skip

    def memory(self) -> dict[str, tuple[int, int]]:
        """(RSS, PSS) per role."""
        return {
            role: (sum(map(rss_bytes, self.pids(role))), sum(map(pss_bytes, self.pids(role))))
            for role in self.roles
        }

    def polled(self) -> list[tuple[float, float, float]]:
        """Per module: polls so far, deadlines they missed (overruns), and when the last one
        ended (wall time), from its ``status``."""
        modules = []
        with Client(self.endpoint, timeout=STATUS_TIMEOUT, retries=0) as client:
            for name in self.names:
                status = _status(client, f"org.plantd.module.{name}")
                (group,) = status["groups"].values() if status else [{}]
                polled = (group.get(key) for key in ("polls", "overruns", "last_poll"))
                modules.append(tuple(NAN if value is None else float(value) for value in polled))
        return modules

    def stored(self) -> tuple[float, float, float]:
        """Samples the historian stored, when it last committed (wall time), and samples
        Mosquitto acknowledged to the sink."""
        with Client(self.endpoint, timeout=STATUS_TIMEOUT, retries=0) as client:
            historian = _status(client, "org.plantd.Historian")
            sink = _status(client, "org.plantd.sink.mqtt") if self.sink is not None else None
        return (
            float(historian["stored"]) if historian else NAN,
            float(historian["last_commit"] or NAN) if historian else NAN,
            float(sink["counters"]["delivered"]) if sink else NAN,
        )


def _status(client: Client, service: str) -> dict[str, Any] | None:
    """A service's ``status``, None if it does not answer in time (its figures are then nan)."""
    try:
        status: dict[str, Any] = call(client, service, "status")
    except RequestTimeout:
        warn(f"  ({service} did not answer `status` within {STATUS_TIMEOUT:g} s)")
        return None
    return status


def pss_bytes(pid: int) -> int:
    """Proportional set size of ``pid`` (``Pss`` in ``/proc/<pid>/smaps_rollup``)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no Pss for process {pid}")


# -- one measured run -------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    warmup: float
    window: float  # a whole number of poll intervals: whole polls land in it
    first_data_timeout: float = 60.0


def timed(read: Callable[[], T]) -> tuple[T, float]:
    """``read()``, and when: the midpoint of the call (a busy service answers late)."""
    began = time.monotonic()
    value = read()
    return value, (began + time.monotonic()) / 2


def first_data(
    consumers: dict[str, Connection], since: float, timeout: float, logs: list[ManagedProcess]
) -> dict[str, float]:
    """Seconds from ``since`` (wall time) to each consumer's first sample."""
    deadline = time.monotonic() + timeout
    firsts: dict[str, float | None] = dict.fromkeys(consumers)
    while None in firsts.values() and time.monotonic() < deadline:
        for name, conn in consumers.items():
            firsts[name] = firsts[name] or exchange(conn)["first"]
        time.sleep(0.05)
    missing = [name for name, first in firsts.items() if first is None]
    if missing:
        tails = "".join(f"\n{p.name}:\n{log_tail(p, 8)}" for p in logs)
        raise BenchError(f"no data at the {', '.join(missing)} within {timeout:g} s{tails}")
    return {name: first - since for name, first in firsts.items() if first is not None}


def measure_plantd(
    setting: Setting, timing: Timing, modules: Modules, sink: dict[str, Any] | None, curve: bool
) -> Run:
    """One run of the plantd stack (without the MQTT sink if ``sink`` is None)."""
    with (
        tempfile.TemporaryDirectory(prefix="plantd-bench-dataplane-") as tmp,
        Children() as children,
    ):
        stack = Stack(Path(tmp), children, setting, sink)
        # The devices listen first, on ports the system picks: the module files name them.
        devices = spawn(children, run_devices, setting.profile, setting.registers, setting.devices)
        device_pid = wait_pids([devices])
        stack.ports = await_reply(devices, what="device")
        stack.configure(curve)
        stack.start_services()
        consumers = {"bus": spawn(children, run_bus_subscriber, stack.bus_out, stack.credentials)}
        if sink is not None:
            consumers["mqtt"] = spawn(children, run_mqtt_subscriber, stack.prefix)
        pids = device_pid + wait_pids(list(consumers.values()))  # in the order of OTHERS
        started = time.time()
        stack.start_modules(modules)
        firsts = first_data(consumers, started, timing.first_data_timeout, stack.started)
        memory = {"start": stack.memory()}
        time.sleep(timing.warmup)

        def snapshot() -> dict[str, tuple[Any, float]]:
            return {
                **{name: timed(lambda c=conn: exchange(c)) for name, conn in consumers.items()},
                "requests": timed(lambda: exchange(devices)),
                "cpu": timed(stack.cpu),
                "others": timed(lambda: [cpu_seconds(pid) for pid in pids]),
                "polled": timed(stack.polled),
                "stored": timed(stack.stored),
            }

        begin = snapshot()
        memory["window"] = stack.memory()
        time.sleep(timing.window)
        end = snapshot()
        memory["end"] = stack.memory()

    def rate(what: str, index: int | None = None) -> float:
        (first, began), (last, ended) = begin[what], end[what]
        if index is None:  # a count since the last reading
            if isinstance(last, dict):  # counted by a consumer, which says when
                return float(last["samples"]) / (last["at"] - first["at"])
            return float(last) / (ended - began)
        return (last[index] - first[index]) / (ended - began)

    def consumer(name: str, field: str) -> Any:
        if name not in end:
            return NAN if field != "shape" else "(no sink)"
        counts = end[name][0]
        if field == "first":
            return firsts[name]
        return percentile(counts["ages"], 99) * 1000 if field == "age" else counts.get(field)

    cpu = {role: rate("cpu", index) for index, role in enumerate(ROLES)}
    others = [*(rate("others", index) for index in range(len(pids))), NAN]
    return {
        "polled": polled_rate(begin["polled"][0], end["polled"][0], 0) * setting.points,
        "skipped": polled_rate(begin["polled"][0], end["polled"][0], 1) * setting.points,
        "requests": rate("requests"),
        "bus": rate("bus"),
        "historian": stored_rate(begin["stored"][0], end["stored"][0]),
        "sink": rate("stored", 2),
        "mqtt": rate("mqtt") if "mqtt" in end else NAN,
        "cpu": sum(cores for cores in cpu.values() if not math.isnan(cores)),
        **{f"cpu_{role}": cores for role, cores in cpu.items()},
        **{f"cpu_{who}": cores for who, cores in zip(OTHERS, others, strict=False)},
        **{key: value for when, m in memory.items() for key, value in _memory(when, m).items()},
        **{f"age_{name}": consumer(name, "age") for name in ("bus", "mqtt")},
        **{f"first_{name}": consumer(name, "first") for name in ("bus", "mqtt")},
        "shape": consumer("mqtt", "shape"),
    }


def polled_rate(first: list[tuple[float, ...]], last: list[tuple[float, ...]], what: int) -> float:
    """Polls (``what`` 0) or overruns (1) per second, every module: counted between its last
    polls before the two readings, so that only whole polls count."""
    total = 0.0
    for (*before, ended), (*after, ended_after) in zip(first, last, strict=True):
        total += (
            (after[what] - before[what]) / (ended_after - ended) if ended_after > ended else NAN
        )
    return total


def stored_rate(first: tuple[float, ...], last: tuple[float, ...]) -> float:
    """Samples the historian stored per second, between its commits: it stores a batch at a
    time (every ``batch_interval``, 1 s, or 5,000 samples), so the samples stored between two
    readings come in whole batches, those between two commits do not."""
    (stored, committed, _), (stored_after, committed_after, _) = first, last
    elapsed = committed_after - committed
    return (stored_after - stored) / elapsed if elapsed > 0 else NAN


def _memory(when: str, memory: dict[str, tuple[int, int]]) -> dict[str, float]:
    return {
        f"rss_{when}": sum(rss for rss, _ in memory.values()) / MB,
        f"pss_{when}": sum(pss for _, pss in memory.values()) / MB,
        f"rss_core_{when}": sum(memory[role][0] for role in CORE_ROLES) / MB,
        **{f"rss_{role}_{when}": memory.get(role, (NAN,))[0] / MB for role in ROLES},
    }


def measure_script(setting: Setting, timing: Timing) -> Run:
    """One run of the baseline script."""
    with (
        tempfile.TemporaryDirectory(prefix="plantd-bench-dataplane-") as tmp,
        Children() as children,
    ):
        prefix = f"dpbench/{secrets.token_hex(4)}"
        devices = spawn(children, run_devices, setting.profile, setting.registers, setting.devices)
        wait_pids([devices])
        ports = await_reply(devices, what="device")  # listening before anything else connects
        mqtt = spawn(children, run_mqtt_subscriber, prefix)
        wait_pids([mqtt])
        settings = {
            "profile": setting.profile,
            "registers": setting.registers,
            "interval": setting.seconds,
            "prefix": prefix,
            "ports": ports,
            "mqtt_host": MQTT[0],
            "mqtt_port": MQTT[1],
        }
        source = f"{BASELINE_SOURCE}\nbaseline_script({json.dumps(settings)!r})"
        started = time.time()
        argv = [sys.executable, "-c", source]
        script = children.add(ScriptProcess(argv, name="script", log_dir=Path(tmp)).start())
        if script.ask(None) != "ready":
            raise BenchError(f"the baseline script did not start\n{log_tail(script)}")
        firsts = first_data({"mqtt": mqtt}, started, timing.first_data_timeout, [script])
        start = rss_bytes(script.pid), pss_bytes(script.pid)
        time.sleep(timing.warmup)

        def snapshot() -> dict[str, tuple[Any, float]]:
            return {
                "mqtt": timed(lambda: exchange(mqtt)),
                "requests": timed(lambda: exchange(devices)),
                "cpu": timed(lambda: cpu_seconds(script.pid)),
                "polled": timed(lambda: float(script.ask())),
            }

        begin = snapshot()
        time.sleep(timing.window)
        end = snapshot()
        final = rss_bytes(script.pid), pss_bytes(script.pid)

    def rate(what: str, count: Callable[[Any, Any], float]) -> float:
        return count(begin[what][0], end[what][0]) / (end[what][1] - begin[what][1])

    return {
        "polled": rate("polled", lambda first, last: last - first),
        "requests": rate("requests", lambda first, last: last),
        "mqtt": end["mqtt"][0]["samples"] / (end["mqtt"][0]["at"] - begin["mqtt"][0]["at"]),
        "cpu": rate("cpu", lambda first, last: last - first),
        **{"rss_start": start[0] / MB, "pss_start": start[1] / MB},
        **{"rss_end": final[0] / MB, "pss_end": final[1] / MB},
        "age_mqtt": percentile(end["mqtt"][0]["ages"], 99) * 1000,
        "first_mqtt": firsts["mqtt"],
    }


# -- the report -------------------------------------------------------------------------------

Goal = tuple[str, Callable[[float], bool]] | None
Results = dict[Setting, tuple[list[Run], list[Run]]]


def plantd_rows(setting: Setting, runs: list[Run]) -> list[tuple[str, str, str, Goal]]:
    """(field, name, unit, goal) of each plantd figure, with the issue's goals where they apply."""
    slow, expected, start_rss = (
        setting.interval == "1s",
        setting.expected,
        median([run["rss_start"] for run in runs]),
    )
    budget = 0.5 if slow else 1.5

    def within(limit: float) -> Callable[[float], bool]:
        return lambda v: v <= limit

    every: Goal = (f"≥ {0.98 * expected:,.0f} pt/s", lambda v: v >= 0.98 * expected)
    flat: Goal = ("≤ start + 10 %", lambda v: v <= 1.1 * start_rss)
    return [
        ("polled", "points polled/s", "pt/s", None),
        ("skipped", "points skipped by overruns/s", "pt/s", None),
        ("requests", "Modbus requests/s", "req/s", None),
        ("bus", "delivered to a bus subscriber/s", "pt/s", None if slow else every),
        ("historian", "delivered to the historian (stored)/s", "pt/s", None if slow else every),
        ("sink", "acknowledged by Mosquitto to the sink/s", "pt/s", None),
        ("mqtt", "delivered through the sink to MQTT/s", "pt/s", every if slow else None),
        ("cpu", "CPU, all plantd processes", "cores", (f"≤ {budget:g} core", within(budget))),
        *((f"cpu_{role}", f"  {role}", "cores", None) for role in ROLES),
        *((f"cpu_{who}", f"CPU, {who.replace('_', ' ')} (not plantd)", "cores", None)
          for who in OTHERS),
        ("rss_start", "RSS, all plantd processes, at start", "MB", None),
        ("rss_window", "  at the window's start", "MB", None),
        ("rss_end", "  at the end", "MB", None if slow else flat),
        ("pss_start", "PSS, all plantd processes, at start", "MB", None),
        ("pss_end", "  at the end", "MB", None),
        ("rss_core_start", "RSS at start, broker+state+historian+modules", "MB",
         ("≤ 200 MB", lambda v: v <= 200) if slow else None),
        *((f"rss_{role}_end", f"  {role}, at the end", "MB", None) for role in ROLES),
        ("age_bus", "p99 sample age at the bus subscriber", "ms",
         None if slow else ("< 1,000 ms", lambda v: v < 1000)),
        ("age_mqtt", "p99 sample age at the MQTT subscriber", "ms", None),
        ("first_bus", "start to first data, bus subscriber", "s", ("≤ 5 s", lambda v: v <= 5)),
        ("first_mqtt", "start to first data, MQTT subscriber", "s", None),
    ]  # fmt: skip


SCRIPT_ROWS: list[tuple[str, str, str, Goal]] = [
    ("polled", "points polled/s", "pt/s", None),
    ("requests", "Modbus requests/s", "req/s", None),
    ("mqtt", "delivered to MQTT/s", "pt/s", None),
    ("cpu", "CPU", "cores", None),
    ("rss_start", "RSS at start", "MB", None),
    ("rss_end", "  at the end", "MB", None),
    ("pss_end", "PSS at the end", "MB", None),
    ("age_mqtt", "p99 sample age at the MQTT subscriber", "ms", None),
    ("first_mqtt", "start to first data, MQTT subscriber", "s", None),
]


def median(values: Sequence[float]) -> float:
    """The median of the values that are numbers (nan: a run whose service did not answer)."""
    numbers = [value for value in values if not math.isnan(value)]
    return statistics.median(numbers) if numbers else NAN


def report(setting: Setting, plantd: list[Run], script: list[Run]) -> list[Figure | Ratio]:
    """Print one setting's figures; return them (for --json and the goals)."""
    key = f"{setting.interval}.{setting.profile}"
    figures: list[Figure | Ratio] = []
    print(
        f"\n== {setting.title}: {setting.devices} devices × {setting.points:,} points "
        f"every {setting.interval} = {setting.expected:,.0f} pt/s"
    )
    for who, runs, rows in (
        ("plantd", plantd, plantd_rows(setting, plantd)),
        ("script", script, SCRIPT_ROWS),
    ):
        print(who if who == "plantd" else "script (pymodbus + paho-mqtt, a message per device)")
        for field, name, unit, goal in rows:
            values = tuple(run[field] for run in runs if not math.isnan(run[field]))
            if not values:
                continue  # nothing to measure (--no-sink) or no run answered: said on stderr
            text, passed = (None, None) if goal is None else (goal[0], goal[1](median(values)))
            note = f"({len(values)} of {len(runs)} runs)" if len(values) < len(runs) else ""
            figure = Figure(f"{key}.{who}.{field}", f"  {name}", unit, values, text, passed, note)
            figures.append(figure)
            print(figure.line())
    print("plantd ÷ script (per interleaved pair)")
    for field, name, note, of in (
        ("mqtt_per_core", "MQTT points delivered per core", "(higher is better for plantd)",
         lambda run: run["mqtt"] / run["cpu"] if run["cpu"] else NAN),
        ("rss", "RSS at the end", "(a cost: lower is better)", lambda run: run["rss_end"]),
        ("pss", "PSS at the end", "(a cost: lower is better)", lambda run: run["pss_end"]),
    ):  # fmt: skip
        pairs = [(of(a), of(b)) for a, b in zip(plantd, script, strict=True)]
        kept = [(a, b) for a, b in pairs if not math.isnan(a + b)]  # both runs measured it
        if not kept:
            continue
        mine, theirs = [a for a, _ in kept], [b for _, b in kept]
        figures.append(
            Ratio.paired(f"{key}.ratio.{field}", f"  {name}", mine, theirs,
                         label="plantd ÷ script", note=note)
        )  # fmt: skip
        print(figures[-1].line())
    return figures


def summary(results: Results, figures: Sequence[Figure | Ratio]) -> None:
    """Where plantd's CPU goes, and every goal."""
    print("\nwhere plantd's CPU goes (median cores; share of the plantd total)")
    for setting, (plantd, _) in results.items():
        total = median([run["cpu"] for run in plantd])
        each = ((median([run[f"cpu_{role}"] for run in plantd]), role) for role in ROLES)
        shares = sorted(
            ((cores, role) for cores, role in each if not math.isnan(cores)), reverse=True
        )
        parts = ", ".join(f"{role} {cores:.2f} ({cores / total:.0%})" for cores, role in shares)
        print(f"  {setting.title:<16} {total:.2f} cores: {parts if total else '-'}")
    judged = [f for f in figures if isinstance(f, Figure) and f.passed is not None]
    print(f"\ngoals: {sum(bool(f.passed) for f in judged)} of {len(judged)} PASS")
    for item in judged:
        verdict = "PASS" if item.passed else "MISS"
        print(f"  {verdict}  {item.key}: {item.fmt(item.median)} {item.unit} (goal {item.goal})")


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 small devices, short windows")
    parser.add_argument("--repetitions", type=int, metavar="N", help="default 3 (--quick: 1)")
    parser.add_argument("--only", choices=sorted(INTERVALS), help="one poll interval only")
    parser.add_argument("--curve", action="store_true", help="run the stack under CURVE")
    parser.add_argument("--no-sink", action="store_true", help="run the stack without the sink")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every figure here")
    return parser.parse_args(argv)


def mosquitto_reachable() -> bool:
    try:
        socket.create_connection(MQTT, timeout=2).close()
    except OSError:
        return False
    return True


def run_all(
    settings: list[Setting], args: argparse.Namespace, timing: Timing, modules: Modules
) -> Results:
    """Every setting, repetition after repetition; in each, plantd and the script alternate
    which goes first."""
    sink, _ = sink_mode()
    results: Results = {setting: ([], []) for setting in settings}
    for rep in range(args.repetitions):
        for setting in settings:
            plantd, script = results[setting]
            runs: list[tuple[str, Callable[[], Run], list[Run]]] = [
                ("plantd", lambda s=setting: measure_plantd(
                    s, timing, modules, None if args.no_sink else sink, args.curve), plantd),
                ("script", lambda s=setting: measure_script(s, timing), script),
            ]  # fmt: skip
            for who, run, into in runs if rep % 2 == 0 else runs[::-1]:
                began = time.monotonic()
                into.append(run())
                warn(f"  repetition {rep + 1}, {setting.title}, {who}: "
                     f"{time.monotonic() - began:.0f} s")  # fmt: skip
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.repetitions = args.repetitions or (1 if args.quick else 3)
    devices, registers = (3, 200) if args.quick else (DEVICES, REGISTERS)
    timing = Timing(warmup=2.0, window=3.0) if args.quick else Timing(warmup=5.0, window=10.0)
    intervals = [args.only] if args.only else list(INTERVALS)
    settings = [Setting(i, p, devices, registers) for i in intervals for p in PROFILES]
    print(machine_line("none (stack, devices, consumers and script share the cores)"), flush=True)
    if not mosquitto_reachable():
        warn(f"benchmark failed: no MQTT broker on {MQTT[0]}:{MQTT[1]} (the script needs one)")
        return 1
    modules, sink_note = Modules(), "none (--no-sink)" if args.no_sink else sink_mode()[1]
    print(
        f"settings: {devices} devices × {registers:,} registers, every value changing every "
        f"poll; {args.repetitions} repetition(s), fresh processes each, plantd and script "
        f"interleaved; warm-up {timing.warmup:g} s, window {timing.window:g} s; security: "
        f"{'curve' if args.curve else 'none'}; MQTT sink: {sink_note}; Mosquitto "
        f"{MQTT[0]}:{MQTT[1]}",
        flush=True,
    )
    started = time.monotonic()
    try:
        with exit_on_sigterm():
            results = run_all(settings, args, timing, modules)
    except (BenchError, PlantdError) as exc:
        warn(f"\nbenchmark failed: {exc}")
        return 1
    except EOFError:
        warn("\nbenchmark failed: a device or consumer process died (its traceback is above)")
        return 1
    except KeyboardInterrupt:
        warn("\ninterrupted")
        return 130
    finally:
        use_identity(None)
    shapes = sorted({str(run["shape"]) for plantd, _ in results.values() for run in plantd})
    print(f"modules: {modules.describe()}")
    print(f"MQTT payloads from the sink: {'; '.join(shapes)}")
    figures: list[Figure | Ratio] = []
    for setting in settings:
        figures += report(setting, *results[setting])
    summary(results, figures)
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    if args.json:
        write_json(args.json, machine_info(), figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
