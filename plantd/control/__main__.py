"""``plantd-control``: run the alarms, calculated points and control loops until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from plantd._entry import service_main
from plantd.config import PlantdConfig

__all__ = ["main"]


def _serve(config: PlantdConfig, environ: dict[str, str], args: argparse.Namespace) -> int:
    from plantd.control import run_control

    asyncio.run(run_control(config, environ))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return service_main(
        "plantd-control", __doc__, argv, _serve, principal=lambda args: "service.control"
    )


if __name__ == "__main__":
    sys.exit(main())
