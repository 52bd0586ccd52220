"""The OPC UA benchmark runs to the end in --quick mode and prints sane figures.

No timing thresholds: only floors that a working benchmark clears on any machine (both modes
publish, CPU figures are positive, the ratios are finite and within generous bounds).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.timeout(240)
def test_quick_run_prints_both_modes_and_the_ratios(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "opcua.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    lines = done.stdout.splitlines()
    assert lines[0].startswith("machine: Python ")
    assert "subscription: samples/s published" in done.stdout
    assert "poll: samples/s published" in done.stdout
    assert done.stdout.count("subscription ÷ poll = ") == 2
    figures = json.loads(out.read_text())["figures"]
    for mode in ("subscription", "poll"):
        assert figures[f"{mode}/samples_per_s"]["median"] > 0
        # CPU time is counted in clock ticks: a short quick run may round to none.
        assert figures[f"{mode}/cpu_ms_per_1000"]["median"] >= 0
    assert 0 < figures["ratio/samples_per_s"]["median"] < math.inf
    # No bounds on how the modes compare (that moves with the machine); a baseline whose CPU
    # rounded to no tick gives an infinite ratio, never a missing one.
    assert not math.isnan(figures["ratio/cpu_ms_per_1000"]["median"])
