"""``bench/control.py --quick`` runs to the end and prints every figure of issue 18's benchmark.

No timing thresholds: the figures move with the machine. The floors are sanity ones that a
working plantd-control clears anywhere and a broken benchmark does not: the loops' writes reach
the plant, alarm events reach the observer, latencies are positive and ordered, the control
used some CPU and at most the core it is pinned to (plus the clock tick's slack).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_run_prints_every_figure_with_sane_values(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "control.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    first = done.stdout.splitlines()[0]
    for part in ("machine: Python ", "pyzmq ", "libzmq ", "cores", "pinning: "):
        assert part in first
    assert "load: 1000 alarms, 100 loops at 100 ms" in done.stdout
    for line in (
        "CPU of plantd-control",
        "loop lateness p99 (process status)",
        "write interval jitter p99",
        "alarm latency p50 (sample → event)",
        "alarm latency p99",
        "baseline: bus latency p99",
        "CPU of the subscriber",
        "control (full) ÷ plain subscriber = ",
        "alarm event ÷ bus = ",
        "(goal < 1 core)",
        "(goal < 100 ms)",
    ):
        assert line in done.stdout

    figures = {key: f["median"] for key, f in json.loads(out.read_text())["figures"].items()}
    assert all(math.isfinite(value) for value in figures.values()), figures
    assert 0 < figures["full.cores"] < 1.2
    assert 0 <= figures["empty.cores"] < figures["full.cores"]
    assert figures["subscriber.cores"] > 0
    assert figures["full.writes_per_s"] > 100
    assert figures["full.events_per_s"] > 1
    assert figures["full.excursions_per_s"] > 1
    assert 0 < figures["full.alarm_p50_ms"] <= figures["full.alarm_p99_ms"]
    assert figures["full.alarm_p99_ms"] <= figures["full.alarm_max_ms"]
    assert 0 < figures["full.bus_p50_ms"] <= figures["full.bus_p99_ms"]
    assert 0 <= figures["full.write_jitter_p50_ms"] <= figures["full.write_jitter_p99_ms"]
    assert figures["full.lateness_p99_ms"] >= 0
    assert figures["ratio.latency_p50"] > 0
