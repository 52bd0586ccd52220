"""What a running sink takes from its re-read ``sinks.d/NAME.yaml`` on SIGHUP.

Sans-IO: :func:`plan` compares the sink file the sink runs with and the one just read, and
says what to do; :meth:`plantd.sinks.Sink.reload` does it.

- the kind's own section (URL, host, credentials, upstream topics, format, batching…) and
  ``type``: a **new upstream**: the delivery finishes the batch in hand (acknowledged: removed
  from the queue; not: still queued, sent again, as at-least-once allows), closes the old
  connection and connects the new one; the disk queue stays as it is;
- ``topics`` and ``events`` (bus prefixes): a **new subscription**, opened before the old one
  is closed (what both deliver is taken once: the per-topic ``seq`` tells); samples that go by
  in between are a gap, filled from the historian as any other;
- ``queue`` bounds and pace (``max_bytes``, ``max_age``, ``batch_size``, ``drain_rate``,
  ``commit_interval``, ``max_pending``), ``repair``, ``reconnect_*``, ``status_interval``:
  applied in place, from the next round of the task that reads them;
- ``queue.path``: needs a restart (the queue in use is kept; a new file would strand it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from plantd.sinks._config import SinkConfig

__all__ = ["SinkReload", "plan"]

_SUBSCRIPTION = ("topics", "events")
_IN_PLACE = ("queue", "repair", "reconnect_initial", "reconnect_max", "status_interval")
_INTERNAL = ("name", "source")
_MISSING = object()


@dataclass(frozen=True)
class SinkReload:
    """What to do: the sink file to run with from now on, and what changed."""

    config: SinkConfig
    applied: list[str] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)
    new_upstream: bool = False
    resubscribe: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.applied)


def plan(old: SinkConfig, new: SinkConfig) -> SinkReload:
    """How to go from ``old`` to ``new`` (both as :func:`~plantd.sinks.load_sink` reads them)."""
    applied: list[str] = []
    restart: list[str] = []
    new_upstream = resubscribe = False
    config = new
    if new.queue.path != old.queue.path:
        restart.append(f"queue.path: {old.queue.path} -> {new.queue.path}")
        config = dataclasses.replace(new, queue=dataclasses.replace(new.queue, path=old.queue.path))
    names = {f.name for f in dataclasses.fields(old)} | {f.name for f in dataclasses.fields(new)}
    for name in sorted(names - set(_INTERNAL)):
        before, after = getattr(old, name, _MISSING), getattr(config, name, _MISSING)
        if before == after:
            continue
        if name in _SUBSCRIPTION:
            resubscribe = True
            applied.append(f"{name}: {_show(before)} -> {_show(after)} (new bus subscription)")
        elif name in _IN_PLACE:
            applied.extend(_section_changes(name, before, after))
        else:  # type, or the kind's own section
            new_upstream = True
            applied.append(f"{name}: changed (new upstream connection)")
    return SinkReload(config, applied, restart, new_upstream, resubscribe)


def _section_changes(name: str, before: Any, after: Any) -> list[str]:
    if not dataclasses.is_dataclass(before) or not dataclasses.is_dataclass(after):
        return [f"{name}: {_show(before)} -> {_show(after)}"]
    return [
        f"{name}.{f.name}: {_show(getattr(before, f.name))} -> {_show(getattr(after, f.name))}"
        for f in dataclasses.fields(after)
        if getattr(before, f.name) != getattr(after, f.name)
    ]


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(none)"
    if isinstance(value, tuple):
        return "[" + ", ".join(repr(item) for item in value) + "]"
    return repr(value)
