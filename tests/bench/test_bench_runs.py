"""The broker benchmark runs to the end and prints sane figures.

No timing thresholds, not even loose ones on the ratios: the figures move with the machine,
and ``make test`` runs this beside another worker's tests (a loose floor of a fifth of the
relay's throughput failed there). Every figure must be measured and positive.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
LOADS = ("one_in_flight", "pipelined_w1", "pipelined_w4")


def load_harness() -> ModuleType:
    """``bench/_harness.py`` (bench/ is a directory of scripts, not a package)."""
    name = "bench_harness"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / "_harness.py")
    assert spec is not None
    assert spec.loader is not None
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench") / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "mdp_broker.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    figures: dict[str, Any] = json.loads(out.read_text())["figures"]
    return done.stdout, figures


@pytest.mark.timeout(240)
def test_quick_run_prints_a_machine_line_and_every_ratio(
    quick_run: tuple[str, dict[str, Any]],
) -> None:
    stdout, _ = quick_run
    first = stdout.splitlines()[0]
    for part in ("machine: Python ", "pyzmq ", "libzmq ", "cores", "pinning: "):
        assert part in first
    assert stdout.count("plantd ÷ relay = ") == 2 * len(LOADS)
    assert "(goal ≥ 0.8)" in stdout
    assert "(goal ≥ 0.7)" in stdout
    assert "(goal < 40 MB)" in stdout
    assert "(goal < 5 %)" in stdout


@pytest.mark.timeout(240)
def test_quick_run_figures_are_sane(quick_run: tuple[str, dict[str, Any]]) -> None:
    _, figures = quick_run
    for load in LOADS:
        assert figures[f"{load}/ratio/requests_per_s"]["median"] > 0, load
        assert figures[f"{load}/ratio/cpu_us_per_request"]["median"] > 0, load
        for hop in ("plantd", "relay"):
            assert figures[f"{load}/{hop}/requests_per_s"]["median"] > 0
            assert figures[f"{load}/{hop}/cpu_us_per_request"]["median"] > 0
            p50 = figures[f"{load}/{hop}/p50_us"]["median"]
            assert 0 < p50 <= figures[f"{load}/{hop}/p99_us"]["median"]
    idle, queued = figures["memory/rss_idle"]["median"], figures["memory/rss_queued"]["median"]
    assert 0 < idle <= queued < 1000  # MB
    assert 0 <= figures["heartbeat/cpu_percent"]["median"] < 100


def test_interleaving_alternates_the_order() -> None:
    harness = load_harness()
    order: list[str] = []

    def run(name: str) -> str:
        order.append(name)
        return name.lower()

    results = harness.interleaved([lambda: run("A"), lambda: run("B")], 3)
    assert order == ["A", "B", "B", "A", "A", "B"]
    assert results == [["a", "a", "a"], ["b", "b", "b"]]


def test_paired_ratio_and_percentiles() -> None:
    harness = load_harness()
    ratio = harness.Ratio.paired("k", "req/s", [8.0, 9.0, 10.0], [10.0, 10.0, 10.0], goal=0.8)
    assert ratio.values == (0.8, 0.9, 1.0)
    assert ratio.passed is True
    assert "plantd ÷ relay = 0.90  (0.80–1.00)  (goal ≥ 0.8)  PASS" in ratio.line()
    assert harness.percentile(list(range(1, 101)), 50) == 50
    assert harness.percentile(list(range(1, 101)), 99) == 99


def test_proc_readings_of_this_process() -> None:
    harness = load_harness()
    before = harness.cpu_seconds(os.getpid())
    sum(i * i for i in range(2_000_000))
    assert harness.cpu_seconds(os.getpid()) > before
    assert harness.rss_bytes(os.getpid()) > 1_000_000
