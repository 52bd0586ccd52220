"""What every ``plantd-*`` program does before its service starts: read ``--config``, load and
validate the configuration once, and exit 2 (which systemd's ``RestartPreventExitStatus=2``
does not retry) with every problem named when it is wrong."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from plantd._parent import follow_parent
from plantd.config import PlantdConfig, load_config, resolve_config_dir
from plantd.errors import ConfigError, SecurityError
from plantd.logs import configure_logging
from plantd.security import assume_identity

__all__ = ["CONFIG_ERROR", "service_main"]

CONFIG_ERROR = 2  # exit status for configuration that cannot be used

Serve = Callable[[PlantdConfig, dict[str, str], argparse.Namespace], int]
Principal = Callable[[argparse.Namespace], str | None]


def service_main(
    prog: str,
    description: str | None,
    argv: Sequence[str] | None,
    serve: Serve,
    *,
    principal: Principal = lambda args: None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    telemetry: bool = True,
) -> int:
    """Parse ``--config DIR`` (and the program's own arguments), load the config, configure
    logging, take the process's identity (``principal(args)``; see :mod:`plantd.security`),
    and run ``serve(config, environ, args)``. A ConfigError, from loading or from ``serve``
    while it reads its own files, and a missing or unusable key exit 2.

    While ``serve`` runs, the process reports its log records and metrics on the bus
    (:func:`plantd.telemetry.start_telemetry`) as the principal's source (``service.state``:
    ``state``), else as the program's name without ``plantd-``. ``telemetry=False``: the
    program starts its own (the broker publishes from inside itself)."""
    follow_parent()  # a child of `plant up` stops with it
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", metavar="DIR", help="configuration directory")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    environ = dict(os.environ)
    try:
        config = load_config(
            resolve_config_dir(Path(args.config) if args.config else None, environ), environ
        )
        configure_logging(
            config.logging.level, config.logging.format, under_journal="JOURNAL_STREAM" in environ
        )
        name = principal(args)
        assume_identity(config, name)
        if not telemetry:
            return serve(config, environ, args)
        from plantd.telemetry import source_of, start_telemetry

        source = source_of(name) if name else prog.removeprefix("plantd-")
        with start_telemetry(config, source):
            return serve(config, environ, args)
    except ConfigError as exc:
        print(f"{prog}: invalid configuration:\n{exc}", file=sys.stderr)
        return CONFIG_ERROR
    except SecurityError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return CONFIG_ERROR
