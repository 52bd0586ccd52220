"""What changed in ``modules.d/`` and ``sinks.d/`` since the configuration was last applied.

Hot-plug (docs/reload.md) has three doors — the file watch in ``plant up``, the systemd path
unit on the appliance, and ``plant reload`` for both — and one rule for each of them, here:

- A :class:`Snapshot` is what the directories hold: each file's kind (module or sink), name,
  digest (SHA-256 of its bytes: a touch that changes nothing is no change) and, for a module,
  whether it runs on its own (``isolated: true``) or in the module host.
- :func:`plan` compares the snapshot that was applied with the one on disk: what was added,
  changed and removed, by kind. A module that moved between the host and a process of its own
  is removed from one and added to the other.
- :func:`refusals` says which of the new or changed files ``plant config check`` finds wrong,
  with its ``file:line`` problems. A refused file is not applied: the instance that runs keeps
  running as it was (a file that was never applied is simply not started).

The applied snapshot is kept as JSON (:func:`Snapshot.save`, :func:`Snapshot.load`) in
``<paths.run>/applied-config.json`` by whoever applies it, so that ``plant reload`` can say
what it is about to change.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

__all__ = [
    "APPLIED_FILE",
    "Entry",
    "Plan",
    "Snapshot",
    "plan",
    "refusals",
    "snapshot",
]

APPLIED_FILE = "applied-config.json"  # in paths.run
Kind = Literal["module", "sink"]
_DIRECTORIES: tuple[tuple[Kind, str], ...] = (("module", "modules.d"), ("sink", "sinks.d"))
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*", re.ASCII)


@dataclass(frozen=True)
class Entry:
    """One file of ``modules.d/`` or ``sinks.d/`` as it is on disk."""

    kind: Kind
    name: str
    path: Path
    digest: str
    isolated: bool = False  # a module with ``isolated: true`` (always False for a sink)

    @property
    def where(self) -> str:
        """Who runs it: ``host`` (the module host), ``module`` (a process of its own), ``sink``."""
        if self.kind == "sink":
            return "sink"
        return "module" if self.isolated else "host"


@dataclass
class Snapshot:
    """Every file of the two directories, by (kind, name)."""

    entries: dict[tuple[Kind, str], Entry] = field(default_factory=dict)

    def of(self, where: str) -> dict[str, Entry]:
        """The entries run by ``where`` (``host``, ``module`` or ``sink``), by name."""
        return {e.name: e for e in self.entries.values() if e.where == where}

    def save(self, path: Path) -> None:
        """Write it as JSON, atomically (a reader never sees half a file)."""
        rows = [
            {
                "kind": e.kind,
                "name": e.name,
                "path": str(e.path),
                "digest": e.digest,
                "isolated": e.isolated,
            }
            for e in self.entries.values()
        ]
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f".{path.name}.{os.getpid()}")
        scratch.write_text(json.dumps({"files": rows}, indent=1) + "\n", encoding="utf-8")
        os.replace(scratch, path)

    @classmethod
    def load(cls, path: Path) -> Snapshot | None:
        """The snapshot saved at ``path``, or None if there is none (or it cannot be read)."""
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))["files"]
            entries = [
                Entry(r["kind"], r["name"], Path(r["path"]), r["digest"], bool(r["isolated"]))
                for r in rows
            ]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return cls({(e.kind, e.name): e for e in entries})


def snapshot(config_dir: Path) -> Snapshot:
    """The files of ``config_dir``'s ``modules.d/`` and ``sinks.d/`` now. Hidden files (editor
    backups and locks) and names that are not valid (letters, digits, ``-``, ``_``) are left
    out, as every process that reads these directories leaves them out."""
    entries: dict[tuple[Kind, str], Entry] = {}
    for kind, directory in _DIRECTORIES:
        for path in sorted((config_dir / directory).glob("*.yaml")):
            if path.name.startswith(".") or not _NAME.fullmatch(path.stem):
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue  # removed while we looked: the next look sees it gone
            isolated = kind == "module" and _says_isolated(data)
            entries[(kind, path.stem)] = Entry(
                kind, path.stem, path, hashlib.sha256(data).hexdigest(), isolated
            )
    return Snapshot(entries)


@functools.lru_cache(maxsize=256)
def _says_isolated(data: bytes) -> bool:
    """Whether a module file says ``isolated: true`` (a file that cannot be read says no: the
    module host is where a broken file is reported). Cached by content: ``plant up`` takes a
    snapshot every 0.5 s, and an unchanged file need not be parsed again."""
    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError:
        return False
    return isinstance(document, dict) and document.get("isolated") is True


@dataclass
class Plan:
    """What applying ``new`` over ``old`` does, by who runs it (``host``, ``module``,
    ``sink``): names added, changed (a new digest) and removed."""

    added: dict[str, list[str]] = field(default_factory=dict)
    changed: dict[str, list[str]] = field(default_factory=dict)
    removed: dict[str, list[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(self.added.values()) or any(self.changed.values()) or any(self.removed.values())

    def touches(self, where: str) -> bool:
        return bool(self.added.get(where) or self.changed.get(where) or self.removed.get(where))

    def describe(self) -> list[str]:
        """One line per change, e.g. ``module boiler: changed (module host)``."""
        labels = {"host": "module host", "module": "own process", "sink": "sink"}
        lines = []
        for verb, names_by in (
            ("added", self.added),
            ("changed", self.changed),
            ("removed", self.removed),
        ):
            for where, names in names_by.items():
                kind = "sink" if where == "sink" else "module"
                lines += [f"{kind} {name}: {verb} ({labels[where]})" for name in names]
        return lines


def plan(old: Snapshot, new: Snapshot) -> Plan:
    """What changed from ``old`` (applied) to ``new`` (on disk)."""
    result = Plan()
    for where in ("host", "module", "sink"):
        before, after = old.of(where), new.of(where)
        result.added[where] = sorted(after.keys() - before.keys())
        result.removed[where] = sorted(before.keys() - after.keys())
        result.changed[where] = sorted(
            name
            for name in after.keys() & before.keys()
            if after[name].digest != before[name].digest
        )
    return result


def refusals(problems: Iterable[str], candidates: Iterable[Entry]) -> Mapping[str, list[str]]:
    """The ``problems`` of ``plant config check`` that name one of ``candidates`` (the files
    about to be applied), by file path. A problem that names no file (plantd.yaml, say) is
    not a reason to refuse a module or sink file."""
    found: dict[str, list[str]] = {}
    paths = {str(entry.path): entry for entry in candidates}
    for problem in problems:
        for path, entry in paths.items():
            if problem.startswith(path) or _names_relative(problem, entry):
                found.setdefault(path, []).append(problem)
                break
    return found


def _names_relative(problem: str, entry: Entry) -> bool:
    relative = f"{entry.path.parent.name}/{entry.path.name}"
    return problem.startswith(relative + ":") or problem.startswith(relative + " ")
