"""``bench/proxy.py --quick`` runs to the end and prints sane figures.

No timing thresholds: the figures move with the machine. The floors are sanity ones that a
working proxy clears anywhere and a broken benchmark does not: every client receives events,
the samples the publisher sent arrive (the window's edges aside), latencies are positive and
ordered, the proxy used some CPU, and a REST call costs more than the MDP call it wraps.
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
def test_quick_run_prints_every_part_with_sane_figures(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "proxy.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    first = done.stdout.splitlines()[0]
    for part in ("machine: Python ", "pyzmq ", "libzmq ", "cores", "pinning: "):
        assert part in first
    assert "1. Streams: 50 SSE clients" in done.stdout
    assert "2. REST ÷ MDP" in done.stdout
    assert "(goal < 0.5 core)" in done.stdout
    assert "(goal < 100 ms)" in done.stdout
    assert "proxy ÷ plain subscriber = " in done.stdout
    assert "REST ÷ MDP = " in done.stdout

    figures = {key: f["median"] for key, f in json.loads(out.read_text())["figures"].items()}
    assert all(math.isfinite(value) for value in figures.values())
    assert figures["stream.1k.published_per_s"] > 100
    assert figures["stream.1k.events_per_s"] > 0
    assert figures["stream.1k.delivered"] > 0.5
    assert 0 < figures["stream.1k.p50_ms"] <= figures["stream.1k.p99_ms"]
    assert figures["stream.1k.p99_ms"] <= figures["stream.1k.max_ms"]
    assert 0 < figures["stream.1k.bus_p50_ms"] <= figures["stream.1k.bus_p99_ms"]
    assert 0 < figures["stream.1k.proxy_cores"] < 2
    assert figures["rest.mdp_us"] > 0
    assert figures["rest.ratio"] > 1
