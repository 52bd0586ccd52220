"""What `plant hil check` refuses before anything runs: faults that do not fit their device,
registers that do not exist, write error codes no write answers — each with file and line."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import plantd.module._commands as module_service
from hil.scenario import load_scenario
from hil.scenario._schema import WRITE_ERRORS
from hil.sim import load_sim_file
from plantd.errors import ConfigError

SIM = """\
devices:
  - name: plc
    transport: tcp
    units:
      - points:
          - {name: speed, table: holding, address: 0}
  - name: line
    transport: rtu
    units:
      - unit: 1
        points:
          - {name: flow, table: input, address: 0}
      - unit: 3
        points:
          - {name: level, table: input, address: 0}
"""


def problems(path: Path, text: str, loader: object = load_scenario) -> list[str]:
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        loader(path)  # type: ignore[operator]
    return caught.value.problems


def test_faults_that_do_not_fit_their_device(tmp_path: Path) -> None:
    (tmp_path / "sim.yaml").write_text(SIM)
    scenario = tmp_path / "s.yaml"
    found = problems(
        scenario,
        """\
simulators: [sim.yaml]
steps:
  - inject: {device: plc, fault: bad-crc}
  - inject: {device: line, fault: drop}
  - inject: {device: line, unit: 2, fault: silent}
  - heal: {device: line, unit: 7}
  - inject: {device: line, unit: 3, fault: bad-crc, count: 2}
  - inject: {device: plc, fault: drop}
""",
    )
    assert found == [
        f"{scenario}:3: steps[0].inject.fault: bad-crc needs an RTU framing; device 'plc' speaks "
        "Modbus TCP (garbage corrupts its answers instead)",
        f"{scenario}:4: steps[1].inject.fault: device 'line' is a serial line (rtu): there is no "
        "connection to drop",
        f"{scenario}:5: steps[2].inject.unit: device 'line' has no unit 2 (its units: 1, 3)",
        f"{scenario}:6: steps[3].heal.unit: device 'line' has no unit 7 (its units: 1, 3)",
    ]


def test_registers_that_do_not_exist(tmp_path: Path) -> None:
    sim = tmp_path / "sim.yaml"
    found = problems(
        sim,
        """\
devices:
  - name: d
    units:
      - max_registers: 4
        points:
          - {name: last, table: holding, address: 65535}
          - {name: past, table: input, address: 65535, type: float32}
          - {name: long, table: holding, address: 10, type: string, length: 10}
""",
        load_sim_file,
    )
    assert found == [
        f"{sim}:7: devices[0].units[0].points[1].address: input 65535 + 2 registers runs past "
        "the last address 65535",
        f"{sim}:8: devices[0].units[0].points[2].address: the point spans 5 registers; its unit "
        "serves at most 4 in one read (max_registers)",
    ]


def test_an_unknown_write_error_code_names_the_valid_ones(tmp_path: Path) -> None:
    found = problems(
        tmp_path / "s.yaml",
        "steps:\n  - write: {point: station.speed, value: 1, error: module.bad-valu}\n",
    )
    assert found == [
        f"{tmp_path / 's.yaml'}:2: steps[0].write.error: no write error 'module.bad-valu' "
        "(did you mean 'module.bad-value'?); a write is refused with one of: "
        + ", ".join(WRITE_ERRORS)
    ]


def test_every_code_the_module_write_answers_is_known() -> None:
    # the codes the module's service raises, read from its source: a new one must be listed
    source = inspect.getsource(module_service)
    raised = set(re.findall(r'OperationError\(\s*"(module\.[a-z-]+)"', source))
    chosen = r'code = "(module\.[a-z-]+)" if .* else "(module\.[a-z-]+)"'
    raised |= set(re.findall(chosen, source)[0])
    assert raised == {code for code in WRITE_ERRORS if code.startswith("module.")}


def test_the_documented_write_codes_are_the_checked_ones() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "hil.md").read_text()
    listed = re.findall(r"^\| `((?:module|broker)\.[a-z-]+)` \|", docs, re.MULTILINE)
    assert listed == list(WRITE_ERRORS)
