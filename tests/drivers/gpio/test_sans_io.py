"""The GPIO driver's sans-IO parts: the debouncer, the rate window, config checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from plantd_drivers.gpio import GpioModule, GpioPoint
from plantd_drivers.gpio._debounce import Debouncer, RateWindow

from plantd.errors import ConfigError
from plantd.module import parse_module_file
from tests.drivers.module_harness import write_module

MS = 1_000_000


def test_a_burst_settles_into_one_change_stamped_at_its_first_edge() -> None:
    debouncer = Debouncer(20 * MS, level=False)
    for i, level in enumerate([True, False, True, False, True]):  # 5 edges, 1 ms apart
        assert debouncer.edge(level, 100 * MS + i * MS) is None
    assert debouncer.deadline() == 124 * MS
    assert debouncer.poll(123 * MS) is None  # not yet held for 20 ms
    change = debouncer.poll(124 * MS)
    assert change == (True, 100 * MS)  # D2
    assert change is not None
    assert change.level is True
    assert debouncer.deadline() is None


def test_a_glitch_is_no_change() -> None:
    debouncer = Debouncer(20 * MS, level=False)
    debouncer.edge(True, 0)
    debouncer.edge(False, MS)
    assert debouncer.poll(50 * MS) is None  # D3
    assert debouncer.level is False


def test_edges_read_late_are_judged_by_their_timestamps() -> None:
    debouncer = Debouncer(MS, level=False)
    changes = [debouncer.edge(level, t * MS) for t, level in [(0, True), (20, False), (100, True)]]
    assert changes == [None, (True, 0), (False, 20 * MS)]  # D1
    assert debouncer.poll(200 * MS) == (True, 100 * MS)


def test_no_interval_means_every_change_at_once() -> None:
    debouncer = Debouncer(0, level=False)
    assert debouncer.edge(True, 5) == (True, 5)  # D4
    assert debouncer.edge(True, 6) is None
    assert debouncer.edge(False, 7) == (False, 7)


@given(
    st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=40),
    st.integers(min_value=1, max_value=25),
)
def test_changes_alternate_and_are_at_least_an_interval_apart(
    gaps: list[int], interval: int
) -> None:
    debouncer = Debouncer(interval * MS, level=False)
    level, t, changes = False, 0, []
    for gap in gaps:
        t += gap * MS
        level = not level
        change = debouncer.edge(level, t)
        if change is not None:
            changes.append(change)
    final = debouncer.poll(t + interval * MS)
    if final is not None:
        changes.append(final)
    levels = [c.level for c in changes]
    assert levels == [i % 2 == 0 for i in range(len(levels))]  # True, False, True…
    assert debouncer.level == (levels[-1] if levels else False)


def test_rate_over_a_window() -> None:
    window = RateWindow(10_000 * MS, start_ns=0)
    for second in range(5):
        window.add(second * 1000 * MS)
    assert window.rate(5000 * MS) == pytest.approx(1.0)  # 5 in the first 5 s
    assert window.rate(10_000 * MS) == pytest.approx(0.4)  # (0 s, 10 s]: the one at 0 left
    assert window.rate(14_500 * MS) == 0.0  # all older than the window
    assert RateWindow(MS, start_ns=7).rate(7) == 0.0


def test_config_checks(tmp_path: Path) -> None:
    text = """
driver: gpio
connection: {chip: /dev/gpiochip0}
groups:
  - name: g
    points:
      - {name: a, kind: input, line: 1, writable: true}
      - {name: b, kind: output, line: 1}
      - {name: c, kind: rate, counter: a}
      - {name: d, kind: counter}
"""
    with pytest.raises(ConfigError) as caught:
        parse_module_file(write_module(tmp_path, text, "bad"), GpioModule)
    message = str(caught.value)
    for expected in [
        "groups[0].points[0].writable: only outputs can be written, this is an input",
        "groups[0].points[1].safe_state: an output needs a safe_state",
        "groups[0].points[1].writable: an output is written: say writable: true",
        "groups[0].points[3].line: a counter needs its line",
    ]:
        assert expected in message, (expected, message)
    fixed = (
        text.replace(", writable: true}", "}")
        .replace(
            "kind: output, line: 1}", "kind: output, line: 1, writable: true, safe_state: false}"
        )
        .replace("{name: d, kind: counter}", "{name: d, kind: counter, line: 4}")
    )
    with pytest.raises(ConfigError) as caught:
        parse_module_file(write_module(tmp_path, fixed, "bad"), GpioModule)
    message = str(caught.value)
    assert "groups[0].points[1].line: line 1 is also 'a'" in message
    assert "groups[0].points[2].counter: 'a' is not a counter point" in message


def test_only_booleans_are_written_to_outputs() -> None:
    output = GpioPoint(name="o", kind="output", line=1, writable=True, safe_state=False)
    assert output.check_write(True) is None
    assert output.check_write(0) is None
    assert output.check_write(0.5) == "output 'o' takes true or false (or 1 or 0), got 0.5"
