"""What a running sink does with its re-read sink file (plantd.sinks._reload.plan)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from plantd.config import PlantdConfig
from plantd.sinks import SinkConfig, load_sink
from plantd.sinks._reload import plan

BASE = """
type: mqtt
queue: {batch_size: 50}
mqtt: {host: 127.0.0.1, topic: "a/{module}/{point}"}
"""


def read(tmp_path: Path, text: str) -> SinkConfig:
    (tmp_path / "sinks.d").mkdir(exist_ok=True)
    (tmp_path / "sinks.d" / "s.yaml").write_text(text)
    return load_sink(PlantdConfig(source_dir=tmp_path), "s")


def test_the_same_file_changes_nothing(tmp_path: Path) -> None:
    todo = plan(read(tmp_path, BASE), read(tmp_path, BASE))
    assert not todo.changed
    assert (todo.new_upstream, todo.resubscribe, todo.restart) == (False, False, [])


def test_the_kinds_section_needs_a_new_upstream_and_hides_its_values(tmp_path: Path) -> None:
    old = read(tmp_path, BASE)
    changed = BASE.replace("a/{module}", "b/{module}").replace("1, ", "1, password: hush, ")
    new = read(tmp_path, changed)
    todo = plan(old, new)
    assert todo.new_upstream
    assert not todo.resubscribe
    assert todo.applied == ["mqtt: changed (new upstream connection)"]  # no password in logs
    assert todo.config == new


def test_queue_settings_apply_in_place_and_topics_resubscribe(tmp_path: Path) -> None:
    old = read(tmp_path, BASE)
    new = read(tmp_path, BASE.replace("batch_size: 50", "batch_size: 10") + 'topics: ["data.x"]')
    todo = plan(old, new)
    assert not todo.new_upstream
    assert todo.resubscribe
    assert todo.applied == [
        "queue.batch_size: 50 -> 10",
        "topics: ['data.'] -> ['data.x'] (new bus subscription)",
    ]


def test_a_new_queue_path_needs_a_restart_and_the_queue_in_use_is_kept(tmp_path: Path) -> None:
    old = read(tmp_path, BASE)
    new = read(tmp_path, BASE.replace("batch_size: 50", "batch_size: 50, path: /x.db"))
    todo = plan(old, new)
    assert todo.restart == ["queue.path: None -> /x.db"]
    assert not todo.changed
    assert todo.config.queue == dataclasses.replace(new.queue, path=None)
