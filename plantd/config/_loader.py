"""Finding the config directory and loading ``plantd.yaml`` from it, once, at the entry point.

Precedence, lowest first: built-in defaults < ``plantd.yaml`` < ``PLANTD_<SECTION>_<KEY>``
environment variables. The environment is passed in; this module never reads ``os.environ``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from plantd.config._env import env_overrides
from plantd.config._location import KeyPath
from plantd.config._model import PlantdConfig
from plantd.config._schema import parse_dataclass
from plantd.config._yaml import read_yaml
from plantd.errors import ConfigError

__all__ = ["CONFIG_FILE", "DEFAULT_CONFIG_DIR", "load_config", "resolve_config_dir"]

DEFAULT_CONFIG_DIR = Path("/etc/plantd")
CONFIG_FILE = "plantd.yaml"

_NO_ENVIRON: Mapping[str, str] = MappingProxyType({})


def resolve_config_dir(
    explicit: Path | None, environ: Mapping[str, str], *, default: Path = DEFAULT_CONFIG_DIR
) -> Path | None:
    """The config directory to use: ``explicit`` (``--config DIR``), else ``$PLANTD_CONFIG``,
    else ``default`` (``/etc/plantd``) if it exists, else None (built-in defaults)."""
    if explicit is not None:
        return explicit
    from_env = environ.get("PLANTD_CONFIG")
    if from_env:
        return Path(from_env)
    return default if default.is_dir() else None


def load_config(config_dir: Path | None, environ: Mapping[str, str] = _NO_ENVIRON) -> PlantdConfig:
    """Load, override and validate the config; :class:`ConfigError` lists every problem.

    ``config_dir`` None means built-in defaults (plus the environment). A directory without
    ``plantd.yaml`` means defaults too; a directory that does not exist is an error, since
    somebody asked for it. Relative paths in the file resolve against the directory.
    """
    problems: list[str] = []
    data: object = None
    lines: Mapping[KeyPath, int] = {}
    source = "built-in defaults"
    if config_dir is not None:
        config_dir = config_dir.absolute()
        if not config_dir.is_dir():
            what = (
                "not a directory (given as the config directory)"
                if config_dir.exists()
                else "config directory does not exist"
            )
            raise ConfigError([f"{config_dir}: {what}"])
        file = config_dir / CONFIG_FILE
        if file.exists() or file.is_symlink():
            source = str(file)
            try:
                document = read_yaml(file)
            except ConfigError as exc:
                problems.extend(exc.problems)
            else:
                data, lines = document.data, document.lines
                problems.extend(document.problems)
    overrides = env_overrides(PlantdConfig, environ)
    try:
        config = parse_dataclass(
            PlantdConfig,
            overrides.apply(data),
            source=source,
            lines=lines,
            text_sources=overrides.sources,
            base_dir=config_dir,
        )
    except ConfigError as exc:
        problems.extend(exc.problems)
    problems.extend(overrides.problems)
    if problems:
        raise ConfigError(problems)
    return dataclasses.replace(config, source_dir=config_dir)
