"""The serial driver's sans-IO parts: framing, NMEA checksums, extraction, config."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from plantd_drivers.serial import SerialGroup, SerialModule, SerialPoint
from plantd_drivers.serial._extract import Extractor, Rejected
from plantd_drivers.serial._framing import Framer
from plantd_drivers.serial._nmea import checksum, sentence, verify

from plantd.bus import Quality
from plantd.errors import ConfigError
from plantd.module import Reading, parse_module_file
from tests.drivers.module_harness import write_module


def test_frames_split_on_the_terminator_whatever_the_chunks() -> None:
    framer = Framer(b"\r\n")
    assert framer.feed(b"S S   12.50 kg\r") == []
    assert framer.feed(b"\n  ID 7 \r\n\r\nnext") == ["S S   12.50 kg", "ID 7"]  # F1
    assert framer.feed(b"\r\n") == ["next"]
    assert framer.frames == 3


@given(st.lists(st.binary(min_size=0, max_size=7), max_size=30))
def test_chunking_never_changes_the_frames(chunks: list[bytes]) -> None:
    stream = b"".join(chunks) + b"\n"
    whole = Framer(b"\n").feed(stream)
    framer = Framer(b"\n")
    pieces = [f for chunk in chunks for f in framer.feed(chunk)] + framer.feed(b"\n")
    assert pieces == whole


def test_a_start_marker_drops_noise_and_cut_frames() -> None:
    framer = Framer(b"\r\n", start=b"$")
    assert framer.feed(b"\x00\xffnoise$GPGGA,1*00\r\n") == ["$GPGGA,1*00"]  # F2
    assert framer.discarded == 7
    assert framer.feed(b"$GPGGA,12$GPVTG,2*00\r\n") == ["$GPVTG,2*00"]  # cut short
    assert framer.feed(b"no marker at all\r\n") == []


def test_overlong_frames_are_noise() -> None:
    framer = Framer(b"\n", max_frame=16)
    assert framer.feed(b"x" * 40) == []  # F3: a wrong baud rate looks like this
    assert framer.feed(b"yyy\nok\n") == ["ok"]
    assert framer.discarded == 44


def test_undecodable_bytes_spoil_one_frame() -> None:
    assert Framer(b"\n").feed(b"\xffA\n") == ["\ufffdA"]  # F4


def test_nmea_checksums() -> None:
    body = "GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"
    assert checksum(body) == 0x47
    assert sentence(body) == f"${body}*47"
    assert verify(f"${body}*47") == body
    for frame, problem in [
        (f"${body}*48", "mismatch: the sentence says 48, its body gives 47"),
        (f"${body}", "without a checksum"),
        (body, "no '\\$' or '!'"),
        (f"${body}*ZZ", "not hex"),
    ]:
        with pytest.raises(ValueError, match=problem):
            verify(frame)


def group(**fields: object) -> SerialGroup:
    return SerialGroup(name="g", **fields)  # type: ignore[arg-type]


def test_captures_types_and_scaling() -> None:
    extractor = Extractor(
        group(
            match=r"CO2=(?P<co2>\S+) ppm;O2=(?P<o2>\S+) %;ST=(?P<st>\w+);RAW=(?P<raw>\w+)",
            points=(
                SerialPoint(name="co2", capture="co2", scale=0.001),  # ppm → ‰
                SerialPoint(name="o2", capture="o2"),
                SerialPoint(name="ok", capture="st", type="bool", true_values=("OK",)),
                SerialPoint(name="raw", capture="raw", type="hex", scale=2, offset=1),
            ),
        )
    )
    assert extractor.extract("noise") is None
    readings = extractor.extract("CO2=410.0 ppm;O2=x %;ST=ok;RAW=ff")
    assert isinstance(readings, dict)
    assert readings["co2"].value == pytest.approx(0.41)
    assert readings["o2"] == Reading.bad("group 'o2': 'x' is not a number")
    assert readings["ok"] == Reading(True)
    assert readings["raw"] == Reading(511)


def test_fields_and_nmea() -> None:
    extractor = Extractor(
        group(
            mode="stream",
            match=r"^\$GPGGA,",
            separator=",",
            checksum="nmea",
            points=(
                SerialPoint(name="lat", field=2, type="nmea_angle", sign_field=3),
                SerialPoint(name="sats", field=7, type="int"),
                SerialPoint(name="far", field=40),
            ),
        )
    )
    readings = extractor.extract(sentence("GPGGA,1,3345.500,S,0,E,1,07"))
    assert isinstance(readings, dict)
    assert readings["lat"].value == pytest.approx(-(33 + 45.5 / 60))
    assert readings["sats"] == Reading(7)
    assert readings["far"].quality is Quality.BAD
    rejected = extractor.extract("$GPGGA,1,3345.500,S*00")
    assert isinstance(rejected, Rejected)
    assert "checksum mismatch" in rejected.reason


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    text = r"""
driver: serial
connection: {port: /dev/ttyUSB0, stopbits: 3, parity: evn}
groups:
  - name: a
    mode: query
    match: '(?P<v>\d+'
  - name: b
    mode: stream
    query: "X"
    match: '^(?P<v>\d+)'
    points:
      - {name: p, capture: w}
      - {name: q, field: 1}
      - {name: r}
"""
    with pytest.raises(ConfigError) as caught:
        parse_module_file(write_module(tmp_path, text, "bad"), SerialModule)
    message = str(caught.value)
    for expected in [
        "connection.stopbits: expected 1, 1.5 or 2, got 3",
        "connection.parity: expected one of 'none', 'even', 'odd', 'mark', 'space', got 'evn'",
        "groups[0].match: not a regular expression",
        "groups[1].points[2].capture: give exactly one of capture",
    ]:
        assert expected in message, (expected, message)
    text = text.replace("stopbits: 3, parity: evn", "stopbits: 1.5").replace("'(?P<v>\\d+'", "x")
    text = text.replace("      - {name: r}\n", "")
    with pytest.raises(ConfigError) as caught:
        parse_module_file(write_module(tmp_path, text, "bad"), SerialModule)
    message = str(caught.value)
    for expected in [
        "groups[0].query: a query group needs the query to send",
        "groups[1].query: a stream group sends nothing",
        "groups[1].points[0].capture: match has no group named 'w' (it has: v)",
        "groups[1].points[1].field: fields need the group's separator",
    ]:
        assert expected in message, (expected, message)
