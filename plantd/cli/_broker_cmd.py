"""``plant broker``: run the broker; ``plant serve echo``: run a built-in service worker."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from plantd.cli._common import OUTPUT_OPTIONS, cli_config, serve_as, setup_logging

__all__ = ["register"]

_SERVABLE = ("echo",)


def register(sub: Any) -> None:
    broker = sub.add_parser(
        "broker", parents=[OUTPUT_OPTIONS], help="run the MDP broker and the data bus (foreground)"
    )
    broker.set_defaults(run=_run_broker)

    serve = sub.add_parser(
        "serve", parents=[OUTPUT_OPTIONS], help="run a built-in service worker (foreground)"
    )
    serve.add_argument("service", choices=_SERVABLE, help="which service")
    serve.add_argument(
        "--instances", type=int, default=1, metavar="N", help="workers to run (default 1)"
    )
    serve.set_defaults(run=_run_serve)


def _run_broker(args: argparse.Namespace) -> int:
    from plantd.broker.__main__ import serve

    return serve(cli_config(args), args.environ)


def _run_serve(args: argparse.Namespace) -> int:
    from plantd.runtime import run_until_signal
    from plantd.service import ServiceWorker
    from plantd.service.echo import ECHO

    config = cli_config(args)
    setup_logging(args, config)
    serve_as(config, "service.echo")
    workers = [ServiceWorker(ECHO, config) for _ in range(max(1, args.instances))]
    asyncio.run(
        run_until_signal(
            workers, environ=args.environ, description=f"{len(workers)} Echo worker(s)"
        )
    )
    return 0
