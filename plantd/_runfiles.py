"""Files a running process leaves in ``paths.run`` to say where it can be reached
(``broker-endpoints.json``, ``logger-endpoints.json``): written whole or not at all, with the
writer's pid, and removed at exit only by the process that wrote them."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["remove_run_record", "write_run_record"]


def write_run_record(path: Path, fields: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``fields`` and this process's id, atomically (a reader never sees
    half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}")
    aside.write_text(json.dumps({"pid": os.getpid(), **fields}, indent=1) + "\n")
    os.replace(aside, path)


def remove_run_record(path: Path) -> None:
    """Remove ``path`` if this process wrote it (a newer process's file stays)."""
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass  # gone already, or not ours to judge
