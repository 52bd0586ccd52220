"""The ``plant`` command line, and the kit its commands are written with.

Each subcommand lives in its own module with a ``register(subparsers)`` function that adds its
parser and sets ``run=`` to a function ``(args) -> int``; :data:`_BUILTIN` names the module of
each built-in command, so that ``plant`` imports only the one it runs. Drivers and the HIL rig
add their own commands (``plant modbus``, ``plant sim``, ``plant hil``) through the
``plantd.cli`` entry-point group, whose entries are such ``register`` functions — the same
door for built-in and third-party commands. Human output by default, ``--json`` for scripts.
This module is the process entry point: it reads the environment (into ``args.environ``),
loads the config once and configures logging once; nothing below it reads ``os.environ``.

A command module outside this package uses only what is exported here::

    from plantd.cli import OUTPUT_OPTIONS, Subcommands, cli_config, emit

    def register(sub: Subcommands) -> None:          # [project.entry-points."plantd.cli"]
        show = sub.add_parser("thing", parents=[OUTPUT_OPTIONS], help="show the thing")
        show.set_defaults(run=run_show)

    def run_show(args: argparse.Namespace) -> int:
        config = cli_config(args)                    # --config, $PLANTD_CONFIG, defaults
        emit(args, {"endpoint": config.broker.endpoint}, config.broker.endpoint)
        return 0

A PlantdError raised by ``run`` becomes a message and an exit status (:func:`exit_status`;
ConfigError and SecurityError: :data:`CONFIG_ERROR`).
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
import threading
from collections.abc import Sequence
from importlib import import_module
from importlib.metadata import entry_points

from plantd import __version__
from plantd._entry import CONFIG_ERROR
from plantd._parent import follow_parent
from plantd.cli._common import (
    NO_BROKER,
    NO_WORKER,
    OUTPUT_OPTIONS,
    Subcommands,
    add_client_options,
    cli_config,
    client_for,
    emit,
    exit_status,
    serve_as,
    setup_logging,
)
from plantd.errors import ConfigError, PlantdError, SecurityError

__all__ = [
    "CONFIG_ERROR",
    "NO_BROKER",
    "NO_WORKER",
    "OUTPUT_OPTIONS",
    "Subcommands",
    "add_client_options",
    "build_parser",
    "cli_config",
    "client_for",
    "emit",
    "exit_status",
    "main",
    "serve_as",
    "setup_logging",
]

# The built-in commands: the module that registers each top-level name. `plant` imports only
# the one named on its command line (each pulls in its own client, store or server code, and
# on a Raspberry Pi every import shows in how long `plant` takes to answer), and every one of
# them, with the entry points', for help or a name it does not know.
_BUILTIN: dict[str, str] = {
    "up": "_up_cmd",
    "reload": "_reload_cmd",
    "broker": "_broker_cmd",
    "serve": "_broker_cmd",
    "call": "_call_cmd",
    "echo": "_call_cmd",
    "mmi": "_mmi_cmd",
    "module": "_module_cmd",
    "state": "_state_cmd",
    "bus": "_bus_cmd",
    "historian": "_historian_cmd",
    "history": "_historian_cmd",
    "alarms": "_alarms_cmd",
    "control": "_control_cmd",
    "sink": "_sink_cmd",
    "config": "_config_cmd",
    "keys": "_keys_cmd",
    "proxy": "_proxy_cmd",
    "audit": "_audit_cmd",
    "health": "_health_cmd",
    "logs": "_logs_cmd",
    "system": "_system_cmd",
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``plant`` parser: the built-in commands, then every ``plantd.cli`` entry point's.
    Given the command line, only the command it names, where that is a built-in one."""
    parser = argparse.ArgumentParser(
        prog="plant", description="Control and inspect a plantd appliance."
    )
    parser.add_argument("--version", action="version", version=f"plant {__version__}")
    _add_global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    command = None if argv is None else _command_named(argv)
    if command in _BUILTIN:
        import_module(f"plantd.cli.{_BUILTIN[command]}").register(sub)
        return parser
    for module in dict.fromkeys(_BUILTIN.values()):  # each once, in the table's order
        import_module(f"plantd.cli.{module}").register(sub)
    for entry in entry_points(group="plantd.cli"):
        try:
            entry.load()(sub)
        except ImportError:
            continue  # the driver's extra is not installed: its commands are simply absent
    return parser


