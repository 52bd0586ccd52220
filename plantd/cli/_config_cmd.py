"""``plant config check`` and ``plant config show``: the loader's validation, on demand.

``check`` runs exactly what the services run at startup: ``load_config``, every module file
read with its driver's schema (as ``plant module run`` reads it), and every sink file; it
reports every problem at once. A technician runs it after editing ``/etc/plantd``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from plantd.cli._common import OUTPUT_OPTIONS, cli_config, emit
from plantd.config import (
    CONFIG_FILE,
    env_override_names,
    resolve_config_dir,
    to_data,
)

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "config",
        parents=[OUTPUT_OPTIONS],
        help="check or show the configuration",
        description="Validate or print the configuration (plantd.yaml, modules.d/*.yaml and "
        "PLANTD_<SECTION>_<KEY> environment overrides).",
    )
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        parents=[OUTPUT_OPTIONS],
        help="validate the config directory and the environment; exit 1 on any problem",
    )
    check.set_defaults(run=run_check)
    show = actions.add_parser(
        "show",
        parents=[OUTPUT_OPTIONS],
        help="print the effective configuration (defaults, file and environment)",
    )
    show.set_defaults(run=run_show)


def run_check(args: argparse.Namespace) -> int:
    from plantd.configcheck import check_directory

    explicit = Path(args.config) if args.config else None
    check = check_directory(resolve_config_dir(explicit, args.environ), args.environ)
    config_dir, problems, checked = check.config_dir, check.problems, check.files
    environment = env_override_names(args.environ)
    where = str(config_dir) if config_dir is not None else None
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        if args.json:
            emit(args, {"ok": False, "config_dir": where, "problems": problems}, "")
        return 1
    summary = {"ok": True, "config_dir": where, "files": checked, "environment": environment}
    emit(args, summary, _ok_line(config_dir, checked, environment))
    return 0


def _ok_line(config_dir: Path | None, files: list[str], environment: list[str]) -> str:
    if config_dir is None:
        place, what = "no config directory", ["built-in defaults"]
    else:
        place = str(config_dir)
        what = [*files] if CONFIG_FILE in files else [f"no {CONFIG_FILE} (defaults)", *files]
    what.extend(f"environment {name}" for name in environment)
    return f"config OK: {place}: {', '.join(what)}"


def run_show(args: argparse.Namespace) -> int:
    config = cli_config(args)
    data = to_data(config)
    source = config.source_dir if config.source_dir is not None else "built-in defaults"
    environment = env_override_names(args.environ)
    header = f"# effective configuration: {source}"
    if environment:
        header += f", with {', '.join(environment)}"
    emit(args, data, f"{header}\n{yaml.safe_dump(data, sort_keys=False).rstrip()}")
    return 0
