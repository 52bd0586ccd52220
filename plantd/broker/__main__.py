"""``plantd-broker``: run the broker and the data bus until SIGTERM."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from plantd.config import PlantdConfig, load_config, resolve_config_dir
from plantd.errors import ConfigError
from plantd.logs import configure_logging

__all__ = ["main", "serve"]


def serve(config: PlantdConfig, environ: dict[str, str]) -> int:
    """Run the broker in the foreground (shared by ``plantd-broker`` and ``plant broker``)."""
    import zmq

    from plantd.broker._server import BrokerServer

    configure_logging(
        config.logging.level, config.logging.format, under_journal="JOURNAL_STREAM" in environ
    )
    server = BrokerServer(config)
    try:
        server.bind()
    except zmq.ZMQError as exc:
        print(f"plantd-broker: {exc}", file=sys.stderr)
        return 1
    server.install_signal_handlers()
    server.run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plantd-broker", description=__doc__)
    parser.add_argument("--config", metavar="DIR", help="configuration directory")
    args = parser.parse_args(argv)
    environ = dict(os.environ)
    try:
        config = load_config(
            resolve_config_dir(Path(args.config) if args.config else None, environ), environ
        )
    except ConfigError as exc:
        print(f"plantd-broker: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    return serve(config, environ)


if __name__ == "__main__":
    sys.exit(main())
