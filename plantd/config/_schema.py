"""Plain data (as YAML gives it) -> typed frozen dataclasses, collecting every problem.

Theory of operation: :func:`parse_dataclass` walks the dataclass's fields and the data side by
side. Each field's type says how to read its value; a value that does not fit is recorded as a
problem (with its key path, placed by a :class:`Locator`) and parsing goes on, so one run reports
everything wrong. A dataclass whose fields all parsed is constructed, then asked for its
``cross_check()`` problems (rules that involve several fields). At the end, any problem raises
one :class:`ConfigError`.

Field types understood (combine freely):

- ``bool``, ``int``, ``float``, ``str``, ``pathlib.Path`` (relative paths join ``base_dir``);
- ``Annotated[float, Duration]``, ``Annotated[int, Size]`` and the bounds ``Ge``/``Gt``/``Le``
  and ``Check`` (see ``_markers``);
- ``Literal["a", "b"]``; ``X | None`` (null gives None);
- a nested dataclass (a mapping; absent or null gives all its defaults);
- ``tuple[X, ...]`` or ``list[X]`` (a YAML list); ``Mapping[str, X]`` (read-only) or
  ``dict[str, X]``.

Values listed in ``text_sources`` are text from outside the file (environment variables):
numbers and booleans are parsed from them, and their problems name that source.

A dataclass may define ``cross_check(self) -> Iterable[tuple[KeyPath, str]]`` yielding
``(path relative to the dataclass, message)`` for each broken rule.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from plantd.config._location import KeyPath, Locator
from plantd.config._markers import Check, Ge, Gt, Le, is_internal
from plantd.config._scalars import (
    INVALID,
    Invalid,
    describe,
    noun,
    read_scalar,
    show,
    unwrap,
)
from plantd.errors import ConfigError

__all__ = ["closest", "did_you_mean", "parse_dataclass", "to_data"]

_SCALAR_NAMES = {bool: "true/false", int: "an integer", float: "a number", str: "text"}
_SCALARS = frozenset(_SCALAR_NAMES)

T = TypeVar("T")


def parse_dataclass(
    cls: type[T],
    data: object,
    *,
    source: str,
    lines: Mapping[KeyPath, int] | None = None,
    path: KeyPath = (),
    text_sources: Mapping[KeyPath, str] | None = None,
    base_dir: Path | None = None,
    unknown_keys: Literal["error", "ignore"] = "error",
) -> T:
    """Build ``cls`` from ``data`` found at ``path`` in ``source``, or raise ConfigError.

    ``lines`` maps key paths to line numbers (see ``read_yaml``). ``unknown_keys="ignore"``
    reads part of a document (e.g. a module file's header) without rejecting the rest.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"parse_dataclass needs a dataclass, got {cls!r}")
    parser = _Parser(Locator(source, lines or {}, text_sources or {}), base_dir, unknown_keys)
    result = parser.dataclass(cls, data, path)
    if parser.problems or isinstance(result, Invalid):
        raise ConfigError(parser.problems)
    return typing.cast(T, result)


def to_data(value: object) -> object:
    """The plain-data form of a config value (the inverse of :func:`parse_dataclass`)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_data(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not is_internal(f)
        }
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): to_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_data(item) for item in value]
    return value


def closest(word: str, options: Iterable[str]) -> str | None:
    """The option most like ``word`` (a likely typo of it), or None."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest option, or ``""`` if none is close."""
    match = closest(word, options)
    return f" (did you mean {match!r}?)" if match is not None else ""


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    """(name, annotated type, required) for each field read from config."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return tuple(
        (
            f.name,
            hints[f.name],
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
        if f.init and not is_internal(f)
    )


class _Parser:
    def __init__(
        self, locator: Locator, base_dir: Path | None, unknown_keys: Literal["error", "ignore"]
    ) -> None:
        self.locator = locator
        self.base_dir = base_dir
        self.unknown_keys = unknown_keys
        self.problems: list[str] = []

    def fail(self, path: KeyPath, message: str) -> Invalid:
        self.problems.append(self.locator.problem(path, message))
        return INVALID

    def dataclass(self, cls: type, data: object, path: KeyPath) -> object:
        fields = _fields(cls)
        names = [name for name, _, _ in fields]
        if data is None:
            data = {}
        if not isinstance(data, dict):
            return self.fail(
                path, f"expected a mapping with keys {', '.join(names)}, got {show(data)}"
            )
        for key in data:
            if not isinstance(key, str):
                self.fail((*path, str(key)), f"expected a key name (text), got {show(key)}")
            elif key not in names and self.unknown_keys == "error":
                hint = did_you_mean(key, names) or f" (expected one of: {', '.join(names)})"
                self.fail((*path, key), f"unknown key{hint}")
        before = len(self.problems)
        kwargs: dict[str, object] = {}
        for name, tp, required in fields:
            if name in data:
                kwargs[name] = self.value(tp, data[name], (*path, name))
            elif required:
                self.fail((*path, name), "required key is missing")
        if len(self.problems) > before:
            return INVALID
        try:
            obj = cls(**kwargs)
        except ValueError as exc:  # a __post_init__ that refuses
            return self.fail(path, str(exc))
        cross_check = getattr(obj, "cross_check", None)
        if cross_check is not None:
            for relative, message in cross_check():
                self.fail((*path, *relative), message)
        return INVALID if len(self.problems) > before else obj

    def value(self, tp: Any, value: object, path: KeyPath) -> object:
        tp, marks = unwrap(tp)
        origin = get_origin(tp)
        if origin is Union or origin is types.UnionType:
            options = [arg for arg in get_args(tp) if arg is not type(None)]
            nullable = len(options) < len(get_args(tp))
            if nullable and (value is None or (path in self.locator.text_sources and value == "")):
                return None
            if len(options) > 1:
                return self._scalar_union(tp, options, value, path)
            tp, more = unwrap(options[0])
            marks += more
        parsed = self._convert(tp, marks, value, path)
        if isinstance(parsed, Invalid):
            return parsed
        return self._constrain(tp, marks, value, parsed, path)

    def _scalar_union(self, tp: Any, options: list[Any], value: object, path: KeyPath) -> object:
        """``float | int | bool | str``-style fields: the value keeps the YAML type it has, if
        that type is one of the options (bool is never taken for an int, nor int for bool)."""
        if not all(option in _SCALARS for option in options):
            raise TypeError(f"unsupported field type {tp!r}: unions of scalars or X | None only")
        if type(value) in options:
            return value
        if type(value) is int and float in options:
            return float(value)
        expected = " or ".join(_SCALAR_NAMES[option] for option in options)
        return self.fail(path, f"expected {expected}, got {show(value)}")

    def _constrain(
        self, tp: Any, marks: tuple[object, ...], raw: object, parsed: Any, path: KeyPath
    ) -> object:
        bounds = [mark for mark in marks if isinstance(mark, Ge | Gt | Le)]
        if not all(bound.accepts(parsed) for bound in bounds):
            rule = " and ".join(str(bound) for bound in bounds)
            return self.fail(path, f"expected {noun(tp, marks)} {rule}, got {show(raw)}")
        for mark in marks:
            if isinstance(mark, Check) and (message := mark.rule(parsed)) is not None:
                return self.fail(path, message)
        return parsed

    def _convert(self, tp: Any, marks: tuple[object, ...], value: object, path: KeyPath) -> object:
        origin = get_origin(tp)
        if dataclasses.is_dataclass(tp):
            return self.dataclass(typing.cast(type, tp), value, path)
        if origin is Literal:
            return self._literal(get_args(tp), value, path)
        if origin is tuple or origin is list:
            return self._sequence(tp, value, path)
        if origin is dict or origin is Mapping:
            return self._mapping(tp, value, path)
        text = path in self.locator.text_sources and isinstance(value, str)
        parsed = read_scalar(tp, marks, value, text, self.base_dir)
        if isinstance(parsed, Invalid):
            # YAML read `1`, `yes` or `2024-01-31` as a number, a boolean or a date
            typed = value is not None and not isinstance(value, str | dict | list)
            quote = " (put it in quotes)" if tp is str and typed else ""
            return self.fail(path, f"expected {describe(tp, marks)}, got {show(value)}{quote}")
        return parsed

    def _literal(self, options: tuple[Any, ...], value: object, path: KeyPath) -> object:
        for option in options:
            if type(option) is type(value) and option == value:
                return option
        expected = ", ".join(repr(option) for option in options)
        hint = ""
        if isinstance(value, str):
            hint = did_you_mean(value.lower(), [o for o in options if isinstance(o, str)])
        return self.fail(path, f"expected one of {expected}, got {show(value)}{hint}")

    def _sequence(self, tp: Any, value: object, path: KeyPath) -> object:
        args = get_args(tp)
        if get_origin(tp) is tuple and (len(args) != 2 or args[1] is not Ellipsis):
            raise TypeError(f"unsupported field type {tp!r}: use tuple[X, ...]")
        if not isinstance(value, list):
            return self.fail(path, f"expected a list, got {show(value)}")
        items = [self.value(args[0], item, (*path, index)) for index, item in enumerate(value)]
        if any(isinstance(item, Invalid) for item in items):
            return INVALID
        return tuple(items) if get_origin(tp) is tuple else items

    def _mapping(self, tp: Any, value: object, path: KeyPath) -> object:
        key_type, item_type = get_args(tp)
        if key_type is not str:
            raise TypeError(f"unsupported field type {tp!r}: mapping keys must be str")
        if not isinstance(value, dict):
            return self.fail(path, f"expected a mapping, got {show(value)}")
        result: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                self.fail((*path, str(key)), f"expected a key name (text), got {show(key)}")
                continue
            result[key] = self.value(item_type, item, (*path, key))
        if len(result) < len(value) or any(isinstance(v, Invalid) for v in result.values()):
            return INVALID
        return result if get_origin(tp) is dict else types.MappingProxyType(result)
