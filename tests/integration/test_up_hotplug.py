"""Hot-plug under a real ``plant up`` (docs/reload.md): a module file added, changed, removed, and
a broken one added, each seen on the bus within 2 s, while the module that was there loses no
sample (its per-topic ``seq`` has no hole) and the broker and the state service keep their
processes. And ``plant reload`` against it, and against nothing."""

from __future__ import annotations

import asyncio
import itertools
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from plantd.bus import BusSubscriber, Sample
from plantd.config import load_config
from plantd.testing import ipc_endpoints
from tests.conftest import Stack, make_stack
from tests.integration._plant_up import Up, run_plant_up

KEEP = """
driver: fake
groups:
  - name: main
    interval: 100ms
    points:
      - {name: n, pattern: counter}
"""
BAD = "driver: fake\ngroups: 42\n"
EFFECT_WITHIN = 2.0  # seconds: the bound, from the file written to the bus
PATIENCE = 10.0  # how long to wait before failing (a loaded box), the bound asserted apart


def extra(interval: str, point: str = "x", *, isolated: bool = False) -> str:
    """A module whose one point counts (a sample every read: a constant would be published
    only when it changes)."""
    return (
        "driver: fake\n"
        + ("isolated: true\n" if isolated else "")
        + f"groups:\n  - name: main\n    interval: {interval}\n"
        + f"    points:\n      - {{name: {point}, pattern: counter}}\n"
    )


