"""The sink plug-in door: kinds come through the ``plantd.sinks`` entry points, the built-in
ones as a third party's; a kind nobody installed is named with the installed ones; a third
party's kind is read with its own section (file and line) and built by the core."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantd.bus import Sample
from plantd.config import PlantdConfig
from plantd.errors import ConfigError
from plantd.sinks import (
    ENTRY_POINT_GROUP,
    DiskQueue,
    Sink,
    available_sink_kinds,
    load_sink,
    load_sink_kind,
)
from tests.unit.sinks._memo_kind import MODULE, MemoSinkConfig, MemoUpstream, install


def write_sink(tmp_path: Path, text: str) -> tuple[PlantdConfig, Path]:
    (tmp_path / "sinks.d").mkdir(exist_ok=True)
    path = tmp_path / "sinks.d" / "up.yaml"
    path.write_text(text)
    return PlantdConfig(source_dir=tmp_path), path


def problems(config: PlantdConfig) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_sink(config, "up")
    return caught.value.problems


def test_the_built_in_kinds_come_through_the_entry_point_group() -> None:
    assert ENTRY_POINT_GROUP == "plantd.sinks"
    assert available_sink_kinds() == ["mqtt", "postgres"]
    assert load_sink_kind("mqtt").config_type.__module__.startswith("plantd.sinks.mqtt")
    assert load_sink_kind("postgres").install_hint == "pip install 'plantd[postgres]'"


def test_an_unknown_kind_is_named_with_the_installed_ones(tmp_path: Path) -> None:
    config, path = write_sink(tmp_path, "topics: [data.]\ntype: kafka\n")
    assert problems(config) == [f"{path}:2: type: expected one of 'mqtt', 'postgres', got 'kafka'"]
    config, path = write_sink(tmp_path, "type: postgress\n")
    assert problems(config) == [
        f"{path}:1: type: expected one of 'mqtt', 'postgres', got 'postgress' "
        "(did you mean 'postgres'?)"
    ]
    with pytest.raises(ConfigError) as caught:
        load_sink_kind("kafka")
    assert caught.value.problems == ["type: no sink kind named 'kafka' (installed: mqtt, postgres)"]
    with pytest.raises(ConfigError) as caught:
        load_sink_kind("mqt", source="up.yaml")
    assert caught.value.problems == [
        "up.yaml: type: no sink kind named 'mqt' (installed: mqtt, postgres) (did you mean 'mqtt'?)"
    ]


def test_a_third_party_kind_is_read_with_its_own_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, tmp_path / "site", {"memo": f"{MODULE}:SINK_KIND"})
    assert available_sink_kinds() == ["memo", "mqtt", "postgres"]
    config, path = write_sink(tmp_path, "type: memo\nmemo: {label: tank, keep: 5}\n")
    sink = load_sink(config, "up")
    assert isinstance(sink, MemoSinkConfig)
    assert (sink.name, sink.type, sink.memo.label, sink.memo.keep) == ("up", "memo", "tank", 5)

    # Its section is checked like any plantd config: the file, the line, the key path.
    config, path = write_sink(tmp_path, "type: memo\nmemo:\n  lable: x\n  keep: 0\nmqtt: {}\n")
    assert problems(config) == [
        f"{path}:5: mqtt: unknown key (expected one of: type, topics, events, queue, repair, "
        "reconnect_initial, reconnect_max, status_interval, memo)",
        f"{path}:3: memo.lable: unknown key (did you mean 'label'?)",
        f"{path}:4: memo.keep: expected an integer >= 1, got 0",
    ]
    config, path = write_sink(tmp_path, "type: mem\n")
    assert problems(config) == [
        f"{path}:1: type: expected one of 'memo', 'mqtt', 'postgres', got 'mem' "
        "(did you mean 'memo'?)"
    ]


def test_the_core_builds_a_third_party_upstream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, tmp_path / "site", {"memo": f"{MODULE}:SINK_KIND"})
    queue = tmp_path / "up.queue.db"
    config, _ = write_sink(tmp_path, f"type: memo\nqueue: {{path: {queue}}}\nmemo: {{label: t}}\n")
    sink = Sink(config, load_sink(config, "up"))
    try:
        upstream = sink.upstream
        assert isinstance(upstream, MemoUpstream)
        assert upstream.context.queue is sink.queue
        sample = Sample(2.5, 100.0, seq=1, epoch=7)
        sink.intake.offer("data.tank.level", sample, 100.0)
        assert upstream.context.latest() == {"tank": {"level": sample}}
        status = sink.status()
        assert (status["type"], status["upstream"]) == ("memo", {"label": "t", "kept": 0})
    finally:
        sink.queue.close()


def test_a_broken_kind_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install(
        monkeypatch,
        tmp_path / "site",
        {
            "gone": "plantd_memo_sink_not_installed:SINK_KIND",
            "bogus": f"{MODULE}:MemoConfig",
            "needy": f"{MODULE}:NEEDY_KIND",
        },
    )
    config, path = write_sink(tmp_path, "type: gone\n")
    (problem,) = problems(config)
    assert problem.startswith(f"{path}: type: the 'gone' sink kind cannot be loaded: No module")
    config, path = write_sink(tmp_path, "type: bogus\n")
    assert problems(config) == [
        f"{path}: type: {MODULE}:MemoConfig is not a plantd sink kind (a plantd.sinks.SinkKind)"
    ]
    # What the upstream imports is needed only when the sink runs; then its hint is given.
    queue = tmp_path / "up.queue.db"
    config, _ = write_sink(tmp_path, f"type: needy\nqueue: {{path: {queue}}}\n")
    settings = load_sink(config, "up")
    with pytest.raises(ImportError) as caught:
        Sink(config, settings)
    assert str(caught.value) == (
        "sink up (type needy) needs plantd_memo_client_not_installed: "
        "pip install plantd-memo-client"
    )
    DiskQueue(queue, max_bytes=1 << 20, max_age=60).close()  # the failed sink let go of it
