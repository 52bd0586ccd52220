"""``python -m hil.opcua FILE.yaml``: run the OPC UA simulator until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from hil.opcua._model import load_model
from hil.opcua._server import OpcuaSimulator
from plantd.errors import ConfigError
from plantd.logs import configure_logging


async def _serve(path: Path, endpoint: str | None) -> None:
    simulator = OpcuaSimulator(load_model(path), endpoint=endpoint)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with simulator:
        variables = len(simulator.variables)
        print(f"opcua simulator ready on {simulator.endpoint} ({variables} variables, "
              f"namespace {simulator.namespace_index})", flush=True)  # fmt: skip
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.opcua", description=__doc__)
    parser.add_argument("model", type=Path, help="the simulator's YAML file")
    parser.add_argument("--endpoint", help="override the model's endpoint")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    # On stderr, as before: stdout carries only the "ready" line that bench/opcua.py waits for.
    configure_logging(args.log_level, "text", stream=sys.stderr)
    if args.log_level.lower() == "warning":  # asyncua warns about its own defaults at start
        logging.getLogger("asyncua").setLevel(logging.ERROR)
    try:
        asyncio.run(_serve(args.model, args.endpoint))
    except ConfigError as exc:
        print(f"hil.opcua: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
