"""``python -m hil.serial FILE.yaml LINK``: an instrument on a pseudo-terminal, until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from hil.serial._instrument import load_instrument
from hil.serial._simulator import SerialSimulator
from plantd.errors import ConfigError


async def _serve(model_path: Path, link: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with SerialSimulator(load_instrument(model_path), link):
        print(f"serial simulator ready on {link}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.serial", description=__doc__)
    parser.add_argument("model", type=Path, help="the instrument's YAML file")
    parser.add_argument(
        "link", type=Path, help="where to put the port (a symlink), e.g. /tmp/ttyGAS"
    )
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args.model, args.link))
    except ConfigError as exc:
        print(f"hil.serial: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
