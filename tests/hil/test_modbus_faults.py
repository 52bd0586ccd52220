"""The faults the HIL rig added to hil.modbus, sans-IO: literal PDUs in, literal bytes out."""

from __future__ import annotations

from hil.modbus import Device, RequestFramer, Simulator, crc16


def meter() -> Simulator:
    device = Device()
    device.map("holding", 0, 4)
    device.set_registers("holding", 0, [0x0102, 0x0304, 0x0506, 0x0708])
    return Simulator({1: device})


READ_4 = bytes.fromhex("0300000004")
RTU = RequestFramer("rtu")


def rtu_frame(pdu: bytes) -> bytes:
    return RTU.frame(0, 1, pdu)


def test_a_bad_crc_burst_heals_by_itself() -> None:
    sim = meter()
    sim.fail(1, "bad-crc", count=2)
    good = rtu_frame(bytes.fromhex("0308") + bytes.fromhex("0102030405060708"))
    for _ in range(2):
        out = sim.answer(1, READ_4, rtu_frame)
        assert out is not None
        assert out[:-1] == good[:-1]
        assert out != good
        assert crc16(out[:-2]) != out[-2:]
    assert sim.answer(1, READ_4, rtu_frame) == good
    assert sim.faults == {}


def test_swapped_words_and_exceptions_for_a_count() -> None:
    sim = meter()
    sim.fail(1, "swapped")
    assert sim.answer(1, READ_4, bytes) == bytes.fromhex("03080304010207080506")
    assert sim.answer(1, bytes.fromhex("0300000003"), bytes) == bytes.fromhex("0306030401020506")
    sim.fail(1, 4, count=1)
    assert sim.answer(1, READ_4, bytes) == bytes.fromhex("8304")
    assert sim.answer(1, READ_4, bytes) == bytes.fromhex("03080102030405060708")


def test_slow_units_and_heal() -> None:
    sim = meter()
    sim.slow(1, 0.25)
    assert (sim.delay_for(1), sim.delay_for(2)) == (0.25, 0.0)
    sim.fail(1, "silent")
    sim.heal(1)
    assert (sim.delay_for(1), sim.faults) == (0.0, {})


def test_writes_are_reported_after_they_are_stored() -> None:
    device = Device()
    device.map("holding", 0, 4)
    device.map("coil", 0, 8)
    heard: list[tuple[str, int, int, list[int]]] = []
    device.on_write = lambda table, address, count: heard.append(
        (table, address, count, device.get_registers("holding", 0, 2))
    )
    device.respond(bytes.fromhex("10000000020400010002"))
    assert device.respond(bytes.fromhex("0500031234")) == bytes.fromhex("8503")  # refused
    device.respond(bytes.fromhex("050003FF00"))
    assert heard == [("holding", 0, 2, [1, 2]), ("coil", 3, 1, [1, 2])]
