"""``bench/security.py --quick`` runs to the end and prints sane figures.

No timing thresholds: the figures move with the machine. The floors are sanity ones that a
working broker clears anywhere and a broken benchmark does not (the CURVE broker reaches more
than a fifth of the plain broker's throughput, CPU costs are positive and plausible, the bus
carries samples in both modes without losing any).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
LOADS = ("one_in_flight", "pipelined_w4")
MODES = ("curve", "none")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench-security") / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "security.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    figures: dict[str, Any] = json.loads(out.read_text())["figures"]
    return done.stdout, figures


@pytest.mark.timeout(240)
def test_quick_run_prints_a_machine_line_every_section_and_the_goals(
    quick_run: tuple[str, dict[str, Any]],
) -> None:
    stdout, _ = quick_run
    first = stdout.splitlines()[0]
    for part in ("machine: Python ", "pyzmq ", "libzmq ", "cores", "pinning: "):
        assert part in first
    for section in (
        "1 client, 1 in flight",
        "2 clients × 64 in flight, 4 workers",
        "connections: ",
        "data bus: ",
    ):
        assert f"\n{section}" in stdout
    # per load: requests/s, p50, CPU; connections: time, CPU; bus: samples/s, CPU
    assert stdout.count("curve ÷ none = ") == 3 * len(LOADS) + 2 + 2
    assert stdout.count("(goal ≥ 0.7)") == len(LOADS)
    assert stdout.count("PASS") + stdout.count("MISS") == len(LOADS)
    assert "CURVE + ZAP, extra time per connection" in stdout
    assert "\ntotal " in stdout


@pytest.mark.timeout(240)
def test_quick_run_figures_are_sane(quick_run: tuple[str, dict[str, Any]]) -> None:
    _, figures = quick_run
    for load in LOADS:
        assert figures[f"{load}/ratio/requests_per_s"]["median"] > 0, load
        assert figures[f"{load}/ratio/cpu_us_per_request"]["median"] > 0, load
        for mode in MODES:
            assert figures[f"{load}/{mode}/requests_per_s"]["median"] > 0
            assert figures[f"{load}/{mode}/cpu_us_per_request"]["median"] > 0
            p50 = figures[f"{load}/{mode}/p50_us"]["median"]
            assert 0 < p50 <= figures[f"{load}/{mode}/p99_us"]["median"]
    for mode in MODES:
        assert 0 < figures[f"connect/{mode}/ms_per_connection"]["median"] < 1000
        assert figures[f"connect/{mode}/broker_cpu_us"]["median"] >= 0  # 10 ms ticks
        assert figures[f"bus/{mode}/samples_per_s"]["median"] > 0
        assert figures[f"bus/{mode}/lost"]["median"] == 0  # the publisher waits for credit
    assert figures["connect/ratio/ms_per_connection"]["median"] > 0
    assert figures["bus/ratio/samples_per_s"]["median"] > 0
