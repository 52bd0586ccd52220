"""``plantd-historian``: run the historian until SIGTERM (``plant historian run`` does the same)."""

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
    from plantd.historian import run_historian

    configure_logging(
        config.logging.level, config.logging.format, under_journal="JOURNAL_STREAM" in environ
    )
    asyncio.run(run_historian(config, environ))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return service_main(
        "plantd-historian", __doc__, argv, _serve, principal=lambda args: "service.historian"
    )


if __name__ == "__main__":
    sys.exit(main())
