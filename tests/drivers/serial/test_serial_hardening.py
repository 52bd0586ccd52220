"""Serial, as instruments and module files really are (issue 12, item 12): a sign printed apart
from its digits, a port named relative to the module file, and the reconnect backoff set in the
module file."""

from __future__ import annotations

from pathlib import Path

import pytest
from plantd_drivers.serial import SerialDriver, SerialModule
from plantd_drivers.serial._extract import Extractor

from hil.serial import InstrumentModel, Reply, SerialSimulator, Value
from plantd.config import load_config
from plantd.errors import ConfigError
from plantd.module import Reading, parse_module_file
from plantd.module._runtime import ModuleRuntime
from plantd.testing import write_config
from tests.drivers.module_harness import write_module

# A scale that pads between sign and digits to a fixed width: "S S +    12.345 kg".
SCALE = InstrumentModel(
    values={"net": Value(value=12.345)},
    replies=(Reply(match=r"^SI$", answer="S S {net:=+11.3f} kg"),),
)

MODULE = """
driver: serial
connection:
  port: {port}
  timeout: 1s
groups:
  - name: weight
    query: "SI\\r\\n"
    match: '^S\\s+(?P<stable>[SD])\\s+(?P<net>[-+]?\\s*\\d+\\.\\d+)\\s*kg$'
    points:
      - {{name: net, capture: net}}
"""


def _module(directory: Path, text: str, name: str = "scale") -> SerialModule:
    return parse_module_file(write_module(directory, text, name), SerialModule)


@pytest.mark.parametrize(
    ("frame", "net"),
    [("S S +  12.345 kg", 12.345), ("S S -   0.5 kg", -0.5), ("S S -12.5 kg", -12.5),
     ("S S 7.25 kg", 7.25)],
)  # fmt: skip
def test_a_sign_apart_from_its_digits_is_read(tmp_path: Path, frame: str, net: float) -> None:
    group = _module(tmp_path, MODULE.format(port="/dev/null")).groups[0]
    readings = Extractor(group).extract(frame)
    assert isinstance(readings, dict)
    assert readings["net"] == Reading(net)


def test_an_integer_with_a_sign_apart_is_read(tmp_path: Path) -> None:
    text = MODULE.replace("capture: net}}", "capture: net, type: int}}").replace(r"\.\d+", "")
    group = _module(tmp_path, text.format(port="/dev/null")).groups[0]
    readings = Extractor(group).extract("S S -    42 kg")
    assert isinstance(readings, dict)
    assert readings["net"] == Reading(-42)


def test_a_sign_alone_is_still_not_a_number(tmp_path: Path) -> None:
    text = MODULE.replace(r"(?P<net>[-+]?\s*\d+\.\d+)", r"(?P<net>\S.*?)")
    group = _module(tmp_path, text.format(port="/dev/null")).groups[0]
    readings = Extractor(group).extract("S S + - 1.0 kg")
    assert isinstance(readings, dict)
    assert readings["net"].error == "group 'net': '+ - 1.0' is not a number"


async def test_a_relative_port_is_relative_to_the_module_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modules = tmp_path / "modules.d"
    modules.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not where the module file is
    async with SerialSimulator(SCALE, modules / "ttySCALE") as sim:
        module = _module(modules, MODULE.format(port="ttySCALE"))
        driver = SerialDriver(module)
        await driver.open()
        try:
            readings = await driver.read(module.groups[0])
        finally:
            await driver.close()
    assert readings["net"] == Reading(12.345)  # printed "+    12.345"
    assert sim.received == ["SI"]
    assert driver.status()["port"] == str(modules / "ttySCALE")


# -- reconnect backoff -------------------------------------------------------------------------

BACKOFF = """
driver: serial
connection:
  port: /dev/ttyUSB0
{keys}
"""


async def test_the_reconnect_backoff_comes_from_the_module_file(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path / "config", {}))
    module = _module(
        tmp_path, BACKOFF.format(keys="  reconnect_initial: 200ms\n  reconnect_max: 2s")
    )
    runtime = ModuleRuntime(config, module, SerialDriver(module))
    try:
        connection = runtime.connection
        delays = [connection.failed(float(n), "unplugged") for n in range(12)]
    finally:
        runtime.publisher.close()
    assert 0.1 <= delays[0] <= 0.2
    assert max(delays) <= 2.0
    assert delays[-1] >= 1.0  # doubled up to the maximum, drawn from its upper half

    default = _module(tmp_path, BACKOFF.format(keys=""), "plain")
    runtime = ModuleRuntime(config, default, SerialDriver(default))
    runtime.publisher.close()
    assert (runtime.connection.initial, runtime.connection.maximum) == (0.5, 30.0)


def test_a_backoff_that_starts_above_its_maximum_is_refused(tmp_path: Path) -> None:
    text = BACKOFF.format(keys="  reconnect_initial: 1m\n  reconnect_max: 10s")
    with pytest.raises(ConfigError) as caught:
        _module(tmp_path, text)
    assert "connection.reconnect_initial" in str(caught.value)
    assert "must not exceed reconnect_max (10 s), got 60 s" in str(caught.value)
