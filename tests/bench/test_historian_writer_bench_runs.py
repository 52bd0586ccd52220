"""``bench/historian_writer.py --quick`` runs to the end and prints both figures and a ratio
(no thresholds: the figures move with the machine)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "historian_writer.py"


@pytest.mark.slow
def test_quick_run_prints_both_rates_and_a_ratio() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--repetitions", "1"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rates = re.findall(r"^  (as it runs|every batch) +([\d,]+) samples/s",
                       done.stdout, re.MULTILINE)  # fmt: skip
    assert [name for name, _ in rates] == ["as it runs", "every batch"]
    assert all(int(rate.replace(",", "")) > 0 for _, rate in rates)
    ratio = re.search(r"^as it runs ÷ every batch = ([\d.]+)", done.stdout, re.MULTILINE)
    assert ratio is not None
    assert float(ratio.group(1)) > 0


@pytest.mark.slow
def test_amplification_prints_bytes_per_sample_for_every_layout() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--amplification", "--quick"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = re.findall(r"^ +(\d+) +([\d,]+) B +([\d,]+) B +([\d,]+) B$", done.stdout, re.MULTILINE)
    assert [int(row[0]) for row in rows] == [10, 20, 30, 40]
    assert all(int(value.replace(",", "")) > 0 for row in rows for value in row[1:])
    assert re.search(r"^every 30 s ÷ every batch = [\d.]+, every 30 s ÷ by time = [\d.]+",
                     done.stdout, re.MULTILINE)  # fmt: skip
