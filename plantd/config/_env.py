"""Environment overrides: ``PLANTD_<SECTION>_<KEY>=text`` sets ``<section>.<key>``.

The names come from the schema, not from a list kept by hand: every leaf field of the config
dataclass (``broker.heartbeat_interval``) has the variable ``PLANTD_BROKER_HEARTBEAT_INTERVAL``.
A ``PLANTD_`` variable that names no setting is a problem (a typo would otherwise be ignored in
silence), except the few that mean something else (``PLANTD_CONFIG``, the config directory).

The environment is passed in as a mapping; nothing here reads ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plantd.config._location import KeyPath
from plantd.config._markers import is_internal
from plantd.config._schema import closest

__all__ = [
    "ENV_PREFIX",
    "NOT_OVERRIDES",
    "EnvOverrides",
    "env_override_names",
    "env_overrides",
    "env_var",
]

ENV_PREFIX = "PLANTD_"
NOT_OVERRIDES = frozenset({"PLANTD_CONFIG"})
"""``PLANTD_`` variables that are not settings."""


@dataclass(frozen=True, slots=True)
class EnvOverrides:
    """What the environment asks for: ``values`` (path -> text), the variable behind each path
    (``sources``, path -> ``"environment PLANTD_…"``) and the ``problems`` found."""

    values: Mapping[KeyPath, str]
    sources: Mapping[KeyPath, str]
    problems: tuple[str, ...]

    def apply(self, data: object) -> object:
        """``data`` (a YAML document's data) with the overrides written into it.

        A section that is in the file but is not a mapping is left alone: the file's problem
        gets reported, and that override waits until it is fixed.
        """
        if not self.values:
            return data
        if data is None:
            data = {}
        if not isinstance(data, dict):
            return data
        merged: dict[Any, Any] = dict(data)
        for path, text in self.values.items():
            node = merged
            for part in path[:-1]:
                child = node.get(part, {})
                if child is None:
                    child = {}
                if not isinstance(child, dict):
                    break
                node[part] = child = dict(child)
                node = child
            else:
                node[path[-1]] = text
        return merged


def env_var(path: KeyPath, prefix: str = ENV_PREFIX) -> str:
    """``("broker", "heartbeat_interval")`` -> ``"PLANTD_BROKER_HEARTBEAT_INTERVAL"``."""
    return prefix + "_".join(str(part) for part in path).upper()


def env_override_names(environ: Mapping[str, str], *, prefix: str = ENV_PREFIX) -> list[str]:
    """The variables in ``environ`` that are meant as overrides (valid or not), sorted."""
    return sorted(name for name in environ if name.startswith(prefix) and name not in NOT_OVERRIDES)


def env_overrides(
    cls: type, environ: Mapping[str, str], *, prefix: str = ENV_PREFIX
) -> EnvOverrides:
    """The overrides in ``environ`` for the settings of dataclass ``cls``."""
    by_name = _settings(cls, prefix)
    values: dict[KeyPath, str] = {}
    sources: dict[KeyPath, str] = {}
    problems: list[str] = []
    for name in env_override_names(environ, prefix=prefix):
        path = by_name.get(name)
        if path is None:
            match = closest(name.removeprefix(prefix), [n.removeprefix(prefix) for n in by_name])
            hint = (
                f"did you mean {prefix}{match}?"
                if match
                else f"settings are {prefix}<SECTION>_<KEY>, like {prefix}LOGGING_LEVEL"
            )
            problems.append(f"environment {name}: not a plantd setting ({hint})")
            continue
        values[path] = environ[name]
        sources[path] = f"environment {name}"
    return EnvOverrides(values, sources, tuple(problems))


@functools.cache
def _settings(cls: type, prefix: str) -> dict[str, KeyPath]:
    """Variable name -> key path, for every leaf field under ``cls``."""
    return {env_var(path, prefix): path for path in _leaf_paths(cls, ())}


def _leaf_paths(cls: type, path: KeyPath) -> list[KeyPath]:
    hints = typing.get_type_hints(cls)
    paths: list[KeyPath] = []
    for f in dataclasses.fields(cls):
        if is_internal(f) or not f.init:
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            paths.extend(_leaf_paths(typing.cast(type, tp), (*path, f.name)))
        else:
            paths.append((*path, f.name))
    return paths
