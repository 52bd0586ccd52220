"""Where a value came from: key paths, and how a problem names its place.

A *key path* is the chain of mapping keys (``str``) and list indices (``int``) from the top of a
document to a value: ``("broker", "heartbeat_interval")`` or ``("points", 3, "address")``. It
is shown dotted, ``broker.heartbeat_interval`` and ``points[3].address``.

Every problem is one line that starts with its place: the file and line
(``/etc/plantd/plantd.yaml:7``), or the environment variable the value came from
(``environment PLANTD_BROKER_HEARTBEAT_LIVENESS``), then the dotted key path, then what was found
and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["KeyPath", "Locator", "dotted"]

KeyPath = tuple[str | int, ...]


def dotted(path: KeyPath) -> str:
    """``("points", 3, "address")`` -> ``"points[3].address"``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


@dataclass(frozen=True, slots=True)
class Locator:
    """Turns (key path, message) into a problem line that says where.

    ``lines`` maps key paths to 1-based line numbers in ``source``; a path without a line of its
    own (a missing key, say) takes the line of its nearest ancestor. ``text_sources`` names the
    values that came from somewhere other than ``source`` (environment variables), by path.
    """

    source: str
    lines: Mapping[KeyPath, int] = field(default_factory=dict)
    text_sources: Mapping[KeyPath, str] = field(default_factory=dict)

    def problem(self, path: KeyPath, message: str) -> str:
        """``"FILE:LINE: a.b.c: message"`` (or the variable the value came from)."""
        where = self.text_sources.get(path) or self._position(path)
        return f"{where}: {dotted(path)}: {message}" if path else f"{where}: {message}"

    def _position(self, path: KeyPath) -> str:
        for length in range(len(path), -1, -1):
            line = self.lines.get(path[:length])
            if line is not None:
                return f"{self.source}:{line}"
        return self.source
