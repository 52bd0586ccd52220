"""Markers that say more about a field than its Python type, written with ``Annotated``.

    heartbeat_interval: Annotated[float, Duration, Gt(0)] = 2.5
    max_message_bytes: Annotated[int, Size, Ge(1)] = 1_048_576
    endpoint: Annotated[str, Check(loopback_endpoint)] = "tcp://127.0.0.1:9797"
    source_dir: Path | None = field(default=None, metadata=INTERNAL)

``Duration`` and ``Size`` change what text is accepted (``"250ms"``, ``"1MiB"``); ``Ge``, ``Gt``
and ``Le`` bound numbers; ``Check`` runs any rule of its own on the parsed value. Rules that
involve several fields go in a ``cross_check`` method on the dataclass (see ``_schema``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["INTERNAL", "Check", "Duration", "Ge", "Gt", "Le", "Size", "is_internal", "number_text"]

_INTERNAL_KEY = "plantd.config.internal"

INTERNAL: Mapping[str, object] = MappingProxyType({_INTERNAL_KEY: True})
"""Field metadata for a field that is not read from config (set by the loader instead)."""


def is_internal(field: Field[Any]) -> bool:
    """True for a field marked with ``metadata=INTERNAL``."""
    return bool(field.metadata.get(_INTERNAL_KEY))


class Duration:
    """Marks a ``float`` of seconds: a number, or text like ``"250ms"``, ``"2.5s"``, ``"1m"``."""


class Size:
    """Marks an ``int`` of bytes: an integer, or text like ``"512KiB"``, ``"1MiB"``, ``"1MB"``."""


def number_text(number: float) -> str:
    """``2`` -> ``"2"``, ``2.5`` -> ``"2.5"``, ``1e6`` -> ``"1000000"``."""
    return str(int(number)) if float(number).is_integer() else repr(number)


@dataclass(frozen=True, slots=True)
class Ge:
    """The value must be ``>= bound``."""

    bound: float

    def accepts(self, value: float) -> bool:
        return value >= self.bound

    def __str__(self) -> str:
        return f">= {number_text(self.bound)}"


@dataclass(frozen=True, slots=True)
class Gt:
    """The value must be ``> bound``."""

    bound: float

    def accepts(self, value: float) -> bool:
        return value > self.bound

    def __str__(self) -> str:
        return f"> {number_text(self.bound)}"


@dataclass(frozen=True, slots=True)
class Le:
    """The value must be ``<= bound``."""

    bound: float

    def accepts(self, value: float) -> bool:
        return value <= self.bound

    def __str__(self) -> str:
        return f"<= {number_text(self.bound)}"


@dataclass(frozen=True, slots=True)
class Check:
    """A rule of its own: ``rule(value)`` returns None if fine, else the whole problem message.

    The message should say what was found and what was expected, e.g.
    ``"expected tcp://HOST:PORT, got 'tcp://x'"``.
    """

    rule: Callable[[Any], str | None]
