"""``plantd-sink NAME``: run ``sinks.d/NAME.yaml`` until SIGTERM (as ``plant sink run NAME``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from plantd.config import load_config, resolve_config_dir
from plantd.errors import ConfigError
from plantd.logs import configure_logging

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plantd-sink", description=__doc__)
    parser.add_argument("--config", metavar="DIR", help="configuration directory")
    parser.add_argument("name", help="the sink: sinks.d/NAME.yaml")
    args = parser.parse_args(argv)
    environ = dict(os.environ)
    from plantd.sinks import load_sink, run_sink

    try:
        config = load_config(
            resolve_config_dir(Path(args.config) if args.config else None, environ), environ
        )
        load_sink(config, args.name)  # report a bad file before logging starts
    except ConfigError as exc:
        print(f"plantd-sink: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(
        config.logging.level, config.logging.format, under_journal="JOURNAL_STREAM" in environ
    )
    asyncio.run(run_sink(config, args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
