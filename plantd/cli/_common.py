"""Helpers shared by the subcommands: config from the command line, output in two shapes,
a client to the broker, exit statuses. Commands outside this package (the drivers', the HIL
rig's) import them from :mod:`plantd.cli`, which re-exports them; this module is private."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from plantd.client import Client
from plantd.config import PlantdConfig, load_config, resolve_config_dir
from plantd.errors import NoBroker, NoWorker, PlantdError, ServiceError
from plantd.logs import configure_logging
from plantd.security import assume_identity, use_identity, user_identity

__all__ = [
    "NO_BROKER",
    "NO_WORKER",
    "OUTPUT_OPTIONS",
    "Subcommands",
    "add_client_options",
    "cli_config",
    "client_for",
    "emit",
    "exit_status",
    "serve_as",
    "setup_logging",
]

if TYPE_CHECKING:
    Subcommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:  # the class itself: typeshed makes it generic, the runtime does not
    Subcommands = argparse._SubParsersAction

# Exit statuses a script can tell apart (docs/errors.md): 1 is any other error, 2 bad
# configuration or a missing key (plantd._entry.CONFIG_ERROR).
NO_BROKER = 3  # nothing answers at broker.endpoint
NO_WORKER = 4  # the broker is there, nobody serves the service

# Added to every leaf subcommand so `plant mmi workers --json` works as well as
# `plant --json mmi workers` (SUPPRESS keeps the top-level value when it is not repeated).
OUTPUT_OPTIONS = argparse.ArgumentParser(add_help=False)
OUTPUT_OPTIONS.add_argument(
    "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable JSON output"
)


def cli_config(args: argparse.Namespace) -> PlantdConfig:
    """Load the config the command line points at (``--config``, ``$PLANTD_CONFIG``, defaults).

    From then on ``plant`` proves itself with its user's identity (``--identity``, else looked
    up: docs/security.md); commands that run a service switch to the service's with
    :func:`serve_as`.
    """
    config_dir = resolve_config_dir(Path(args.config) if args.config else None, args.environ)
    config = load_config(config_dir, args.environ)
    explicit = getattr(args, "identity", None)
    use_identity(user_identity(config, args.environ, Path(explicit) if explicit else None))
    return config


def serve_as(config: PlantdConfig, principal: str) -> None:
    """This process runs ``principal`` (a module, a sink, a service): use its key, or stop
    with SecurityError saying which key is missing. Call after logging is set up."""
    assume_identity(config, principal)


def setup_logging(args: argparse.Namespace, config: PlantdConfig) -> None:
    """Configure logging once for a command that runs a service: ``--log-level`` if given,
    else ``logging.level``; journald's format when systemd is reading our output."""
    level = args.log_level or config.logging.level
    configure_logging(level, config.logging.format, under_journal="JOURNAL_STREAM" in args.environ)


def emit(args: argparse.Namespace, data: object, human: str) -> None:
    """Print ``data`` as JSON with ``--json``, else the human text."""
    if args.json:
        json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    else:
        print(human)


def exit_status(exc: PlantdError) -> int:
    """The exit status for an error that ends a command (other than configuration)."""
    if isinstance(exc, NoBroker):
        return NO_BROKER
    if isinstance(exc, NoWorker):
        return NO_WORKER
    return 1


def add_client_options(parser: argparse.ArgumentParser, default: object = None) -> None:
    """Add ``--timeout`` and ``--retries`` (read by :func:`client_for`) to a command that calls
    a service. ``default=argparse.SUPPRESS`` on an action's parser keeps a value given before
    the action (``plant alarms --timeout 5 ack X``)."""
    parser.add_argument(
        "--timeout",
        type=float,
        default=default,
        help="seconds per attempt, and for the broker to answer at all (client.timeout)",
    )
    parser.add_argument(
        "--retries", type=int, default=default, help="attempts after a timeout (client.retries)"
    )


def refused(args: argparse.Namespace, exc: ServiceError) -> int:
    """A service's refusal as ``plant alarms``/``plant control`` show it: ``plant: CODE:
    MESSAGE`` on stderr (``--json``: the error object on stdout); exit 1."""
    if args.json:
        emit(args, {"ok": False, "error": {"code": exc.code, "message": exc.message}}, "")
    else:
        print(f"plant: {exc.code}: {exc.message}", file=sys.stderr)
    return 1


def client_for(args: argparse.Namespace) -> Client:
    """A blocking client to the configured broker, with the command line's ``--timeout`` and
    ``--retries`` (see :func:`add_client_options`) over ``client.*`` of the config. It fails at
    once with NoBroker or NoWorker when nobody is there: a person is waiting for the answer.

    Whether a broker is there at all is given 1 s, or the ``--timeout`` a person chose: a
    busy small device (or an emulated one) can take longer than a second to answer, and
    whoever says how long they will wait means it for that question too."""
    config = cli_config(args)
    overrides: dict[str, object] = {}
    if args.timeout is not None:
        overrides["timeout"] = args.timeout
        overrides["presence_timeout"] = args.timeout
    if args.retries is not None:
        overrides["retries"] = args.retries
    return Client.from_config(
        config.broker.endpoint, config.client, check_presence=True, **overrides
    )
