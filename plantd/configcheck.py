"""Checking a whole configuration directory, as the services would read it at startup.

One function for ``plant config check`` and the web app's Config page
(``GET /api/v1/config/check``): ``load_config`` (with the environment given), every module
file read with its driver's full schema (as ``plant module run`` reads it), every sink
file (as ``plant sink run`` reads it), and the alarms, calculations and loops of ``alarms.d/``,
``calc.d/`` and ``control.d/`` (as ``plantd-control`` reads them, each point they name checked
against the modules' points); every problem at once. Here rather than in
``plantd.config`` because it loads drivers and sink kinds, which the config package must not
know about.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from plantd.config import CONFIG_FILE, MODULES_DIR, check_modules_dir, load_config
from plantd.errors import ConfigError

__all__ = ["DirectoryCheck", "check_directory"]


@dataclass
class DirectoryCheck:
    """``files`` checked (relative to the directory) and every ``problem`` found (the
    loader's ``file:line: key: message`` text)."""

    config_dir: Path | None
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_directory(config_dir: Path | None, environ: Mapping[str, str]) -> DirectoryCheck:
    """Everything wrong with ``config_dir`` (None: built-in defaults) and ``environ``'s
    ``PLANTD_*`` overrides."""
    check = DirectoryCheck(config_dir)
    try:
        load_config(config_dir, environ)
    except ConfigError as exc:
        check.problems.extend(exc.problems)
    if config_dir is None or not config_dir.is_dir():
        return check
    config_dir = check.config_dir = config_dir.absolute()
    if (config_dir / CONFIG_FILE).exists():
        check.files.append(CONFIG_FILE)
    modules, module_problems = check_modules_dir(config_dir)
    check.files.extend(f"{MODULES_DIR}/{module.name}" for module in modules)
    check.problems.extend(module_problems)
    points: dict[str, list[str]] | None = None
    if not module_problems:
        driver_problems, points = _driver_problems(modules)
        check.problems.extend(driver_problems)
    sinks, sink_problems = _check_sinks(config_dir)
    check.files.extend(sinks)
    check.problems.extend(sink_problems)
    control_files, control_problems = _check_control(config_dir, points)
    check.files.extend(control_files)
    check.problems.extend(control_problems)
    return check


def _check_control(
    config_dir: Path, points: dict[str, list[str]] | None
) -> tuple[list[str], list[str]]:
    """``calc.d/``, ``alarms.d/`` and ``control.d/`` as ``plantd-control`` reads them, and
    every point they name checked against the modules' points (when those could be read)."""
    from plantd.control import check_plan

    files, problems = check_plan(config_dir, modules=points)
    return [str(path.relative_to(config_dir)) for path in files], problems


def _driver_problems(modules: list[Path]) -> tuple[list[str], dict[str, list[str]] | None]:
    """Each module file read with its driver's full schema, as ``plant module run`` reads it;
    and every module's point names (None if any module could not be read)."""
    from plantd.module import load_driver, parse_module_file, read_driver_name

    problems: list[str] = []
    points: dict[str, list[str]] = {}
    for path in modules:
        try:
            driver = load_driver(read_driver_name(path), source=str(path))
            module = parse_module_file(path, driver.config_type)
            points[path.stem] = [point.name for _, point in module.points()]
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems, (None if problems or not modules else points)


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
