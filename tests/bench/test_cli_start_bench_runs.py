"""``bench/cli_start.py --quick`` runs to the end and prints every command's figures (no timing
thresholds: only that both ways started and the ratios are finite)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_quick_run_prints_every_command(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "cli_start.py"), "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.stdout.startswith("machine: Python ")
    figures = json.loads(out.read_text())["figures"]
    for command in ("mmi", "state get", "reload", "system status"):
        assert f"plant {command} --help: one command" in done.stdout
        for way in ("one", "every"):
            assert len(figures[f"{command}.{way}"]["values"]) == 3
            assert figures[f"{command}.{way}"]["median"] > 0
        assert math.isfinite(figures[f"{command}.ratio"]["median"])
