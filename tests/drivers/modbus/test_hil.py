"""The simulator's sans-IO parts against the Modbus specification's own examples."""

from __future__ import annotations

import pytest

import hil.modbus
from hil.modbus import Device, RequestFramer, Simulator, crc16


def test_crc_of_the_specification_example() -> None:
    # read holding registers 0..9 of unit 1: 01 03 00 00 00 0A, CRC C5 CD
    assert crc16(bytes.fromhex("01030000000A")) == bytes.fromhex("C5CD")


def test_rtu_framing_hunts_through_noise() -> None:
    framer = RequestFramer("rtu")
    frame = bytes.fromhex("01030000000AC5CD")
    assert framer.receive(b"\xff\x00" + frame[:5]) == []
    assert framer.receive(frame[5:]) == [(0, 1, bytes.fromhex("030000000A"))]
    body = bytes.fromhex("0103020007")
    assert framer.frame(0, 1, body[1:]) == body + crc16(body)


def test_rtu_write_multiple_is_delimited_by_its_byte_count() -> None:
    body = bytes.fromhex("0110000A000204000A0102")
    framer = RequestFramer("rtu")
    assert framer.receive(body + crc16(body)) == [(0, 1, body[1:])]


def test_mbap_framing() -> None:
    framer = RequestFramer("mbap")
    request = bytes.fromhex("00070000000611030000000A")
    assert framer.receive(request[:4]) == []
    assert framer.receive(request[4:] + request) == [
        (7, 0x11, bytes.fromhex("030000000A")),
        (7, 0x11, bytes.fromhex("030000000A")),
    ]
    assert framer.frame(7, 0x11, b"\x83\x02") == bytes.fromhex("000700000003118302")


def test_device_answers_and_refuses() -> None:
    device = Device()
    device.map("holding", 0, 4)
    device.set_registers("holding", 0, [1, 2, 3, 4])
    assert device.respond(bytes.fromhex("0300000002")) == bytes.fromhex("030400010002")
    assert device.respond(bytes.fromhex("0300030002")) == bytes.fromhex("8302")  # 4 unmapped
    assert device.respond(bytes.fromhex("0300000080")) == bytes.fromhex("8303")  # 128 > 125
    assert device.respond(bytes.fromhex("0400000001")) == bytes.fromhex("8402")  # no inputs
    assert device.respond(bytes.fromhex("2B0E0100")) == bytes.fromhex("AB01")  # unknown FC
    assert device.respond(bytes.fromhex("060001ABCD")) == bytes.fromhex("060001ABCD")
    assert device.get_registers("holding", 1, 1) == [0xABCD]


def test_coils_pack_lsb_first() -> None:
    device = Device()
    device.map("coil", 0, 10)
    device.bits["coil"][0] = device.bits["coil"][9] = True
    assert device.respond(bytes.fromhex("010000000A")) == bytes.fromhex("01020102")
    assert device.respond(bytes.fromhex("0F0000000A020300")) == bytes.fromhex("0F0000000A")
    assert [device.bits["coil"][a] for a in range(10)] == [True, True] + [False] * 8


def test_faults_and_the_request_log() -> None:
    device = Device()
    device.map("holding", 0, 4)
    sim = Simulator({1: device})

    def frame(pdu: bytes) -> bytes:
        return pdu

    read = bytes.fromhex("0300000004")
    assert sim.answer(1, read, frame) == bytes.fromhex("0308") + bytes(8)
    assert sim.answer(2, read, frame) is None  # nobody at unit 2
    sim.fail(1, "silent")
    assert sim.answer(1, read, frame) is None
    sim.fail(1, 6)
    assert sim.answer(1, read, frame) == b"\x83\x06"
    sim.fail(1, "short")
    assert sim.answer(1, read, frame) == bytes.fromhex("030400000000")  # 2 of 4 registers
    sim.fail(1, "malformed")
    assert sim.answer(1, read, frame) == bytes.fromhex("030800000000")
    sim.heal()
    sim.hang = True
    assert sim.answer(1, read, frame) is None
    assert sim.count(unit=1, function=3) == 6


def test_public_surface() -> None:
    assert set(hil.modbus.__all__) == {
        "Device",
        "Fault",
        "Framing",
        "PtyServer",
        "Request",
        "RequestFramer",
        "Simulator",
        "Table",
        "TcpServer",
        "crc16",
        "from_registers",
        "to_registers",
    }


@pytest.mark.parametrize("order", ["ABCD", "CDAB", "BADC", "DCBA"])
def test_set_and_get_value(order: str) -> None:
    device = Device()
    device.set_value("input", 10, "float64", -0.1, order=order)
    assert device.get_value("input", 10, "float64", order=order) == -0.1
