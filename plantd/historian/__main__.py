"""``plantd-historian``: run the historian until SIGTERM (``plant historian run`` does the same)."""

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
    parser = argparse.ArgumentParser(prog="plantd-historian", description=__doc__)
    parser.add_argument("--config", metavar="DIR", help="configuration directory")
    args = parser.parse_args(argv)
    environ = dict(os.environ)
    try:
        config = load_config(
            resolve_config_dir(Path(args.config) if args.config else None, environ), environ
        )
    except ConfigError as exc:
        print(f"plantd-historian: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    from plantd.historian import run_historian

    configure_logging(
        config.logging.level, config.logging.format, under_journal="JOURNAL_STREAM" in environ
    )
    asyncio.run(run_historian(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
