"""The command kit (``plantd.cli``) is public and pinned, and the commands outside the core
(the drivers', the HIL rig's) come in through the ``plantd.cli`` entry-point group."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
from importlib.metadata import entry_points

import pytest

import plantd.cli

KIT = [
    "CONFIG_ERROR", "NO_BROKER", "NO_WORKER", "OUTPUT_OPTIONS", "Subcommands",
    "add_client_options", "build_parser", "cli_config", "client_for", "emit", "exit_status",
    "main", "serve_as", "setup_logging",
]  # fmt: skip


def test_exports_are_pinned() -> None:
    assert sorted(plantd.cli.__all__) == sorted(KIT)


@pytest.mark.parametrize("name", [n for n in KIT if callable(getattr(plantd.cli, n))])
def test_every_function_is_documented(name: str) -> None:
    assert inspect.getdoc(getattr(plantd.cli, name))


def test_exit_statuses_tell_errors_apart() -> None:
    assert len({0, 1, plantd.cli.CONFIG_ERROR, plantd.cli.NO_BROKER, plantd.cli.NO_WORKER}) == 5


def test_a_command_written_with_the_kit(capsys: pytest.CaptureFixture[str]) -> None:
    """What a third-party command does: register under a Subcommands, parse, run, emit."""

    def run(args: argparse.Namespace) -> int:
        plantd.cli.emit(args, {"count": args.count}, f"{args.count} things")
        return 0

    def register(sub: plantd.cli.Subcommands) -> None:
        thing = sub.add_parser("thing", parents=[plantd.cli.OUTPUT_OPTIONS])
        thing.add_argument("count", type=int)
        plantd.cli.add_client_options(thing)
        thing.set_defaults(run=run)

    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    sub = parser.add_subparsers(required=True)
    assert isinstance(sub, plantd.cli.Subcommands)
    register(sub)
    human = parser.parse_args(["thing", "3"])
    assert (human.timeout, human.retries) == (None, None)
    assert human.run(human) == 0
    scripted = parser.parse_args(["thing", "4", "--json", "--timeout", "0.5"])
    assert scripted.timeout == 0.5
    assert scripted.run(scripted) == 0
    human_out, json_out = capsys.readouterr().out.split("\n", 1)
    assert human_out == "3 things"
    assert json.loads(json_out) == {"count": 4}


def test_the_rig_and_the_drivers_enter_through_the_entry_point_group() -> None:
    registered = {entry.name: entry.value for entry in entry_points(group="plantd.cli")}
    assert registered["sim"] == "hil.cli._sim:register"
    assert registered["hil"] == "hil.cli._scenario:register"
    assert registered["modbus"] == "plantd_drivers.modbus._cli:register"
    commands = plantd.cli.build_parser()._subparsers
    assert commands is not None
    (action,) = [a for a in commands._group_actions if isinstance(a, plantd.cli.Subcommands)]
    assert {"sim", "hil", "modbus", "opcua", "up", "config"} <= set(action.choices)


def registered_commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    commands = parser._subparsers
    assert commands is not None
    (action,) = [a for a in commands._group_actions if isinstance(a, plantd.cli.Subcommands)]
    return dict(action.choices)


def test_a_built_in_command_loads_alone_and_parses_as_with_every_command() -> None:
    """`plant state get …` builds only the state command's parser (quicker on a Pi), and what
    it parses is what the whole parser parses. The table of built-in names is what their
    modules register: a command added to a module and not to the table is caught here."""
    everything = registered_commands(plantd.cli.build_parser())
    built_in = {name for name in everything if name in plantd.cli._BUILTIN}
    assert set(plantd.cli._BUILTIN) == built_in
    for name in plantd.cli._BUILTIN:
        module = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"plantd.cli.{plantd.cli._BUILTIN[name]}").register(module)
        assert name in module.choices, f"{plantd.cli._BUILTIN[name]} does not register {name}"
    line = ["--config", "/etc/x", "--json", "state", "get", "scope", "key"]
    alone = plantd.cli.build_parser(line)
    assert list(registered_commands(alone)) == ["state"]
    assert vars(alone.parse_args(line)) == vars(plantd.cli.build_parser().parse_args(line))


@pytest.mark.parametrize(
    "line",
    [
        ["--help"],
        [],
        ["--conf", "/etc/x", "mmi", "services"],  # an abbreviation: argparse's to read
        ["--log-level=debug", "sim", "run"],  # not built in: an entry point's
        ["nonsense"],
    ],
)
def test_otherwise_every_command_is_loaded(line: list[str]) -> None:
    commands = registered_commands(plantd.cli.build_parser(line))
    assert {"sim", "hil", "modbus", "up", "state", "system"} <= set(commands)


def test_the_command_word_skips_the_global_options_and_their_values() -> None:
    named = plantd.cli._command_named
    assert named(["--config", "state", "mmi"]) == "mmi"  # a directory called "state"
    assert named(["--identity=/k", "--log-level", "info", "keys", "list"]) == "keys"
    assert named(["--json", "health"]) == "health"
    assert named(["--version"]) is None
