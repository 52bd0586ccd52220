"""The ``hil_sim`` fixture's ``inject`` as the docs show it: keywords of a scenario's inject
step, against a simulator served for real and read over a Modbus TCP socket."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

import pytest

from hil.pytest_plugin import SimHandle
from hil.sim import Fault
from plantd.errors import ConfigError

from .conftest import PLANT

pytestmark = [pytest.mark.timeout(60)]

READ_ONE_HOLDING = bytes.fromhex("0300000001")


def ask(endpoint: dict[str, Any], unit: int, pdu: bytes) -> bytes:
    """One Modbus TCP request; the answer's PDU."""
    with socket.create_connection((endpoint["host"], endpoint["port"])) as conn:
        conn.settimeout(20)  # a guard against a hung test, not a measurement
        conn.sendall(struct.pack(">HHHB", 7, 0, len(pdu) + 1, unit) + pdu)
        header = _read_exactly(conn, 7)
        _, _, length, _ = struct.unpack(">HHHB", header)
        return _read_exactly(conn, length - 1)


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        assert chunk, "the simulator closed the connection"
        data += chunk
    return data


def test_inject_takes_the_documented_keywords(hil_sim: Callable[..., SimHandle]) -> None:
    sim = hil_sim(PLANT)
    plc = sim.endpoint("plc")
    assert ask(plc, 1, READ_ONE_HOLDING)[:2] == bytes.fromhex("0302")  # a normal answer
    sim.inject(device="plc", fault="exception", code=2)
    assert ask(plc, 1, READ_ONE_HOLDING) == bytes.fromhex("8302")
    sim.heal("plc")
    assert ask(plc, 1, READ_ONE_HOLDING)[:2] == bytes.fromhex("0302")
    sim.inject(device="field", unit=2, fault="silent")  # the docstring's own example
    assert sim.runner.status()["active"] == ["silent on field unit 2"]
    sim.inject(Fault(device="plc", fault="frozen"))  # a Fault still works too
    assert "frozen on plc" in sim.runner.status()["active"]


def test_inject_keywords_are_checked_like_a_scenario_step(
    hil_sim: Callable[..., SimHandle],
) -> None:
    sim = hil_sim(PLANT)
    with pytest.raises(ConfigError, match=r"fault: expected one of .* got 'silnet'"):
        sim.inject(device="plc", fault="silnet")
    with pytest.raises(ConfigError, match="delay: fault slow needs delay"):
        sim.inject(device="plc", fault="slow")
    with pytest.raises(TypeError, match="not both"):
        sim.inject(Fault(device="plc", fault="hang"), device="plc")
    assert sim.runner.status()["active"] == []
