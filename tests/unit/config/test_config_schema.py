"""The generic part: parse_dataclass and to_data, on dataclasses made for the test.

No ``from __future__ import annotations`` here on purpose: the dataclasses below are module
level so that their (real) annotations resolve either way.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Literal

import pytest

from plantd.config import (
    INTERNAL,
    Check,
    Duration,
    Ge,
    Gt,
    KeyPath,
    Le,
    Size,
    parse_dataclass,
    parse_yaml,
    to_data,
)
from plantd.errors import ConfigError


def _even(value: int) -> str | None:
    return None if value % 2 == 0 else f"expected an even number, got {value}"


@dataclass(frozen=True, slots=True)
class Point:
    name: str
    address: Annotated[int, Ge(0), Le(65535)]
    kind: Literal["holding", "input", "coil"] = "holding"
    scale: float = 1.0
    deadband: Annotated[float, Ge(0)] | None = None


@dataclass(frozen=True, slots=True)
class Connection:
    host: str = "127.0.0.1"
    timeout: Annotated[float, Duration, Gt(0)] = 1.0
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Module:
    driver: str
    connection: Connection = field(default_factory=Connection)
    points: tuple[Point, ...] = ()
    tags: list[str] = field(default_factory=list)
    labels: Mapping[str, str] = field(default_factory=dict)
    limits: dict[str, Annotated[int, Size]] = field(default_factory=dict)
    poll: Annotated[float, Duration, Gt(0)] | None = None
    log: Path | None = None
    batch: Annotated[int, Check(_even)] = 2
    note: str | None = field(default=None, metadata=INTERNAL)


@dataclass(frozen=True, slots=True)
class Window:
    low: float = 0.0
    high: float = 1.0

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if self.low > self.high:
            yield ("low",), f"must not exceed high ({self.high:g}), got {self.low:g}"


@dataclass(frozen=True, slots=True)
class Windows:
    windows: tuple[Window, ...] = ()


@dataclass(frozen=True, slots=True)
class Refuses:
    value: int = 0

    def __post_init__(self) -> None:
        if self.value == 13:
            raise ValueError("value: 13 is unlucky")


MODULE_YAML = """\
driver: modbus
connection:
  host: plc.local
  timeout: 250ms
points:
  - name: flow
    address: 40001
    kind: input
    scale: 0.1
  - {name: level, address: 7, deadband: 0.5}
tags: [a, b]
labels: {site: north}
limits: {frame: 1KiB, buffer: 2048}
poll: 1m
log: logs/module.log
batch: 4
"""


def parse(cls: type, text: str, **kwargs: object) -> object:
    doc = parse_yaml(text, source="m.yaml")
    return parse_dataclass(cls, doc.data, source="m.yaml", lines=doc.lines, **kwargs)  # type: ignore[arg-type]


def problems(cls: type, text: str, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(cls, text, **kwargs)
    return caught.value.problems


def test_every_supported_type(tmp_path: Path) -> None:
    module = parse(Module, MODULE_YAML, base_dir=tmp_path)
    assert module == Module(
        driver="modbus",
        connection=Connection(host="plc.local", timeout=0.25),
        points=(
            Point(name="flow", address=40001, kind="input", scale=0.1),
            Point(name="level", address=7, deadband=0.5),
        ),
        tags=["a", "b"],
        labels={"site": "north"},
        limits={"frame": 1024, "buffer": 2048},
        poll=60.0,
        log=tmp_path / "logs/module.log",
        batch=4,
    )
    assert isinstance(module, Module)
    assert isinstance(module.labels, MappingProxyType)  # Mapping[...] is read-only
    assert isinstance(module.limits, dict)
    assert isinstance(module.points, tuple)


def test_defaults_and_nulls() -> None:
    module = parse(Module, "driver: x\nconnection:\npoll: null\n")
    assert module == Module(driver="x")


def test_absolute_path_is_kept_and_relative_without_base_dir_stays_relative() -> None:
    assert parse(Module, "driver: x\nlog: /var/log/m.log\n").log == Path("/var/log/m.log")  # type: ignore[attr-defined]
    assert parse(Module, "driver: x\nlog: m.log\n").log == Path("m.log")  # type: ignore[attr-defined]


def test_all_problems_are_collected_with_lines_and_paths() -> None:
    text = """\
