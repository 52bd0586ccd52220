"""The historian's writer: buffered rollups against merging them at every batch, in one run.

    python bench/historian_writer.py [--quick] [--repetitions N]

Each repetition writes the same batches — 10 modules × 1,000 points, one sample each, 0.1 s
apart (what the module host publishes at 100 ms) — into a fresh SQLite file through
``HistoryStore.write_batch``, on this process's writer thread, twice, interleaved:

- **buffered**: as the store runs (rollups folded into a buffer, merged every 5 s and at the
  end; the final merge is inside the timing);
- **every batch**: the same store with its merge interval set to 0, which is what it did before
  the buffer: every point's minute and hour rows upserted in every batch's transaction.

Prints samples/s of each (median and spread over the repetitions) and buffered ÷ every batch
per interleaved pair. Figures are CPU-bound work on one thread; the machine's other load moves
both sides alike.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import plantd.historian._store as store_module
from plantd.bus import Quality, Sample
from plantd.config import HistorianConfig
from plantd.historian import HistoryStore

NAMES = [f"m{module}.p{point:04d}" for module in range(10) for point in range(1000)]


def batches(count: int) -> list[list[tuple[str, Sample]]]:
    return [
        [(name, Sample(float(n * 7 + i), 1.7e9 + n * 0.1, Quality.GOOD, seq=n + 1, epoch=1))
         for i, name in enumerate(NAMES)]
        for n in range(count)
    ]  # fmt: skip


def run(directory: Path, data: list[list[tuple[str, Sample]]], merge_every: float) -> float:
    """Samples/s written, the last merge included."""
    path = directory / f"h-{merge_every:g}-{time.monotonic_ns()}.db"
    saved = store_module._ROLLUP_EVERY
    store_module._ROLLUP_EVERY = merge_every
    store = HistoryStore(path, HistorianConfig(database=path))
    try:
        store.write_batch(data[0])  # the points' rows exist from here on, as in a running store
        started = time.perf_counter()
        for batch in data[1:]:
            store.write_batch(batch)
        store.read_now(lambda conn: None)  # merges what is buffered
        elapsed = time.perf_counter() - started
    finally:
        store.close()
        store_module._ROLLUP_EVERY = saved
    return sum(len(batch) for batch in data[1:]) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repetitions")
    parser.add_argument("--repetitions", type=int, default=None, metavar="N")
    args = parser.parse_args()
    repetitions = args.repetitions or (2 if args.quick else 5)
    data = batches(11 if args.quick else 51)
    print(
        f"machine: Python {sys.version.split()[0]}; {len(NAMES):,} points a batch, "
        f"{len(data) - 1} batches a run, {repetitions} interleaved repetition(s)"
    )
    buffered: list[float] = []
    every: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repetitions):
            buffered.append(run(Path(tmp), data, store_module._ROLLUP_EVERY))
            every.append(run(Path(tmp), data, 0.0))
    for name, rates in (("buffered rollups", buffered), ("merged every batch", every)):
        print(
            f"  {name:<20} {statistics.median(rates):>10,.0f} samples/s  "
            f"({min(rates):,.0f}–{max(rates):,.0f}), "
            f"{1e6 / statistics.median(rates):.2f} µs/sample"
        )
    ratios = [a / b for a, b in zip(buffered, every, strict=True)]
    print(
        f"buffered ÷ every batch = {statistics.median(ratios):.2f} "
        f"({min(ratios):.2f}–{max(ratios):.2f}; higher is better)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
