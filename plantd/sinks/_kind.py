"""The door for a kind of upstream sink: what a plug-in gives the core, and what the core
lends it back.

A kind is a :class:`SinkKind` published in the ``plantd.sinks`` entry-point group under the
name a sink file's ``type:`` gives (docs/sinks.md, "Writing a sink"). The kinds that come
with plantd come through that group as a third party's would: the core knows no kind by name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from plantd.bus import Sample, SampleValue

if TYPE_CHECKING:
    from plantd.sinks._config import SinkConfig
    from plantd.sinks._queue import DiskQueue
    from plantd.sinks._upstream import Upstream

__all__ = ["Latest", "LatestEvents", "SinkKind", "UpstreamContext", "Write"]

Latest = Callable[[], dict[str, dict[str, Sample]]]
"""The last sample taken of every point, by module then point name."""
LatestEvents = Callable[[], dict[str, dict[str, Any]]]
"""The last event record taken on every event topic, by topic (``event.alarm.<alarm>``)."""
Write = Callable[[str, str, SampleValue], Awaitable[None]]
"""``write(module, point, value)``: the module's ``write`` operation, over the broker."""

SinkConfigT = TypeVar("SinkConfigT", bound="SinkConfig")


@dataclass(frozen=True, slots=True)
class UpstreamContext:
    """What a running sink lends the upstream its kind builds."""

    queue: DiskQueue
    """The sink's disk queue (an upstream may keep a counter in it that outlives restarts)."""
    latest: Latest
    write: Write
    latest_events: LatestEvents = dict
    """The last record taken of every event topic (what a Sparkplug NBIRTH announces)."""


@dataclass(frozen=True, slots=True)
class SinkKind(Generic[SinkConfigT]):
    """A kind of upstream sink, as its ``plantd.sinks`` entry point names it.

    ``config_type`` reads the whole sink file: a frozen, keyword-only subclass of
    :class:`~plantd.sinks.SinkConfig` adding the kind's own section (named as the kind), checked
    with file and line like every plantd config. ``make_upstream`` builds the
    :class:`~plantd.sinks.Upstream` from it when the sink starts; it should import the
    kind's client library there, not at module level, so that ``plant config check``
    works without it. An ImportError it raises is reported with ``install_hint``.
    """

    config_type: type[SinkConfigT]
    make_upstream: Callable[[SinkConfigT, UpstreamContext], Upstream]
    install_hint: str = ""
    """How to install what ``make_upstream`` imports, e.g. ``pip install 'plantd[x]'``."""
