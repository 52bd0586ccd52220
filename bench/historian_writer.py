"""The historian's writer: buffered rollups against merging them at every batch, in one run.

    python bench/historian_writer.py [--quick] [--repetitions N] [--amplification]

Each repetition writes the same batches — 10 modules × 1,000 points, one sample each, 0.1 s
apart (what the module host publishes at 100 ms) — into a fresh SQLite file through
``HistoryStore.write_batch``, on this process's writer thread, twice, interleaved:

- **buffered**: as the store runs: rollups folded into a buffer, merged every 5 s, rows into
  ``recent``, settled into ``samples`` every 30 s (here once, at the end of the run, more often
  than it would; the last merge and settle are inside the timing);
- **every batch**: the same store merging its rollups and settling its rows after every batch,
  which is what it did before the buffer and ``recent``: every point's minute and hour rows
  upserted, and a page of every point rewritten, at every batch.

Prints samples/s of each (median and spread over the repetitions) and buffered ÷ every batch
per interleaved pair. Figures are CPU-bound work on one thread; the machine's other load moves
both sides alike.

``--amplification``: bytes the process writes to disk (``/proc/self/io`` ``write_bytes``: the
WAL and its checkpoints) per sample stored, as the database grows, for 10,000 points polled
every second (a batch a second, one sample per point: the worst case of a layout by point),
in turn on the same disk: the store settling ``recent`` into ``samples`` after every batch
(what writing straight into ``samples`` costs: a page per point per batch), the store as it
runs (settled every 30 batches: 30 s), and the floor, the same rows in one table clustered by
time (``PRIMARY KEY (ts, point, epoch, seq)``).
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import plantd.historian._store as store_module
from plantd.bus import Quality, Sample
from plantd.config import HistorianConfig
from plantd.historian import HistoryStore
from plantd.historian._schema import connect

NAMES = [f"m{module}.p{point:04d}" for module in range(10) for point in range(1000)]


def batches(count: int) -> list[list[tuple[str, Sample]]]:
    return [
        [(name, Sample(float(n * 7 + i), 1.7e9 + n * 0.1, Quality.GOOD, seq=n + 1, epoch=1))
         for i, name in enumerate(NAMES)]
        for n in range(count)
    ]  # fmt: skip


def run(directory: Path, data: list[list[tuple[str, Sample]]], every_batch: bool) -> float:
    """Samples/s written, the last merge and settle included."""
    path = directory / f"h-{every_batch}-{time.monotonic_ns()}.db"
    saved = store_module._ROLLUP_EVERY, store_module._SETTLE_EVERY
    if every_batch:
        store_module._ROLLUP_EVERY = store_module._SETTLE_EVERY = 0.0
    store = HistoryStore(path, HistorianConfig(database=path))
    try:
        store.write_batch(data[0])  # the points' rows exist from here on, as in a running store
        started = time.perf_counter()
        for batch in data[1:]:
            store.write_batch(batch)
        store.read_now(lambda conn: None)  # merges what is buffered
        store._writer.call(store._settle_now)  # and settles: its cost is in the figure
        elapsed = time.perf_counter() - started
    finally:
        store.close()
        store_module._ROLLUP_EVERY, store_module._SETTLE_EVERY = saved
    return sum(len(batch) for batch in data[1:]) / elapsed


def written_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/self/io")


_BY_TIME = """CREATE TABLE samples (
    ts REAL NOT NULL, point INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
    kind TEXT NOT NULL, value, quality INTEGER NOT NULL, PRIMARY KEY (ts, point, epoch, seq)
) WITHOUT ROWID"""


def amplification(directory: Path, batches_count: int, step: int) -> None:
    """Bytes written per sample stored, every ``step`` batches, for three ways of storing the
    same batches (one a second, one sample per point each), chunk by chunk in turn."""
    ids = {name: index + 1 for index, name in enumerate(NAMES)}
    saved = store_module._SETTLE_EVERY
    store_module._SETTLE_EVERY = math.inf  # settled below, by the data's clock
    stores = {
        every: HistoryStore(directory / f"settle-{every}.db", HistorianConfig())
        for every in (1, 30)
    }
    by_time = connect(directory / "by-time.db")
    by_time.execute(_BY_TIME)

    def settled_every(every: int, data: list[list[tuple[str, Sample]]], first: int) -> None:
        store = stores[every]
        for number, batch in enumerate(data, start=first + 1):
            store.write_batch(batch)
            if number % every == 0:
                store._writer.call(store._settle_now)

    def time_clustered(data: list[list[tuple[str, Sample]]], first: int) -> None:
        for batch in data:
            by_time.execute("BEGIN IMMEDIATE")
            by_time.executemany(
                "INSERT OR IGNORE INTO samples VALUES (?,?,?,?,?,?,?)",
                [(s.timestamp, ids[n], s.epoch, s.seq, "f", s.value, 0) for n, s in batch],
            )
            by_time.execute("COMMIT")

    print(f"bytes written per sample stored: {len(NAMES):,} points polled every second")
    print(
        f"  {'after batches':>14}  {'settled every batch':>20}  {'every 30 s (plantd)':>20}  "
        f"{'by time':>8}"
    )
    last: dict[str, float] = {}
    try:
        for start in range(0, batches_count, step):
            data = batches(start + step)[start:]
            for name, write in (
                ("every batch", functools.partial(settled_every, 1, data, start)),
                ("every 30 s", functools.partial(settled_every, 30, data, start)),
                ("by time", functools.partial(time_clustered, data, start)),
            ):
                before = written_bytes()
                write()
                last[name] = (written_bytes() - before) / (step * len(NAMES))
            print(
                f"  {start + step:>14}  {last['every batch']:>18,.0f} B  "
                f"{last['every 30 s']:>18,.0f} B  {last['by time']:>6,.0f} B"
            )
    finally:
        for store in stores.values():
            store.close()
        by_time.close()
        store_module._SETTLE_EVERY = saved
    print(
        f"every 30 s ÷ every batch = {last['every 30 s'] / last['every batch']:.3f}, "
        f"every 30 s ÷ by time = {last['every 30 s'] / last['by time']:.1f} "
        "(lower is better for plantd)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repetitions")
    parser.add_argument("--repetitions", type=int, default=None, metavar="N")
    parser.add_argument(
        "--amplification", action="store_true", help="bytes written per sample as the file grows"
    )
    args = parser.parse_args()
    if args.amplification:
        with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:  # a disk, not a tmpfs
            amplification(Path(tmp), 40 if args.quick else 200, 10 if args.quick else 50)
        return 0
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
            buffered.append(run(Path(tmp), data, every_batch=False))
            every.append(run(Path(tmp), data, every_batch=True))
    for name, rates in (("as it runs", buffered), ("every batch", every)):
        print(
            f"  {name:<20} {statistics.median(rates):>10,.0f} samples/s  "
            f"({min(rates):,.0f}–{max(rates):,.0f}), "
            f"{1e6 / statistics.median(rates):.2f} µs/sample"
        )
    ratios = [a / b for a, b in zip(buffered, every, strict=True)]
    print(
        f"as it runs ÷ every batch = {statistics.median(ratios):.2f} "
        f"({min(ratios):.2f}–{max(ratios):.2f}; higher is better)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
