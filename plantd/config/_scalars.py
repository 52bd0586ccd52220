"""Reading one scalar value (number, duration, size, text, path) and describing it in messages.

Part of ``_schema``: these helpers return :data:`INVALID` instead of raising, and the parser
writes the problem, so that one bad value does not stop the others from being checked.
"""

from __future__ import annotations

import math
import typing
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from plantd.config._markers import Duration, Size
from plantd.config._units import parse_duration, parse_size

__all__ = ["INVALID", "Invalid", "describe", "noun", "read_scalar", "show", "unwrap"]

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_DURATION_TEXT = 'a duration (seconds, or a string like "2.5s")'
_SIZE_TEXT = 'a size in bytes (an integer, or a string like "512KiB" or "1MB")'


class Invalid:
    """Returned where a value could not be parsed; its problem is already recorded."""


INVALID = Invalid()


def show(value: object) -> str:
    """How a found value appears in a message."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57]) + "..."
    return str(value)


def unwrap(tp: Any) -> tuple[Any, tuple[object, ...]]:
    """``Annotated[X, m1, m2]`` -> ``(X, (m1, m2))``; anything else -> ``(tp, ())``."""
    if get_origin(tp) is Annotated:
        base, *marks = get_args(tp)
        return base, tuple(marks)
    return tp, ()


def read_scalar(
    tp: Any, marks: tuple[object, ...], value: object, text: bool, base_dir: Path | None
) -> object:
    """One scalar of type ``tp``, or INVALID. ``text``: parse numbers/booleans from a str."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if Duration in marks:
        if number:
            seconds = float(typing.cast(float, value))
            return seconds if math.isfinite(seconds) else INVALID
        found = parse_duration(value) if isinstance(value, str) else None
        return INVALID if found is None else found
    if Size in marks:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        size = parse_size(value) if isinstance(value, str) else None
        return INVALID if size is None else size
    if text and tp in (bool, int, float):
        return _from_text(tp, typing.cast(str, value))
    if tp is bool:
        return value if isinstance(value, bool) else INVALID
    if tp is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else INVALID
    if tp is float:
        ok = number and math.isfinite(typing.cast(float, value))
        return float(typing.cast(float, value)) if ok else INVALID
    if tp is str:
        return value if isinstance(value, str) else INVALID
    if tp is Path:
        if not isinstance(value, str) or not value:
            return INVALID
        path = Path(value)
        return base_dir / path if base_dir is not None and not path.is_absolute() else path
    raise TypeError(f"unsupported field type {tp!r}")


def _from_text(tp: type, text: str) -> object:
    word = text.strip().lower()
    if tp is bool:
        return True if word in _TRUE else False if word in _FALSE else INVALID
    try:
        number = int(word) if tp is int else float(word)
    except ValueError:
        return INVALID
    return number if math.isfinite(number) else INVALID


def noun(tp: Any, marks: tuple[object, ...]) -> str:
    """The short name, put before a bound: "expected *an integer* >= 2"."""
    if Duration in marks:
        return "a duration"
    if Size in marks:
        return "a size"
    return {int: "an integer", float: "a number"}.get(tp, "a value")


def describe(tp: Any, marks: tuple[object, ...]) -> str:
    """The full description, for a value of the wrong kind: "expected *a number*, got 'x'"."""
    if Duration in marks:
        return _DURATION_TEXT
    if Size in marks:
        return _SIZE_TEXT
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(tp, "a path" if tp is Path else repr(tp))
