"""Alarms, calculated points and control loops at the edge: the ``plantd-control`` process.

See ``docs/control.md``. (The public surface is filled in as the parts land.)
"""

from __future__ import annotations

__all__: list[str] = []
