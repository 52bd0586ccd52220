"""``bench/observability.py --smoke`` runs to the end and prints sane figures.

No timing thresholds: the figures move with the machine. The floors are sanity ones — polls
were timed with and without the flood, the flood's records were emitted and reached the
logger, ``plant logs -f`` followed every probe — which a working stack clears on any machine
and a broken benchmark does not. (``--smoke`` skips part 1, the Modbus load: its ten module
processes take half a minute to start.)
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
@pytest.mark.timeout(120)
def test_smoke_run_prints_every_part(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "observability.py"), "--smoke", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    lines = done.stdout.splitlines()
    for part in ("machine: Python ", "pyzmq ", "libzmq ", "cores", "pinning: "):
        assert part in lines[0]
    for title in ("2. Logging never blocks", "3. Record → plant logs -f latency"):
        assert title in done.stdout
    assert done.stdout.count("flood ÷ no flood = ") == 2
    assert "(goal < 1 s)" in done.stdout

    figures = json.loads(out.read_text())["figures"]
    for mode in ("no_flood", "flood"):
        assert figures[f"polls.{mode}.polls"]["median"] > 0
        p50, p99 = (
            figures[f"polls.{mode}.p50_ms"]["median"],
            figures[f"polls.{mode}.p99_ms"]["median"],
        )
        assert p50 <= p99
    emitted = figures["polls.flood.emitted"]["median"]
    assert emitted > 0
    # Every record emitted is published or counted dropped; the logger stores what it receives.
    assert (
        figures["polls.flood.published"]["median"] + figures["polls.flood.dropped"]["median"]
        >= emitted
    )
    assert figures["polls.flood.received"]["median"] > 0
    assert figures["polls.flood.stored"]["median"] > 0
    assert figures["follow.records"]["median"] == 20
    assert 0 < figures["follow.p50_s"]["median"] <= figures["follow.p99_s"]["median"]
    assert all(math.isfinite(f["median"]) for f in figures.values())
