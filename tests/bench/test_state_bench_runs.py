"""The state benchmark runs to the end and prints sane figures.

No timing thresholds: the figures move with the machine (and its disk's fsync time most of all).
The floors are sanity ones that a working state service clears anywhere and a broken benchmark
does not: every figure positive, gets within a tenth of the echo rate, pipelining not slower than
one at a time, commits carrying at least one write.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench-state") / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "state.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    figures: dict[str, Any] = json.loads(out.read_text())["figures"]
    return done.stdout, figures


@pytest.mark.timeout(240)
def test_quick_run_prints_a_machine_line_every_figure_and_the_goals(
    quick_run: tuple[str, dict[str, Any]],
) -> None:
    stdout, _ = quick_run
    first = stdout.splitlines()[0]
    for part in ("machine: Python ", "pyzmq ", "libzmq ", "cores", "pinning: "):
        assert part in first
    for section in ("through the broker", "in this process", "ratios"):
        assert f"\n{section}" in stdout
    assert "get ÷ echo = " in stdout
    assert "(goal ≥ 0.5)" in stdout
    assert "(goal ≥ 5)" in stdout
    assert stdout.count("PASS") + stdout.count("MISS") == 2


@pytest.mark.timeout(240)
def test_quick_run_figures_are_sane(quick_run: tuple[str, dict[str, Any]]) -> None:
    _, figures = quick_run
    for kind in ("echo", "get", "set"):
        for shape in ("one", "pipelined"):
            assert figures[f"{kind}/{shape}/per_s"]["median"] > 0
            assert figures[f"{kind}/{shape}/cpu_us"]["median"] > 0
        assert 0 < figures[f"{kind}/one/p50_us"]["median"] < 1_000_000
    assert figures["set/one/per_commit"]["median"] == pytest.approx(1.0)
    assert figures["set/pipelined/per_commit"]["median"] >= 1.0
    for name in ("fsync_us", "sqlite_set_per_s", "sqlite_get_per_s", "store_set_one_per_s"):
        assert figures[f"inprocess/{name}"]["median"] > 0
    assert figures["ratio/get_vs_echo_one"]["median"] > 0
    assert figures["ratio/set_pipelined_vs_one"]["median"] > 0
    assert figures["ratio/store_32_vs_one"]["median"] > 0