driver: 5
connection:
  timeout: soon
  enabled: maybe
  hots: x
points:
  - name: flow
    address: 70000
  - address: 1
    kind: discrete
tags: nope
labels: {1: a}
batch: 3
poll: 0
"""
    assert problems(Module, text) == [
        "m.yaml:1: driver: expected a string, got 5 (put it in quotes)",
        "m.yaml:5: connection.hots: unknown key (did you mean 'host'?)",
        'm.yaml:3: connection.timeout: expected a duration (seconds, or a string like "2.5s"), '
        "got 'soon'",
        "m.yaml:4: connection.enabled: expected true or false, got 'maybe'",
        "m.yaml:8: points[0].address: expected an integer >= 0 and <= 65535, got 70000",
        "m.yaml:9: points[1].name: required key is missing",
        "m.yaml:10: points[1].kind: expected one of 'holding', 'input', 'coil', got 'discrete'",
        "m.yaml:11: tags: expected a list, got 'nope'",
        "m.yaml:12: labels.1: expected a key name (text), got 1",
        "m.yaml:14: poll: expected a duration > 0, got 0",
        "m.yaml:13: batch: expected an even number, got 3",
    ]


def test_missing_required_key_takes_the_line_of_its_parent() -> None:
    assert problems(Module, "\n\nconnection: {}\n") == ["m.yaml:3: driver: required key is missing"]


def test_unknown_key_without_a_close_match_lists_the_keys() -> None:
    assert problems(Connection, "zzz: 1\n") == [
        "m.yaml:1: zzz: unknown key (expected one of: host, timeout, enabled)"
    ]


def test_internal_fields_are_not_config_keys() -> None:
    assert problems(Module, "driver: x\nnote: hi\n") == [
        "m.yaml:2: note: unknown key (expected one of: driver, connection, points, tags, "
        "labels, limits, poll, log, batch)"
    ]
    assert "note" not in to_data(Module(driver="x", note="hi"))  # type: ignore[operator]


def test_top_level_not_a_mapping() -> None:
    assert problems(Connection, "- a\n- b\n") == [
        "m.yaml:1: expected a mapping with keys host, timeout, enabled, got a list"
    ]
    assert problems(Module, "driver: x\nconnection: 5\n") == [
        "m.yaml:2: connection: expected a mapping with keys host, timeout, enabled, got 5"
    ]


def test_unknown_keys_can_be_ignored() -> None:
    module = parse(Connection, "host: a\nextra: {deep: 1}\n", unknown_keys="ignore")
    assert module == Connection(host="a")


def test_bool_is_not_a_number_and_float_is_not_an_int() -> None:
    assert problems(Point, "name: a\naddress: true\n") == [
        "m.yaml:2: address: expected an integer, got true"
    ]
    assert problems(Point, "name: a\naddress: 1.0\n") == [
        "m.yaml:2: address: expected an integer, got 1.0"
    ]
    assert problems(Point, "name: a\naddress: 1\nscale: .nan\n") == [
        "m.yaml:3: scale: expected a number, got nan"
    ]


def test_literal_suggests_a_close_option() -> None:
    assert problems(Point, "name: a\naddress: 1\nkind: INPUT\n") == [
        "m.yaml:3: kind: expected one of 'holding', 'input', 'coil', got 'INPUT' "
        "(did you mean 'input'?)"
    ]


def test_size_must_be_whole_bytes() -> None:
    assert problems(Module, "driver: x\nlimits: {a: 1.5B, b: 1.5, c: lots}\n") == [
        'm.yaml:2: limits.a: expected a size in bytes (an integer, or a string like "512KiB" '
        "or \"1MB\"), got '1.5B'",
        'm.yaml:2: limits.b: expected a size in bytes (an integer, or a string like "512KiB" '
        'or "1MB"), got 1.5',
        'm.yaml:2: limits.c: expected a size in bytes (an integer, or a string like "512KiB" '
        "or \"1MB\"), got 'lots'",
    ]


def test_cross_check_runs_per_item_with_its_path() -> None:
    text = "windows:\n  - {low: 0, high: 1}\n  - low: 5\n    high: 2\n"
    assert problems(Windows, text) == ["m.yaml:3: windows[1].low: must not exceed high (2), got 5"]


def test_cross_check_waits_until_the_fields_parse() -> None:
    assert problems(Window, "low: 5\nhigh: x\n") == ["m.yaml:2: high: expected a number, got 'x'"]


def test_post_init_value_error_is_a_problem() -> None:
    assert problems(Refuses, "value: 13\n") == ["m.yaml:1: value: 13 is unlucky"]


def test_text_sources_parse_numbers_and_name_their_source() -> None:
    data = {"host": "h", "timeout": "1.5", "enabled": "off"}
    sources: dict[KeyPath, str] = {("timeout",): "environment T", ("enabled",): "environment E"}
    got = parse_dataclass(Connection, data, source="f", text_sources=sources)
    assert got == Connection(host="h", timeout=1.5, enabled=False)
    with pytest.raises(ConfigError) as caught:
        parse_dataclass(Connection, {"timeout": "-1"}, source="f", text_sources=sources)
    assert caught.value.problems == ["environment T: timeout: expected a duration > 0, got '-1'"]


def test_a_date_where_text_is_expected_says_to_quote_it() -> None:
    assert problems(Module, "driver: 2024-01-31\n") == [
        "m.yaml:1: driver: expected a string, got 2024-01-31 (put it in quotes)"
    ]


def test_text_is_not_a_number_when_it_comes_from_the_file() -> None:
    assert problems(Point, "name: a\naddress: '7'\n") == [
        "m.yaml:2: address: expected an integer, got '7'"
    ]


def test_path_prefix_places_problems_inside_a_bigger_document() -> None:
    doc = parse_yaml("modules:\n  pump:\n    driver: [x]\n", source="all.yaml")
    with pytest.raises(ConfigError) as caught:
        parse_dataclass(
            Module,
            doc.data["modules"]["pump"],  # type: ignore[index]
            source="all.yaml",
            lines=doc.lines,
            path=("modules", "pump"),
        )
    assert caught.value.problems == [
        "all.yaml:3: modules.pump.driver: expected a string, got a list"
    ]


def test_no_lines_means_no_line_numbers() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_dataclass(Point, {"name": "a", "address": -1}, source="<memory>")
    assert caught.value.problems == [
        "<memory>: address: expected an integer >= 0 and <= 65535, got -1"
    ]


def test_to_data_round_trips(tmp_path: Path) -> None:
    module = parse(Module, MODULE_YAML, base_dir=tmp_path)
    data = to_data(module)
    assert data["points"][1] == {  # type: ignore[index]
        "name": "level",
        "address": 7,
        "kind": "holding",
        "scale": 1.0,
        "deadband": 0.5,
    }
    assert data["log"] == str(tmp_path / "logs/module.log")  # type: ignore[index]
    assert parse_dataclass(Module, data, source="again") == module


def test_scalar_unions_keep_the_yaml_type() -> None:
    @dataclass(frozen=True)
    class Either:
        value: float | int | bool | str = 0

    def parse(raw: object) -> object:
        return parse_dataclass(Either, {"value": raw}, source="f.yaml").value

    assert parse(1) == 1
    assert type(parse(1)) is int
    assert parse(1.5) == 1.5
    assert parse(True) is True
    assert parse("on") == "on"
    with pytest.raises(ConfigError, match="expected a number or an integer or true/false or text"):
        parse([1])

    @dataclass(frozen=True)
    class NumberOrText:
        value: float | str = 0.0

    assert type(parse_dataclass(NumberOrText, {"value": 2}, source="x").value) is float
    with pytest.raises(ConfigError, match="expected a number or text, got true"):
        parse_dataclass(NumberOrText, {"value": True}, source="x")


def test_unsupported_types_are_a_programming_error() -> None:
    @dataclass(frozen=True)
    class Bad:
        either: int | list[int] = 0

    @dataclass(frozen=True)
    class AlsoBad:
        pair: tuple[int, int] = (0, 0)

    with pytest.raises(TypeError, match=r"unions of scalars or X \| None only"):
        parse_dataclass(Bad, {"either": 1}, source="x")
    with pytest.raises(TypeError, match=r"use tuple\[X, \.\.\.\]"):
        parse_dataclass(AlsoBad, {"pair": [1, 2]}, source="x")
    with pytest.raises(TypeError, match="needs a dataclass"):
        parse_dataclass(int, {}, source="x")
