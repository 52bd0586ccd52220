"""A third party's sink kind, written as one would outside plantd: ``type: memo`` keeps what it
is given in memory. It uses only ``plantd.sinks``'s public names and enters through a
``plantd.sinks`` entry point of a distribution of its own (:func:`install`), never through an
edit of the core."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pytest

from plantd.config import Ge
from plantd.sinks import Outgoing, SinkConfig, SinkKind, Upstream, UpstreamContext

MODULE = __name__


@dataclass(frozen=True, kw_only=True)
class MemoConfig:
    """The ``memo:`` section."""

    label: str = "memo"
    keep: Annotated[int, Ge(1)] = 1000
    """Most samples kept."""


@dataclass(frozen=True, kw_only=True)
class MemoSinkConfig(SinkConfig):
    memo: MemoConfig = field(default_factory=MemoConfig)


class MemoUpstream:
    """Keeps the last ``keep`` samples delivered; ``arrived`` is set at each delivery."""

    def __init__(self, sink: MemoSinkConfig, context: UpstreamContext) -> None:
        self.sink = sink
        self.context = context
        self.kept: list[Outgoing] = []
        self.arrived = asyncio.Event()
        self.connected = False

    async def connect(self) -> None:
        self.connected = True

    async def deliver(self, batch: Sequence[Outgoing]) -> int:
        self.kept = [*self.kept, *batch][-self.sink.memo.keep :]
        self.arrived.set()
        return 0

    async def close(self) -> None:
        self.connected = False

    def status(self) -> dict[str, Any]:
        return {"label": self.sink.memo.label, "kept": len(self.kept)}


def _memo_upstream(sink: MemoSinkConfig, context: UpstreamContext) -> Upstream:
    return MemoUpstream(sink, context)


SINK_KIND = SinkKind(config_type=MemoSinkConfig, make_upstream=_memo_upstream)


def _needs_a_missing_library(sink: MemoSinkConfig, context: UpstreamContext) -> Upstream:
    importlib.import_module("plantd_memo_client_not_installed")
    raise AssertionError("unreachable: that module does not exist")


NEEDY_KIND = SinkKind(
    config_type=MemoSinkConfig,
    make_upstream=_needs_a_missing_library,
    install_hint="pip install plantd-memo-client",
)


def install(monkeypatch: pytest.MonkeyPatch, directory: Path, entries: dict[str, str]) -> Path:
    """Install a distribution ``plantd-memo-sink`` whose ``plantd.sinks`` entry points are
    ``entries`` (name -> ``module:attribute``) for the rest of the test: its ``.dist-info`` in
    ``directory``, put on ``sys.path`` (where ``importlib.metadata`` finds it, as after a
    ``pip install``). Returns ``directory``, for a subprocess's ``PYTHONPATH``."""
    dist = directory / "plantd_memo_sink-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plantd-memo-sink\nVersion: 1.0\n")
    lines = [f"{name} = {target}\n" for name, target in entries.items()]
    (dist / "entry_points.txt").write_text("[plantd.sinks]\n" + "".join(lines))
    monkeypatch.syspath_prepend(str(directory))
    return directory
