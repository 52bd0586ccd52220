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
    MODULES_DIR,
    check_modules_dir,
    env_override_names,
    load_config,
    resolve_config_dir,
    to_data,
)
from plantd.errors import ConfigError

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
    explicit = Path(args.config) if args.config else None
    config_dir = resolve_config_dir(explicit, args.environ)
    problems: list[str] = []
    try:
        load_config(config_dir, args.environ)
    except ConfigError as exc:
        problems.extend(exc.problems)
    checked: list[str] = []
    if config_dir is not None and config_dir.is_dir():
        config_dir = config_dir.absolute()
        if (config_dir / CONFIG_FILE).exists():
            checked.append(CONFIG_FILE)
        modules, module_problems = check_modules_dir(config_dir)
        checked.extend(f"{MODULES_DIR}/{module.name}" for module in modules)
        problems.extend(module_problems)
        if not module_problems:
            problems.extend(_driver_problems(modules))
        sinks, sink_problems = _check_sinks(config_dir)
        checked.extend(sinks)
        problems.extend(sink_problems)
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


def _driver_problems(modules: list[Path]) -> list[str]:
    """Each module file read with its driver's full schema, as ``plant module run`` reads it."""
    from plantd.module import load_driver, parse_module_file, read_driver_name

    problems: list[str] = []
    for path in modules:
        try:
            driver = load_driver(read_driver_name(path), source=str(path))
            parse_module_file(path, driver.config_type)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems


def _check_sinks(config_dir: Path) -> tuple[list[str], list[str]]:
    """Every ``sinks.d/*.yaml`` read as ``plant sink run`` reads it."""
    from plantd.sinks import SINKS_DIR, load_sink

    directory = config_dir / SINKS_DIR
    if not directory.is_dir():
        return [], []
    try:
        config = load_config(config_dir, {})
    except ConfigError:
        return [], []  # already reported; sinks need a valid plantd.yaml to be read
    checked, problems = [], []
    for path in sorted(directory.glob("*.yaml")):
        if path.name.startswith("."):
            continue
        checked.append(f"{SINKS_DIR}/{path.name}")
        try:
            load_sink(config, path.stem)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return checked, problems


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
