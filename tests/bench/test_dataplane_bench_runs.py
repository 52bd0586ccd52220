"""``bench/dataplane.py --quick`` runs to the end and prints sane figures.

No timing thresholds: the figures move with the machine (and the quick run's windows are too
short for its goals to mean much). The floors are sanity ones — data reaches every consumer,
CPU and memory are plausible, the ratios are finite — which a working stack clears on any
machine and a broken benchmark does not.
"""

from __future__ import annotations

import importlib.util
import json
import math
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SETTINGS = ("1s.uint16", "1s.float32", "100ms.uint16", "100ms.float32")
# --quick: 3 devices × 200 registers (200 uint16 or 100 float32 points each)
EXPECTED = {"1s.uint16": 600, "1s.float32": 300, "100ms.uint16": 6000, "100ms.float32": 3000}


def mosquitto_running() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=1).close()
    except OSError:
        return False
    return True


def load_dataplane() -> ModuleType:
    """``bench/dataplane.py`` as a module (bench/ is a directory of scripts, not a package)."""
    name = "bench_dataplane"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / "dataplane.py")
    assert spec is not None
    assert spec.loader is not None
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    if not mosquitto_running():
        pytest.skip("no Mosquitto on 127.0.0.1:1883 (the sink and the baseline script need one)")
    out = tmp_path_factory.mktemp("bench") / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "dataplane.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    figures: dict[str, Any] = json.loads(out.read_text())["figures"]
    return done.stdout, figures


@pytest.mark.slow
@pytest.mark.timeout(450)
def test_quick_run_prints_every_setting_and_goal(quick_run: tuple[str, dict[str, Any]]) -> None:
    stdout, _ = quick_run
    lines = stdout.splitlines()
    for part in ("machine: Python ", "pyzmq ", "libzmq ", "cores", "pinning: "):
        assert part in lines[0]
    assert lines[1].startswith("settings: 3 devices × 200 registers")
    assert any(line.startswith("modules: one `plant module") for line in lines)
    for title in ("1s, uint16", "1s, float32", "100ms, uint16", "100ms, float32"):
        assert f"== {title}: 3 devices × " in stdout
    # RSS and PSS always; points per core only where the script's CPU was measurable (a quick
    # window at 1 s can read 0.00 cores for it, and a ratio over zero is no figure).
    assert stdout.count("plantd ÷ script = ") >= 2 * len(SETTINGS)
    for goal in ("(goal ≤ 0.5 core)", "(goal ≤ 1.5 core)", "(goal ≤ 200 MB)", "(goal ≤ 5 s)",
                 "(goal < 1,000 ms)", "(goal ≤ start + 10 %)"):  # fmt: skip
        assert goal in stdout
    assert "where plantd's CPU goes" in stdout
    assert "\ngoals: " in stdout


@pytest.mark.slow
@pytest.mark.timeout(450)
def test_quick_run_figures_are_sane(quick_run: tuple[str, dict[str, Any]]) -> None:
    _, figures = quick_run

    def median(key: str) -> float:
        value: float = figures[key]["median"]
        return value

    for setting in SETTINGS:
        expected = EXPECTED[setting]
        plantd, script = f"{setting}.plantd", f"{setting}.script"
        # Data reaches every consumer: at least a third of the points, whatever the machine.
        for field in ("polled", "bus", "historian", "mqtt"):
            assert median(f"{plantd}.{field}") > expected / 3, (setting, field)
        assert median(f"{script}.mqtt") > expected / 3, setting
        assert 0 < median(f"{plantd}.cpu") < 8, setting
        assert 0 <= median(f"{script}.cpu") < 4, setting
        for role in ("broker", "state", "historian", "modules", "sink"):
            assert 5 < median(f"{plantd}.rss_{role}_end") < 2000, (setting, role)
        assert 5 < median(f"{script}.rss_end") < 500, setting
        assert 0 < median(f"{plantd}.first_bus") < 60, setting
        assert 0 < median(f"{plantd}.age_bus") < 60_000, setting
        # Finite and positive; the memory ratio is a cost (plantd runs five kinds of process).
        assert 0 < median(f"{setting}.ratio.rss") < 1000, setting
        assert 0 < median(f"{setting}.ratio.pss") < 1000, setting


def test_mqtt_payloads_are_counted_per_sample_and_per_batch() -> None:
    count_samples = load_dataplane().count_samples
    one = b'{"point":"dev0.p","value":1.5,"timestamp":1714550400.5,"quality":"good","seq":1}'
    assert count_samples(one)[:2] == (1, [1714550400.5])
    listed = json.dumps([{"point": f"p{i}", "value": i, "ts": 1714550400500} for i in range(40)])
    samples, stamps, shape = count_samples(listed.encode())
    assert (samples, shape) == (40, "a JSON list of 40")
    assert 0 < len(stamps) <= 16  # a sample of them
    assert all(math.isclose(s, 1714550400.5) for s in stamps)  # from milliseconds
    script = {"device": "dev0", "timestamp": 1714550400.0, "values": {"a": 1, "b": 2, "c": 3}}
    assert count_samples(json.dumps(script).encode())[:2] == (3, [1714550400.0])
    batch = {"module": "dev0", "samples": [{"point": "a", "v": 1}, {"point": "b", "v": 2}]}
    assert count_samples(json.dumps(batch).encode())[0] == 2
    assert count_samples(b"not json")[0] == 1
