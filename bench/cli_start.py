"""How long ``plant`` takes to start a command: only that command loaded, against every command.

    python bench/cli_start.py [--quick] [--repeat R] [--json FILE]

``plant`` imports only the module of the built-in command it runs (``plantd.cli._BUILTIN``);
before, it imported every command module and every ``plantd.cli`` entry point (the drivers'
and the HIL rig's) to build its parser, whatever the command. Each run here is a fresh
process, timed from its start to its exit, ``--help`` of a command (start-up, imports and the
parser: what changed, with no broker to wait for):

- **one command** (the candidate): ``python -m plantd.cli COMMAND … --help``, as ``plant`` runs;
- **every command** (the baseline, the old way): the same command line parsed by
  ``plantd.cli.build_parser()`` with no command line given, which loads every command.

R repetitions of each command, the two interleaved (A B, B A, …); figures are medians with
min–max, and the ratio one ÷ every per interleaved pair. On a Raspberry Pi, or under the image
tests' emulation, every figure is several times larger; the ratio is what is read
(bench/README.md). ``--quick``: 3 repetitions (the smoke test's mode). Exit status 0 whatever
the figures, 1 if a command failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    BenchError,
    Figure,
    Ratio,
    interleaved,
    machine_info,
    machine_line,
    write_json,
)

COMMANDS = (
    ("mmi", "--help"),
    ("state", "get", "--help"),
    ("reload", "--help"),
    ("system", "status", "--help"),
)
ONE_COMMAND = [sys.executable, "-m", "plantd.cli"]
EVERY_COMMAND = [
    sys.executable,
    "-c",
    "import sys; from plantd.cli import build_parser; build_parser().parse_args(sys.argv[1:])",
]


def seconds_to_run(argv: Sequence[str]) -> float:
    """Wall time of one process, from its start to its exit."""
    began = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    took = time.perf_counter() - began
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.decode()}")
    return took


def measure(command: Sequence[str], repeat: int) -> list[Figure | Ratio]:
    one, every = interleaved(
        [
            lambda: seconds_to_run([*ONE_COMMAND, *command]) * 1000,
            lambda: seconds_to_run([*EVERY_COMMAND, *command]) * 1000,
        ],
        repeat,
    )
    name = " ".join(command[:-1])
    return [
        Figure(f"{name}.one", f"plant {name} --help: one command", "ms", tuple(one)),
        Figure(f"{name}.every", "  baseline: every command loaded", "ms", tuple(every)),
        Ratio.paired(f"{name}.ratio", "  one ÷ every", one, every, label="one ÷ every"),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions")
    parser.add_argument("--repeat", type=int, default=None, help="default 20 (--quick: 3)")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = parser.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 20)
    print(machine_line("none (one process at a time)"), flush=True)
    print(f"{repeat} repetition(s) of each command, one and every interleaved", flush=True)
    figures: list[Figure | Ratio] = []
    try:
        for command in COMMANDS:
            measured = measure(command, repeat)
            for figure in measured:
                print(figure.line(), flush=True)
            figures += measured
    except BenchError as exc:
        print(f"bench/cli_start.py: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if args.json:
        write_json(args.json, machine_info(), figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
