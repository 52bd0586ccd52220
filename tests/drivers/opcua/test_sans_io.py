"""The OPC UA driver's sans-IO parts: node names, status codes, value conversion, config."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path

import pytest
from plantd_drivers.opcua import OpcuaModule
from plantd_drivers.opcua._nodes import NamespaceTable, looks_like_node_id, split_path
from plantd_drivers.opcua._quality import quality_of, reading_of
from plantd_drivers.opcua._values import coerce, to_sample_value

from plantd.bus import Quality
from plantd.errors import ConfigError
from plantd.module import Reading, parse_module_file
from tests.drivers.module_harness import write_module

TABLE = NamespaceTable(["http://opcfoundation.org/UA/", "urn:server", "urn:acme:line"],
                       {"line": "urn:acme:line"})  # fmt: skip


def test_node_ids_by_index_uri_and_alias() -> None:
    assert TABLE.node_id("ns=2;s=Line1.Speed") == "ns=2;s=Line1.Speed"
    assert TABLE.node_id("ns=line;s=Line1.Speed") == "ns=2;s=Line1.Speed"
    assert TABLE.node_id("nsu=urn:acme:line;i=1001") == "ns=2;i=1001"
    assert TABLE.node_id("i=85") == "i=85"
    with pytest.raises(ValueError, match="namespace 'urn:nowhere' is not on the server"):
        TABLE.node_id("nsu=urn:nowhere;s=X")
    assert looks_like_node_id("ns=2;s=a/b")
    assert not looks_like_node_id("2:Line1/2:Speed")


def test_browse_paths() -> None:
    assert split_path("line:Line1/Speed") == [("line", "Line1"), (None, "Speed")]
    assert TABLE.path("/line:Line1/2:Speed/") == [(2, "Line1"), (2, "Speed")]
    with pytest.raises(ValueError, match="namespace 'lime' \\(alias 'lime' → 'urn:lime'\\)"):
        NamespaceTable(TABLE.uris, {"lime": "urn:lime"}).path("lime:Line1")
    with pytest.raises(ValueError, match="empty element"):
        split_path("a//b")


@pytest.mark.parametrize(
    ("code", "quality"),
    [
        (0x00000000, Quality.GOOD),
        (0x00A60000, Quality.GOOD),  # GoodLocalOverride
        (0x40920000, Quality.UNCERTAIN),  # UncertainSensorNotAccurate
        (0x80000000, Quality.BAD),
        (0x808C0000, Quality.BAD),  # BadSensorFailure
        (0xC0000000, Quality.BAD),  # reserved severity 11
    ],
)
def test_status_code_severity_is_the_quality(code: int, quality: Quality) -> None:
    assert quality_of(code) is quality


def test_readings_keep_the_source_timestamp_else_the_servers() -> None:
    source = datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    server = datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)

    def name(code: int) -> str:
        return {0x808C0000: "BadSensorFailure"}.get(code, "Good")

    assert reading_of(1.5, 0, source, server, name) == Reading(
        1.5, Quality.GOOD, source.timestamp()
    )
    assert reading_of(1.5, 0, None, server, name).timestamp == server.timestamp()
    assert reading_of(1.5, 0, None, None, name).timestamp is None
    assert reading_of(2, 0x40920000, source, None, name).quality is Quality.UNCERTAIN
    assert reading_of(9.9, 0x808C0000, source, None, name) == Reading(
        None, Quality.BAD, source.timestamp(), "BadSensorFailure (0x808C0000)"
    )
    assert reading_of(object(), 0, None, None, name).quality is Quality.BAD  # unpublishable


class Mode(IntEnum):
    AUTO = 2


@dataclass
class Text:
    Text: str | None
    Locale: str | None = None


@dataclass
class Point3:
    X: float
    Y: float


def test_values_become_sample_values() -> None:
    assert to_sample_value(Mode.AUTO) == 2
    assert to_sample_value(datetime(2024, 1, 1, tzinfo=UTC)) == "2024-01-01T00:00:00+00:00"
    assert to_sample_value(b"\x01\xff") == "01ff"
    assert to_sample_value([1, (2, 3)]) == [1, [2, 3]]
    assert to_sample_value(Text("hello", "en")) == "hello"
    assert to_sample_value(Point3(1.0, 2.0)) == {"X": 1.0, "Y": 2.0}


def test_writes_are_coerced_to_the_nodes_type() -> None:
    assert coerce(3, "Double") == 3.0
    assert isinstance(coerce(3, "Double"), float)
    assert coerce(7.0, "Int16") == 7
    assert coerce([1, 2], "Byte") == [1, 2]
    assert coerce("2024-01-01T00:00:00", "DateTime") == datetime(2024, 1, 1, tzinfo=UTC)
    assert coerce("01ff", "ByteString") == b"\x01\xff"
    for value, kind, problem in [
        (True, "Int32", "takes an integer"),
        (70000, "Int16", "out of range for Int16"),
        (-1, "UInt32", "out of range for UInt32"),
        (1e39, "Float", "out of range for Float"),
        (1, "Boolean", "takes true or false"),
        (1, "String", "takes text"),
        ("soon", "DateTime", "not an ISO 8601 time"),
        ({}, "ExtensionObject", "not supported"),
    ]:
        with pytest.raises(ValueError, match=problem):
            coerce(value, kind)


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    text = """
driver: opcua
connection: {endpoint: "http://x"}
groups:
  - name: g
    mode: push
    points:
      - {name: a}
      - {name: b, node: "Line1.Speed", path: "2:X"}
methods:
  - {name: write, method: "ns=2;s=M"}
"""
    with pytest.raises(ConfigError) as caught:
        parse_module_file(write_module(tmp_path, text, "bad"), OpcuaModule)
    message = str(caught.value)
    for expected in [
        "connection.endpoint: expected an endpoint such as 'opc.tcp://HOST:4840'",
        "groups[0].mode: expected one of 'subscription', 'poll'",
        "groups[0].points[0].node: give exactly one of node",
        "groups[0].points[1].node: expected a NodeId",
        "methods[0].name: 'write' is one of the module's own operations",
    ]:
        assert expected in message, (expected, message)
