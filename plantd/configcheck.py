"""Checking a whole configuration directory, as the services would read it at startup.

One function for ``plant config check`` and the web app's Config page
(``GET /api/v1/config/check``): ``load_config`` (with the environment given), every module
file read with its driver's full schema (as ``plant module run`` reads it), and every sink
file (as ``plant sink run`` reads it); every problem at once. Here rather than in
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
    if not module_problems:
        check.problems.extend(_driver_problems(modules))
    sinks, sink_problems = _check_sinks(config_dir)
    check.files.extend(sinks)
    check.problems.extend(sink_problems)
    return check


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
