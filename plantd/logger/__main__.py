"""``plantd-logger``: keep every process's log records until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from plantd._entry import service_main
from plantd.config import PlantdConfig

__all__ = ["main"]


def _serve(config: PlantdConfig, environ: dict[str, str], args: argparse.Namespace) -> int:
    from plantd.logger import run_logger

    asyncio.run(run_logger(config, environ))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return service_main(
        "plantd-logger", __doc__, argv, _serve, principal=lambda args: "service.logger"
    )


if __name__ == "__main__":
    sys.exit(main())
