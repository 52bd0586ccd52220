"""OPC UA: data-change subscriptions against polling, the same items from the same server.

    python bench/opcua.py [--quick] [--items N] [--repeat N] [--window S] [--json FILE]

Theory of operation. One simulator process (``python -m hil.opcua``) serves ``--items``
Double variables (default 5,000) that all change every 100 ms (a random walk, so every
change is a new value). One broker. Then, interleaved (A B, B A, …), each repetition with a
fresh module process (``plant module run bench``) reading every item:

- **subscription**: one group, ``mode: subscription``, publishing and sampling interval
  100 ms, queue size 1 — the server reports changes;
- **poll**: one group, ``mode: poll``, interval 100 ms — the module reads every item with
  Read requests of 1,000 items.

After the module has published a first value of every item and a warm-up, the benchmark
takes the module's ``published`` counter (its ``status`` operation) and its CPU time
(``/proc/<pid>/stat``, every thread) at both ends of a window. Figures, per mode:

- **samples/s published**: samples the module put on the bus in the window ÷ the window;
- **module CPU per 1,000 samples** (ms): the module's CPU time in the window ÷ samples × 1,000;
- **module CPU** and **simulator CPU** (% of one core), for context: on two cores the
  simulator (asyncua's server, in Python) competes with the module and is the ceiling.

Ratios are subscription ÷ poll per interleaved pair: samples/s (higher is better) and CPU per
1,000 samples (lower is better). Nothing here is pinned: three processes share the machine.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from _harness import (
    BenchError,
    Children,
    Figure,
    Ratio,
    cpu_seconds,
    exit_on_sigterm,
    interleaved,
    log_tail,
    machine_info,
    machine_line,
    warn,
    write_json,
)

from plantd.client import Client
from plantd.service import call
from plantd.testing import (
    ANY_PORT,
    ManagedProcess,
    start_broker,
    wait_for_workers,
    write_config,
)

MODES = ("subscription", "poll")
SERVICE = "org.plantd.module.bench"


@dataclass(frozen=True)
class Settings:
    items: int
    repeat: int
    window: float
    warmup: float


@dataclass(frozen=True)
class Run:
    samples_per_s: float
    cpu_ms_per_1000: float
    module_cpu_percent: float
    sim_cpu_percent: float


class Bench:
    def __init__(self, workdir: Path, settings: Settings, children: Children) -> None:
        self.workdir = workdir
        self.settings = settings
        self.children = children
        self.endpoint = ""  # the broker's, once it has started (it binds any free port)
        self.opcua = "opc.tcp://127.0.0.1:0/bench"  # the simulator says which port it got
        self.config_dir = write_config(
            workdir / "etc",
            {
                "broker": {"endpoint": ANY_PORT},
                "bus": {"frontend": ANY_PORT, "backend": ANY_PORT},
                "paths": {"data": str(workdir / "data"), "run": str(workdir / "run")},
                "logging": {"level": "warning"},
            },
        )
        self.sim: ManagedProcess | None = None

    def start(self) -> None:
        model = {
            "endpoint": self.opcua,
            "update_interval": "100ms",
            "objects": [
                {
                    "name": "Bench",
                    "generate": [
                        {"prefix": "Tag", "count": self.settings.items, "type": "Double",
                         "behaviour": "random_walk", "step": 1.0},
                    ],
                }
            ],
        }  # fmt: skip
        model_path = self.workdir / "sim.yaml"
        model_path.write_text(yaml.safe_dump(model))
        self.sim = self._start("sim", ["hil.opcua", str(model_path)])
        deadline = time.monotonic() + 120
        while (ready := re.search(r"opcua simulator ready on (\S+)", self.sim.log_text())) is None:
            if not self.sim.running() or time.monotonic() > deadline:
                raise BenchError(f"the OPC UA simulator did not start\n{log_tail(self.sim)}")
            time.sleep(0.1)
        self.opcua = ready[1]
        try:
            broker, bound = start_broker(self.config_dir, log_dir=self.workdir / "logs")
        except Exception as exc:
            raise BenchError(f"the broker did not start\n{exc}") from exc
        self.children.add(broker)
        self.endpoint = bound["broker"]["endpoint"]

    def _start(self, name: str, args: list[str]) -> ManagedProcess:
        process = ManagedProcess.plantd(args, name=name, log_dir=self.workdir / "logs")
        return self.children.add(process.start())

    def module_file(self, mode: str) -> None:
        points = [
            {"name": f"tag{i:05d}", "node": f"ns=sim;s=Bench.Tag{i:05d}"}
            for i in range(self.settings.items)
        ]
        group = {"name": "all", "mode": mode, "interval": "100ms", "points": points}
        if mode == "subscription":
            group.update({"sampling_interval": "100ms", "queue_size": 1})
        module = {
            "driver": "opcua",
            "connection": {
                "endpoint": self.opcua,
                "namespaces": {"sim": "urn:plantd:sim"},
                "timeout": "10s",
            },
            "groups": [group],
        }
        (self.config_dir / "modules.d").mkdir(exist_ok=True)
        (self.config_dir / "modules.d" / "bench.yaml").write_text(yaml.safe_dump(module))

    def run(self, mode: str) -> Run:
        assert self.sim is not None
        self.module_file(mode)
        module = ManagedProcess.plantd(
            ["plantd.cli", "--config", str(self.config_dir), "module", "run", "bench"],
            name=f"module-{mode}",
            log_dir=self.workdir / "logs",
        ).start()
        try:
            wait_for_workers(self.endpoint, SERVICE, timeout=60)
            with Client(self.endpoint, timeout=10, retries=1) as client:
                self._warm_up(client, module)
                t0, cpu0, sim0 = (
                    time.monotonic(),
                    cpu_seconds(module.pid),
                    cpu_seconds(self.sim.pid),
                )
                published0 = call(client, SERVICE, "status")["published"]
                time.sleep(self.settings.window)
                published1 = call(client, SERVICE, "status")["published"]
                t1, cpu1, sim1 = (
                    time.monotonic(),
                    cpu_seconds(module.pid),
                    cpu_seconds(self.sim.pid),
                )
        except BenchError:
            raise
        except Exception as exc:
            raise BenchError(f"module ({mode}) failed: {exc}\n{log_tail(module)}") from exc
        finally:
            module.terminate(timeout=10)
        samples, elapsed = published1 - published0, t1 - t0
        if samples <= 0:
            raise BenchError(f"module ({mode}) published nothing\n{log_tail(module)}")
        return Run(
            samples_per_s=samples / elapsed,
            cpu_ms_per_1000=(cpu1 - cpu0) / samples * 1e6,
            module_cpu_percent=100 * (cpu1 - cpu0) / elapsed,
            sim_cpu_percent=100 * (sim1 - sim0) / elapsed,
        )

    def _warm_up(self, client: Client, module: ManagedProcess) -> None:
        deadline = time.monotonic() + 120
        while True:
            status = call(client, SERVICE, "status")
            if status["connection"]["state"] == "connected" and status["published"] >= (
                self.settings.items
            ):
                break
            if not module.running() or time.monotonic() > deadline:
                raise BenchError(f"the module did not get going: {status}\n{log_tail(module)}")
            time.sleep(0.2)
        time.sleep(self.settings.warmup)


def figures_of(results: dict[str, list[Run]]) -> list[Figure | Ratio]:
    figures: list[Figure | Ratio] = []
    for mode in MODES:
        runs = results[mode]
        figures += [
            Figure(f"{mode}/samples_per_s", f"{mode}: samples/s published", "samples/s",
                   tuple(r.samples_per_s for r in runs)),
            Figure(f"{mode}/cpu_ms_per_1000", f"{mode}: module CPU per 1,000 samples", "ms",
                   tuple(r.cpu_ms_per_1000 for r in runs)),
            Figure(f"{mode}/module_cpu_percent", f"{mode}: module CPU", "% of a core",
                   tuple(r.module_cpu_percent for r in runs)),
            Figure(f"{mode}/sim_cpu_percent", f"{mode}: simulator CPU", "% of a core",
                   tuple(r.sim_cpu_percent for r in runs)),
        ]  # fmt: skip
    sub, poll = results["subscription"], results["poll"]
    figures += [
        Ratio.paired("ratio/samples_per_s", "samples/s", [r.samples_per_s for r in sub],
                     [r.samples_per_s for r in poll], label="subscription ÷ poll"),
        Ratio.paired("ratio/cpu_ms_per_1000", "CPU per 1,000 samples (lower: cheaper)",
                     [r.cpu_ms_per_1000 for r in sub], [r.cpu_ms_per_1000 for r in poll],
                     label="subscription ÷ poll"),
    ]  # fmt: skip
    return figures


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 300 items, 1 pair")
    parser.add_argument("--items", type=int, help="monitored items (default 5,000)")
    parser.add_argument("--repeat", type=int, help="repetitions per mode (default 3)")
    parser.add_argument("--window", type=float, help="measured seconds per run (default 5)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every figure here")
    args = parser.parse_args(argv)
    settings = (
        Settings(items=300, repeat=1, window=2.0, warmup=0.5)
        if args.quick
        else Settings(items=5000, repeat=3, window=5.0, warmup=2.0)
    )
    settings = Settings(
        items=args.items or settings.items,
        repeat=args.repeat or settings.repeat,
        window=args.window or settings.window,
        warmup=settings.warmup,
    )
    if settings.items < 1 or settings.repeat < 1 or settings.window <= 0:
        parser.error("--items and --repeat must be at least 1, --window above 0")
    return settings, args.json


def main(argv: Sequence[str] | None = None) -> int:
    settings, json_path = parse_args(argv)
    print(machine_line("none (simulator, broker and module share the machine)"), flush=True)
    print(
        f"{settings.items:,} items changing every 100 ms ({settings.items * 10:,} changes/s "
        f"offered); {settings.repeat} run(s) per mode, interleaved; window "
        f"{settings.window:g} s after a {settings.warmup:g} s warm-up",
        flush=True,
    )
    started = time.monotonic()
    try:
        with (
            exit_on_sigterm(),
            tempfile.TemporaryDirectory(prefix="plantd-bench-") as tmp,
            Children() as children,
        ):
            bench = Bench(Path(tmp), settings, children)
            bench.start()
            runs = interleaved([lambda: bench.run("subscription"), lambda: bench.run("poll")],
                               settings.repeat)  # fmt: skip
    except BenchError as exc:
        warn(f"\nbenchmark failed: {exc}")
        return 1
    except KeyboardInterrupt:
        warn("\ninterrupted")
        return 130
    figures = figures_of(dict(zip(MODES, runs, strict=True)))
    print()
    for figure in figures:
        print(f"  {figure.line()}", flush=True)
    print(f"\ntotal {time.monotonic() - started:.0f} s", flush=True)
    if json_path is not None:
        write_json(json_path, machine_info(), figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