@dataclass
class Bus:
    """Every data sample on the bus, with the (monotonic) time it arrived, from a thread."""

    endpoint: str
    samples: list[tuple[float, str, Sample]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        asyncio.run(self._receive())

    async def _receive(self) -> None:
        subscriber = BusSubscriber(self.endpoint, ["data."])
        try:
            while not self.done.is_set():
                message = await subscriber.receive_within(0.1)
                if message is not None and isinstance(message.payload, Sample):
                    with self.lock:
                        self.samples.append((time.monotonic(), message.topic, message.payload))
        finally:
            subscriber.close()

    def of(self, topic: str, since: float = 0.0) -> list[tuple[float, Sample]]:
        with self.lock:
            return [(at, s) for at, t, s in self.samples if t == topic and at >= since]

    def first(self, topic: str, since: float) -> float:
        """When the first sample of ``topic`` arrived after ``since``."""
        wait_until(lambda: bool(self.of(topic, since)), f"a sample on {topic}")
        return self.of(topic, since)[0][0]

    def last_after_quiet(self, topic: str, quiet: float = 1.0) -> float:
        """When the last sample of ``topic`` arrived, once none came for ``quiet`` seconds."""

        def last() -> float:
            samples = self.of(topic)
            return samples[-1][0] if samples else 0.0

        wait_until(lambda: time.monotonic() - last() > quiet, f"{topic} to stop")
        return last()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    stack = make_stack(tmp_path, security={"mode": "none"}, **ipc_endpoints(tmp_path / "sockets"))
    (stack.config_dir / "modules.d").mkdir()
    (stack.config_dir / "modules.d/keep.yaml").write_text(KEEP)
    return stack


@pytest.fixture
def up(stack: Stack, tmp_path: Path) -> Iterator[Up]:
    up = run_plant_up(stack.config_dir, tmp_path)
    yield up
    up.kill()


@pytest.fixture
def bus(stack: Stack, up: Up) -> Iterator[Bus]:
    bus = Bus(load_config(stack.config_dir).bus.backend)
    thread = threading.Thread(target=bus.run, daemon=True)
    thread.start()
    bus.first("data.keep.n", 0.0)  # the stack is up, and we hear it
    yield bus
    bus.done.set()
    thread.join(timeout=5)


def write(stack: Stack, name: str, text: str) -> float:
    """Write modules.d/NAME.yaml at once (as an editor's rename does): when it was written."""
    path = stack.config_dir / "modules.d" / f"{name}.yaml"
    scratch = path.with_name(f".{name}.yaml.tmp")
    scratch.write_text(text)
    scratch.rename(path)
    return time.monotonic()


def plant(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def gapless(bus: Bus, topic: str) -> list[int]:
    """The seqs of ``topic``: one publisher's (one epoch), without a hole."""
    samples = [sample for _, sample in bus.of(topic)]
    assert len({s.epoch for s in samples}) == 1, f"{topic}: its publisher changed"
    seqs = [s.seq for s in samples]
    holes = [(a, b) for a, b in itertools.pairwise(seqs) if b != a + 1]
    assert not holes, f"{topic}: lost samples between {holes}"
    return seqs


def test_modules_come_change_and_go_while_the_others_lose_nothing(
    stack: Stack, up: Up, bus: Bus
) -> None:
    broker, state = up.child("plantd.broker"), up.child("plantd.state")

    # (a) A module added: its samples within 2 s.
    added = write(stack, "extra", extra("100ms"))
    assert bus.first("data.extra.x", added) - added <= EFFECT_WITHIN

    # (b) Its interval changed (and its point renamed, to tell the instances apart): the new
    # one within 2 s, at its new rate; the old one gone as soon.
    changed = write(stack, "extra", extra("400ms", "y"))
    assert bus.first("data.extra.y", changed) - changed <= EFFECT_WITHIN
    wait_until(lambda: len(bus.of("data.extra.y")) >= 6, "six samples at the new interval")
    stamps = [sample.timestamp for _, sample in bus.of("data.extra.y")]
    assert 0.3 <= statistics.median(b - a for a, b in itertools.pairwise(stamps)) <= 0.6
    assert bus.of("data.extra.x")[-1][0] - changed <= EFFECT_WITHIN

    # (c) Removed: its samples stop within 2 s.
    removed = time.monotonic()
    (stack.config_dir / "modules.d/extra.yaml").unlink()
    assert bus.last_after_quiet("data.extra.y") - removed <= EFFECT_WITHIN

    # (d) A broken file: refused with plant config check's own words, nothing else touched.
    check = plant(stack, "config", "check")  # clean before the broken file
    assert check.returncode == 0, check.stderr
    broken = write(stack, "bad", BAD)
    refused = "plant up: refused modules.d/bad.yaml (not started):"
    wait_until(lambda: refused in up.stderr(), "the refusal")
    assert time.monotonic() - broken <= EFFECT_WITHIN + 0.5  # (polled every 20 ms)
    check = plant(stack, "config", "check")
    problems = [line for line in check.stderr.splitlines() if "modules.d/bad.yaml" in line]
    assert problems
    assert all(f"  {problem}" in up.stderr().splitlines() for problem in problems)
    assert any(":2: " in problem for problem in problems)  # file:line
    time.sleep(1.0)  # and everything runs on
    assert up.stderr().count(refused) == 1  # said once, not every half second

    # Throughout: keep lost nothing, and the broker and the state service were not restarted.
    assert len(gapless(bus, "data.keep.n")) > 20
    assert bus.of("data.keep.n", time.monotonic() - 1.0)  # still publishing
    assert (up.child("plantd.broker"), up.child("plantd.state")) == (broker, state)
    assert up.process.poll() is None
    assert "Traceback" not in up.stderr()
    out = up.stdout()
    for line in (
        "plant up: module extra: added (module host)",
        "plant up: module extra: changed (module host)",
        "plant up: module extra: removed (module host)",
    ):
        assert line in out
    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(timeout=60) == 0


def test_plant_reload_hands_the_change_to_plant_up_and_reports_refusals(
    stack: Stack, up: Up, bus: Bus
) -> None:
    pid = up.process.pid
    same = plant(stack, "reload")
    assert same.returncode == 0, same.stderr
    assert same.stdout.splitlines() == [
        "nothing to change",
        f"sent SIGHUP to plant up (pid {pid}), which applies it",
    ]

    # An isolated module, through plant reload (plant up may have seen it first: either way).
    # No 2 s bound on its first sample: that is a new Python process starting, on a box this
    # test shares with plant reload's own start (the bound is on the host's modules, above).
    added = write(stack, "alone", extra("100ms", isolated=True))
    result = plant(stack, "reload")
    assert result.returncode == 0, result.stderr
    bus.first("data.alone.x", added)
    wait_until(lambda: "plant up: module alone: added (own process)" in up.stdout(), "the line")

    write(stack, "bad", BAD)
    check = plant(stack, "reload", "--check")
    assert check.returncode == 2
    assert "plant reload: refused modules.d/bad.yaml (not started):" in check.stderr
    assert f"(--check: nothing applied; plant up, pid {pid}, runs it)" in check.stdout
    result = plant(stack, "reload")
    assert result.returncode == 2
    assert "plant reload: refused modules.d/bad.yaml (not started):" in result.stderr
    # plant up looked again at once, and refused it too.
    refused = "plant up: refused modules.d/bad.yaml (not started):"
    wait_until(lambda: up.stderr().count(refused) == 2, "plant up's second refusal")

    removed = time.monotonic()
    (stack.config_dir / "modules.d/alone.yaml").unlink()
    (stack.config_dir / "modules.d/bad.yaml").unlink()
    assert plant(stack, "reload").returncode == 0
    assert bus.last_after_quiet("data.alone.x") - removed <= EFFECT_WITHIN
    assert len(gapless(bus, "data.keep.n")) > 10

    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(timeout=60) == 0
    gone = plant(stack, "reload")
    assert gone.returncode == 1
    assert "plant reload: nothing runs the configuration in" in gone.stderr


def test_a_sink_is_started_reloaded_in_place_and_stopped(stack: Stack, up: Up, bus: Bus) -> None:
    sinks = stack.config_dir / "sinks.d"
    sinks.mkdir()
    # An upstream that is not there: the sink keeps its queue and retries, it runs on.
    sink = "type: mqtt\nmqtt: {host: 127.0.0.1, port: 1}\n"
    (sinks / "cloud.yaml").write_text(sink)
    wait_until(lambda: "plant up: sink cloud: added (sink)" in up.stdout(), "the sink added")
    wait_until(lambda: _has_child(up, "plantd.sinks"), "the sink's process")
    pid = up.child("plantd.sinks")
    (sinks / "cloud.yaml").write_text(sink + "status_interval: 2s\n")
    wait_until(lambda: "plant up: sink cloud: changed (sink)" in up.stdout(), "the change")
    time.sleep(1.0)
    assert up.child("plantd.sinks") == pid  # SIGHUP: it re-read its file, no restart
    (sinks / "cloud.yaml").unlink()
    wait_until(lambda: "plant up: sink cloud: removed (sink)" in up.stdout(), "the removal")
    # Stopped: SIGTERM at once; a sink still waiting on its upstream may take 10 s to go.
    wait_until(lambda: not _has_child(up, "plantd.sinks"), "the sink to stop", timeout=30)
    assert "sink cloud exited" not in up.stderr()  # stopped, not seen to die
    assert len(gapless(bus, "data.keep.n")) > 10
    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(timeout=60) == 0


def _has_child(up: Up, module: str) -> bool:
    try:
        up.child(module)
    except AssertionError:
        return False
    return True
