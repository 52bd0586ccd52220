"""YAML in, plain data out, with the line of every key path remembered.

PyYAML's ``safe_load`` forgets where things were. Here the document is composed into nodes
first (nodes carry marks), walked once to record the line of each mapping key and list item, and
only then constructed into plain Python data with the safe constructor. Errors downstream can
then say ``plantd.yaml:7`` instead of just ``broker.heartbeat_interval``.

The walk also catches duplicate keys, which PyYAML accepts silently (the last one wins): a
technician who writes ``endpoint`` twice most likely edited the wrong one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from plantd.config._location import KeyPath, Locator
from plantd.errors import ConfigError

__all__ = ["YamlDocument", "parse_yaml", "read_yaml"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """The safe loader, plus floats like ``1e-3`` and ``2E6``.

    YAML 1.1 (PyYAML) wants a dot in a float, so ``scale: 1e-3`` would load as the string
    ``"1e-3"``; YAML 1.2 and everybody else read it as a number.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """One parsed YAML document.

    ``data`` is ``None`` for an empty document. ``lines`` maps each key path to the 1-based line
    of its key (or list item); the root is at path ``()``. ``problems`` lists what loaded but is
    still wrong (duplicate keys); syntax errors raise instead, as there is no document then.
    """

    source: str
    data: object
    lines: Mapping[KeyPath, int]
    problems: tuple[str, ...] = ()


def read_yaml(path: Path) -> YamlDocument:
    """Read and parse one YAML file; :class:`ConfigError` if unreadable or not YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from exc
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    return parse_yaml(text, source=str(path))


def parse_yaml(text: str, *, source: str) -> YamlDocument:
    """Parse ``text`` (named ``source`` in problems); :class:`ConfigError` on a syntax error."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(source, None, {})
        walk = _Walk(loader, Locator(source))
        walk.lines[()] = node.start_mark.line + 1
        walk.node(node, ())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_syntax_problem(source, exc)]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: invalid YAML: {exc}"]) from exc
    finally:
        loader.dispose()
    return YamlDocument(source, data, walk.lines, tuple(walk.problems))


class _Walk:
    """Records key lines and duplicate keys, visiting each node once (aliases are shared)."""

    def __init__(self, loader: _Loader, locator: Locator) -> None:
        self.loader = loader
        self.locator = locator
        self.lines: dict[KeyPath, int] = {}
        self.problems: list[str] = []
        self._visited: set[int] = set()

    def node(self, node: Node, path: KeyPath) -> None:
        if id(node) in self._visited:
            return
        self._visited.add(id(node))
        if isinstance(node, MappingNode):
            self._mapping(node, path)
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                self.lines[(*path, index)] = item.start_mark.line + 1
                self.node(item, (*path, index))

    def _mapping(self, node: MappingNode, path: KeyPath) -> None:
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # `<<: *base` merges keys that live elsewhere in the file
            key = self.loader.construct_object(key_node)
            part = key if isinstance(key, str) else str(key)
            line = key_node.start_mark.line + 1
            child = (*path, part)
            if part in first_line:
                self.problems.append(
                    Locator(self.locator.source, {child: line}).problem(
                        child, f"duplicate key (first at line {first_line[part]})"
                    )
                )
            else:
                first_line[part] = line
            self.lines[child] = line  # the last occurrence wins, as in the data
            self.node(value_node, child)


def _syntax_problem(source: str, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
    what = exc.problem or exc.context or "not valid YAML"
    if exc.problem and exc.context:
        context_mark = exc.context_mark
        at = f" at line {context_mark.line + 1}" if context_mark is not None else ""
        what += f" ({exc.context}{at})"
    return f"{where}: invalid YAML: {what}"