def _add_global_options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """Add the options that may come before any command; their actions."""
    return [
        parser.add_argument(
            "--config",
            metavar="DIR",
            help="configuration directory (default: $PLANTD_CONFIG, else /etc/plantd if "
            "present, else built-in defaults)",
        ),
        parser.add_argument("--json", action="store_true", help="machine-readable JSON output"),
        parser.add_argument(
            "--identity",
            metavar="FILE",
            help="your secret key file (default: $PLANTD_IDENTITY, security.identity, "
            "~/.config/plantd/identity.key_secret, then the secrets directory's user.LOGIN key)",
        ),
        parser.add_argument("--log-level", default=None, help="override logging.level"),
    ]


def _command_named(argv: Sequence[str]) -> str | None:
    """The command word of a ``plant`` command line, or None where that is not certain (an
    option argparse would take as an abbreviation, ``--help``, no command): then every command
    is loaded and argparse decides, as it always did."""
    # Which global options take a value, read from the options themselves (argparse has no
    # public way to ask a whole parser), so that a new one cannot be missed here.
    options = _add_global_options(argparse.ArgumentParser(add_help=False))
    flags = {name for option in options if option.nargs == 0 for name in option.option_strings}
    valued = {name for option in options if option.nargs != 0 for name in option.option_strings}
    words = iter(argv)
    for word in words:
        if word in valued:
            next(words, None)
        elif word in flags or word.split("=", 1)[0] in valued:
            continue
        elif word.startswith("-"):
            return None
        else:
            return word
    return None


def _answer_interrupts() -> None:
    """Let SIGINT interrupt a command even if it started with SIGINT ignored.

    A non-interactive shell starts background jobs (``plant logs -f > log &``, a CI
    runner's steps) with SIGINT ignored, and Python then installs no KeyboardInterrupt.
    A command that runs until it is interrupted (``logs -f``, ``bus tail``, ``audit
    follow``) would then outlive ``kill -INT``.
    """
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: Sequence[str] | None = None) -> int:
    """``plant``: run one command, map plantd's errors to a message and an exit status."""
    follow_parent()  # a child of `plant up` (the module host, a sink, a simulator…)
    _answer_interrupts()
    try:
        code = _run(argv)
        sys.stdout.flush()  # a reader gone shows here, not as a traceback at interpreter exit
    except BaseException as exc:
        if not (_is_broken_pipe(exc) and _stdout_closed()):
            raise
        return _quiet_after_broken_pipe()
    return code


def _is_broken_pipe(exc: BaseException) -> bool:
    """A BrokenPipeError, or a group of them (raised out of an asyncio TaskGroup)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_broken_pipe(inner) for inner in exc.exceptions)
    return isinstance(exc, BrokenPipeError)


def _stdout_closed() -> bool:
    """True if nobody reads our stdout any more (the pipe's reader closed it): only then is a
    BrokenPipeError the reader's doing (``plant … | head``), not a peer's on some socket."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)  # POLLERR is reported whatever is asked
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def _quiet_after_broken_pipe() -> int:
    """The Python docs' recipe for SIGPIPE: stdout goes to /dev/null (Python flushes it again
    at exit and would complain), and the exit status is a shell's for a process SIGPIPE ended."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def _run(argv: Sequence[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    args.environ = dict(os.environ)
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        # Exit 2 as the plantd-* services do: systemd does not restart a module whose file is
        # wrong (RestartPreventExitStatus=2) until someone fixes it.
        print(f"plant: invalid configuration:\n{exc}", file=sys.stderr)
        return CONFIG_ERROR
    except SecurityError as exc:  # a missing key: retrying will not make one either
        print(f"plant: {exc}", file=sys.stderr)
        return CONFIG_ERROR
    except PlantdError as exc:
        print(f"plant: error: {exc}", file=sys.stderr)
        return exit_status(exc)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
