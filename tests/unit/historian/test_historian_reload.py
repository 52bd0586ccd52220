"""What the historian takes from a re-read plantd.yaml: the merge, and a Historian applying it
(retention into the store at once, a pass run now; restart-only settings left as they run)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from plantd.bus import Sample
from plantd.config import PlantdConfig, parse_dataclass
from plantd.historian import Historian, HistoryStore
from plantd.historian._reload import merge

HOUR = 3600.0
NOW = 1_700_000_000.0


def config(tmp_path: Path, **historian: Any) -> PlantdConfig:
    data = {"paths": {"data": str(tmp_path), "run": str(tmp_path)}, "historian": historian}
    return parse_dataclass(PlantdConfig, data, source="plantd.yaml")


def test_retention_and_batching_apply_live_the_database_and_prefix_do_not(
    tmp_path: Path,
) -> None:
    running = config(tmp_path)
    read = config(tmp_path, raw_max_age="1h", batch_size=10, prefix="data.x.", database="/x.db")
    merged = merge(running, read)
    assert merged.settings.raw_max_age == HOUR
    assert merged.settings.batch_size == 10
    assert (merged.settings.prefix, merged.settings.database) == ("data.", None)
    assert merged.retention_changed
    assert merged.restart == [
        "historian.database: None -> PosixPath('/x.db')",
        "historian.prefix: 'data.' -> 'data.x.'",
    ]


def test_nothing_changed_or_only_batching_needs_no_retention_pass(tmp_path: Path) -> None:
    assert merge(config(tmp_path), config(tmp_path)).applied == []
    assert not merge(config(tmp_path), config(tmp_path, batch_size=10)).retention_changed


def test_a_reload_hands_retention_to_the_store_and_runs_a_pass(tmp_path: Path) -> None:
    running = config(tmp_path)
    store = HistoryStore(tmp_path / "history.db", running.historian, clock=lambda: NOW)

    async def scenario() -> int:
        historian = Historian(running, store=store)
        store.write_batch([("p", Sample(1.0, NOW - 2 * HOUR)), ("q", Sample(2.0, NOW - 60))])
        historian.reload(config(tmp_path, raw_max_age="1h"))
        assert store.config.raw_max_age == HOUR
        assert historian.settings.raw_max_age == HOUR
        await asyncio.gather(*historian._reloads)  # the retention pass the reload started
        return store.stats.deleted_by_age

    try:
        assert asyncio.run(scenario()) == 1  # p's raw sample, older than the hour
    finally:
        store.close()
