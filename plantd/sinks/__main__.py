"""``plantd-sink NAME``: run ``sinks.d/NAME.yaml`` until SIGTERM (as ``plant sink run NAME``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from plantd._entry import service_main
from plantd.config import PlantdConfig
from plantd.logs import configure_logging

__all__ = ["main"]


def _serve(config: PlantdConfig, environ: dict[str, str], args: argparse.Namespace) -> int:
    from plantd.sinks import SinkAlreadyRunning, load_sink, run_sink

    load_sink(config, args.name)  # report a bad file (exit 2) before logging starts
    configure_logging(
        config.logging.level, config.logging.format, under_journal="JOURNAL_STREAM" in environ
    )
    try:
        asyncio.run(run_sink(config, args.name, environ))
    except SinkAlreadyRunning as exc:
        print(f"plantd-sink: sink {args.name}: {exc}", file=sys.stderr)
        return exc.exit_status
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return service_main(
        "plantd-sink",
        __doc__,
        argv,
        _serve,
        principal=lambda args: f"sink.{args.name}",
        add_arguments=_arguments,
    )


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the sink: sinks.d/NAME.yaml")


if __name__ == "__main__":
    sys.exit(main())
