"""``bench/sinks.py --quick`` runs to the end and prints sane figures (no timing thresholds:
only floors that any working sink clears and a broken benchmark does not)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_run_prints_every_sink(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "sinks.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.stdout.startswith("machine: Python ")
    figures = json.loads(out.read_text())["figures"]
    assert figures["historian.live"]["median"] > 100
    assert figures["historian.capacity"]["median"] > 1000
    assert 0 < figures["historian.bytes"]["median"] < 10_000_000
    for sink in ("mqtt", "postgres"):
        if f"{sink}.skipped" in figures:
            continue
        assert figures[f"{sink}.live"]["median"] > 100
        assert figures[f"{sink}.capacity"]["median"] > 100
        assert figures[f"{sink}.ratio"]["median"] > 0
        assert 0 < figures[f"{sink}.bytes"]["median"] < 10_000_000
