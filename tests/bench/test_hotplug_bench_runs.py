"""``bench/hotplug.py --quick`` runs to the end and prints every figure of the hot-plug benchmark.

No timing thresholds: the times move with the machine; they are only checked to be measured
(finite, positive). What is asserted beyond that is functional, not a speed: hot-plug, adding a
module and a broken file lose no sample of the modules they do not touch and restart none of
them, the host survives the broken files, and a host restart gives every module a new epoch.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
MODULES = 4  # --quick's


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_run_prints_its_figures_and_hot_plug_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "hotplug.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    first = done.stdout.splitlines()[0]
    for part in ("machine: Python ", "pyzmq ", "libzmq ", "cores", "pinning: "):
        assert part in first
    for line in (
        f"load: one `plant module host`, {MODULES} modules",
        "SIGHUP → its first new sample",
        "SIGTERM → every module publishing",
        "SIGHUP → both refused (logged)",
        "time to recover                              hot-plug ÷ restart = ",
        "samples lost per op, the 3 others            hot-plug ÷ restart = ",
        "verdict: hot-plug recovers in ",
    ):
        assert line in done.stdout
    assert "nothing untouched was lost or restarted" in done.stdout

    figures = {key: f["median"] for key, f in json.loads(out.read_text())["figures"].items()}
    for key in (
        "hotplug.recover_s",
        "restart.recover_s",
        "restart.changed_s",
        "restart.stop_s",
        "add.first_s",
        "broken.logged_s",
        "ratio.recover",
    ):
        assert math.isfinite(figures[key]), key
        assert figures[key] > 0, key
    for key in ("hotplug", "add", "broken"):
        assert figures[f"{key}.lost"] == 0, key
        assert figures[f"{key}.restarted"] == 0, key
    assert figures["broken.running"] == 1
    assert figures["restart.restarted"] == MODULES - 1  # a new host: a new publisher each
    assert figures["restart.lost"] >= 0
