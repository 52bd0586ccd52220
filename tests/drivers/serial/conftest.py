"""Fixtures: a simulated instrument (a scale that also streams NMEA) on a pseudo-terminal."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from plantd_drivers.serial import SerialModule

from hil.serial import InstrumentModel, Reply, SerialSimulator, Stream, Value
from plantd.module import parse_module_file
from tests.drivers.module_harness import write_module

MODEL = InstrumentModel(
    values={"net": Value(value=12.5), "sats": Value(value=8)},
    replies=(
        Reply(match=r"^SI$", answer="S S {net:9.2f} kg"),
        Reply(match=r"^ID\?$", answer="SCALE-SIM 1.0"),
    ),
    streams=(
        Stream(every=0.05, line="GPGGA,123519,4807.038,N,01131.000,W,1,{sats:02d},0.9,545.4,M,,",
               nmea=True),
    ),
)  # fmt: skip

MODULE = """
driver: serial
connection:
  port: {port}
  baudrate: 19200
  timeout: 300ms
groups:
  - name: weight
    mode: query
    query: "SI\\r\\n"
    interval: 100ms
    match: '^S\\s+(?P<stable>[SD])\\s+(?P<net>[-+]?\\d+\\.\\d+)\\s*kg$'
    points:
      - {{name: net, capture: net, deadband: 0}}
      - {{name: stable, capture: stable, type: bool, true_values: [S]}}
  - name: gps
    mode: stream
    match: '^\\$GPGGA,'
    checksum: nmea
    separator: ","
    points:
      - {{name: latitude, field: 2, type: nmea_angle, sign_field: 3}}
      - {{name: longitude, field: 4, type: nmea_angle, sign_field: 5}}
      - {{name: satellites, field: 7, type: int}}
      - {{name: geoid, field: 11}}
"""


@pytest.fixture
def link(tmp_path: Path) -> Path:
    return tmp_path / "ttySIM"


@pytest.fixture
async def sim(link: Path) -> AsyncIterator[SerialSimulator]:
    async with SerialSimulator(MODEL, link) as simulator:
        yield simulator


ModuleMaker = Callable[..., SerialModule]


@pytest.fixture
def make_module(tmp_path: Path, link: Path) -> ModuleMaker:
    def make(text: str = MODULE, name: str = "scale") -> SerialModule:
        path = write_module(tmp_path / "modules.d", text.format(port=link), name)
        return parse_module_file(path, SerialModule)

    return make
