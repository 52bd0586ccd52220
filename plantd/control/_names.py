"""The one rule for the names of calcs, alarms, loops and interlocks.

Each name becomes a bus topic level (``data.calc.NAME``, ``event.alarm.NAME``) and a key in the
services' answers, so it is 1 to 64 ASCII letters, digits, ``_`` and ``-``, starting with a
letter or digit (a leading ``-`` or ``_`` reads like an option or a private name). No dots: a dot
would split the topic level. The config classes use it as ``Check(name_problem)``.
"""

from __future__ import annotations

import re

__all__ = ["NAME_PATTERN", "name_problem"]

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", re.ASCII)
"""Names of calcs, alarms, loops and interlocks (each is a bus topic level)."""


def name_problem(name: str) -> str | None:
    """None for a good name, else what is wrong (for ``Check(name_problem)``)."""
    if NAME_PATTERN.fullmatch(name):
        return None
    return (
        "expected 1 to 64 letters, digits, '_' and '-', starting with a letter or digit, "
        f"got {name!r}"
    )
