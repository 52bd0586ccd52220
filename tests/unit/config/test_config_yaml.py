"""YAML loading that remembers lines: plantd.config._yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantd.config import parse_yaml, read_yaml
from plantd.errors import ConfigError

DOC = """\
# a comment
broker:
  endpoint: tcp://127.0.0.1:9797

  heartbeat_interval: 2.5s
points:
  - name: flow
    address: 40001
  - name: level
"""


def test_lines_of_every_key_and_item() -> None:
    doc = parse_yaml(DOC, source="x.yaml")
    assert doc.data == {
        "broker": {"endpoint": "tcp://127.0.0.1:9797", "heartbeat_interval": "2.5s"},
        "points": [{"name": "flow", "address": 40001}, {"name": "level"}],
    }
    assert doc.lines == {
        (): 2,
        ("broker",): 2,
        ("broker", "endpoint"): 3,
        ("broker", "heartbeat_interval"): 5,
        ("points",): 6,
        ("points", 0): 7,
        ("points", 0, "name"): 7,
        ("points", 0, "address"): 8,
        ("points", 1): 9,
        ("points", 1, "name"): 9,
    }
    assert doc.problems == ()
    assert doc.source == "x.yaml"


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n"])
def test_empty_document_is_none(text: str) -> None:
    doc = parse_yaml(text, source="x.yaml")
    assert doc.data is None
    assert doc.problems == ()


def test_duplicate_key_is_a_problem_and_the_last_wins() -> None:
    doc = parse_yaml("a:\n  b: 1\n  c: 2\n  b: 3\n", source="x.yaml")
    assert doc.data == {"a": {"b": 3, "c": 2}}
    assert doc.problems == ("x.yaml:4: a.b: duplicate key (first at line 2)",)
    assert doc.lines[("a", "b")] == 4


def test_merge_keys_are_not_duplicates() -> None:
    text = "base: &base\n  x: 1\n  y: 2\nother:\n  <<: *base\n  y: 3\n"
    doc = parse_yaml(text, source="x.yaml")
    assert doc.problems == ()
    assert doc.data == {"base": {"x": 1, "y": 2}, "other": {"x": 1, "y": 3}}
    assert doc.lines[("other", "y")] == 6
    assert ("other", "x") not in doc.lines  # merged in: problems there take line of `other`


def test_many_aliases_are_walked_once() -> None:
    # A "billion laughs" shape: the walk must not expand the aliases.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    doc = parse_yaml("\n".join(lines) + "\n", source="x.yaml")
    assert doc.lines[("a8",)] == 9


def test_syntax_error_names_line_and_column() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml("a: 1\nb: [1, 2\nc: 3\n", source="x.yaml")
    (problem,) = caught.value.problems
    assert problem.startswith("x.yaml:3:2: invalid YAML: ")
    assert "while parsing a flow sequence at line 2" in problem


def test_mapping_value_in_wrong_place() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml("a: b: c\n", source="x.yaml")
    assert caught.value.problems == [
        "x.yaml:1:5: invalid YAML: mapping values are not allowed here"
    ]


def test_tab_indentation_is_a_syntax_error() -> None:
    with pytest.raises(ConfigError, match=r"^x\.yaml:2:1: invalid YAML: .*'\\t'"):
        parse_yaml("a:\n\tb: 1\n", source="x.yaml")


def test_two_documents_are_an_error() -> None:
    with pytest.raises(ConfigError, match=r"x\.yaml:2:1: invalid YAML: but found another document"):
        parse_yaml("a: 1\n---\nb: 2\n", source="x.yaml")


def test_unsafe_tags_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"x\.yaml:1:4: invalid YAML: could not determine"):
        parse_yaml("a: !!python/object:os.system {}\n", source="x.yaml")


def test_non_string_keys_are_kept_as_text_in_paths() -> None:
    doc = parse_yaml("1: one\n2.5: yes\n", source="x.yaml")
    assert doc.data == {1: "one", 2.5: True}
    assert doc.lines == {(): 1, ("1",): 1, ("2.5",): 2}


def test_read_yaml_names_the_file(tmp_path: Path) -> None:
    file = tmp_path / "plantd.yaml"
    file.write_text("a:\n  - 1\n  - oops: [\n")
    with pytest.raises(ConfigError) as caught:
        read_yaml(file)
    assert caught.value.problems[0].startswith(f"{file}:4:1: invalid YAML: ")


def test_read_yaml_missing_or_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        read_yaml(tmp_path / "nope.yaml")
    assert caught.value.problems == [
        f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory"
    ]
    with pytest.raises(ConfigError, match="cannot read: Is a directory"):
        read_yaml(tmp_path)


def test_read_yaml_not_utf8(tmp_path: Path) -> None:
    file = tmp_path / "latin1.yaml"
    file.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        read_yaml(file)
    assert caught.value.problems == [
        f"{file}: not UTF-8 text (invalid continuation byte at byte 9)"
    ]


def test_floats_with_an_exponent_and_no_dot_are_numbers() -> None:
    doc = parse_yaml("a: 1e3\nb: -2E-3\nc: 1_000\nd: 1e\ne: 0x10\n", source="x.yaml")
    assert doc.data == {"a": 1000.0, "b": -0.002, "c": 1000, "d": "1e", "e": 16}
