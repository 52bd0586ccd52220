"""The codec against golden vectors: registers written out by hand (from the big-endian bytes
``struct`` gives, then laid out per order by hand), never produced by the codec itself."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from plantd_drivers.modbus import ORDERS, PointCodec
from plantd_drivers.modbus._codec import BitDecoder, BlockDecoder
from plantd_drivers.modbus._types import byte_permutation

from hil.modbus import from_registers, to_registers
from plantd.bus import Quality

# (type, value, {order: registers})
GOLDEN: list[tuple[str, Any, dict[str, list[int]]]] = [
    ("uint16", 0x1234, {"ABCD": [0x1234], "CDAB": [0x1234], "BADC": [0x3412], "DCBA": [0x3412]}),
    ("int16", -2, {"ABCD": [0xFFFE], "CDAB": [0xFFFE], "BADC": [0xFEFF], "DCBA": [0xFEFF]}),
    ("int16", -32768, {"ABCD": [0x8000], "CDAB": [0x8000], "BADC": [0x0080], "DCBA": [0x0080]}),
    (
        "uint32",
        0x11223344,
        {
            "ABCD": [0x1122, 0x3344],
            "CDAB": [0x3344, 0x1122],
            "BADC": [0x2211, 0x4433],
            "DCBA": [0x4433, 0x2211],
        },
    ),
    (  # -123456789 = 0xF8A432EB
        "int32",
        -123456789,
        {
            "ABCD": [0xF8A4, 0x32EB],
            "CDAB": [0x32EB, 0xF8A4],
            "BADC": [0xA4F8, 0xEB32],
            "DCBA": [0xEB32, 0xA4F8],
        },
    ),
    (  # 0x112233445566
        "uint48",
        0x112233445566,
        {
            "ABCD": [0x1122, 0x3344, 0x5566],
            "CDAB": [0x5566, 0x3344, 0x1122],
            "BADC": [0x2211, 0x4433, 0x6655],
            "DCBA": [0x6655, 0x4433, 0x2211],
        },
    ),
    (  # -1234567890 = 0xFFFFB669FD2E in 48 bits
        "int48",
        -1234567890,
        {
            "ABCD": [0xFFFF, 0xB669, 0xFD2E],
            "CDAB": [0xFD2E, 0xB669, 0xFFFF],
            "BADC": [0xFFFF, 0x69B6, 0x2EFD],
            "DCBA": [0x2EFD, 0x69B6, 0xFFFF],
        },
    ),
    (
        "uint64",
        0x0102030405060708,
        {
            "ABCD": [0x0102, 0x0304, 0x0506, 0x0708],
            "CDAB": [0x0708, 0x0506, 0x0304, 0x0102],
            "BADC": [0x0201, 0x0403, 0x0605, 0x0807],
            "DCBA": [0x0807, 0x0605, 0x0403, 0x0201],
        },
    ),
    (  # -1234567890123 = 0xFFFFFEE08E04FB35
        "int64",
        -1234567890123,
        {
            "ABCD": [0xFFFF, 0xFEE0, 0x8E04, 0xFB35],
            "CDAB": [0xFB35, 0x8E04, 0xFEE0, 0xFFFF],
            "BADC": [0xFFFF, 0xE0FE, 0x048E, 0x35FB],
            "DCBA": [0x35FB, 0x048E, 0xE0FE, 0xFFFF],
        },
    ),
    (  # -123.456 = 0xC2F6E979
        "float32",
        -123.456,
        {
            "ABCD": [0xC2F6, 0xE979],
            "CDAB": [0xE979, 0xC2F6],
            "BADC": [0xF6C2, 0x79E9],
            "DCBA": [0x79E9, 0xF6C2],
        },
    ),
    (  # 230.1 = 0x4366199A
        "float32",
        230.1,
        {
            "ABCD": [0x4366, 0x199A],
            "CDAB": [0x199A, 0x4366],
            "BADC": [0x6643, 0x9A19],
            "DCBA": [0x9A19, 0x6643],
        },
    ),
    (  # 1234.5678 = 0x40934A456D5CFAAD
        "float64",
        1234.5678,
        {
            "ABCD": [0x4093, 0x4A45, 0x6D5C, 0xFAAD],
            "CDAB": [0xFAAD, 0x6D5C, 0x4A45, 0x4093],
            "BADC": [0x9340, 0x454A, 0x5C6D, 0xADFA],
            "DCBA": [0xADFA, 0x5C6D, 0x454A, 0x9340],
        },
    ),
    (  # strings honour only the byte swap: "PLC-01" = 50 4C 43 2D 30 31
        "string",
        "PLC-01",
        {
            "ABCD": [0x504C, 0x432D, 0x3031, 0x0000],
            "CDAB": [0x504C, 0x432D, 0x3031, 0x0000],
            "BADC": [0x4C50, 0x2D43, 0x3130, 0x0000],
            "DCBA": [0x4C50, 0x2D43, 0x3130, 0x0000],
        },
    ),
    ("bool", True, {"ABCD": [0x0001], "CDAB": [0x0001], "BADC": [0x0100], "DCBA": [0x0100]}),
]

CASES = [
    pytest.param(kind, value, order, registers, id=f"{kind}-{order}-{value!r}")
    for kind, value, orders in GOLDEN
    for order, registers in orders.items()
]


def codec(kind: str, order: str = "ABCD", **options: Any) -> PointCodec:
    if kind == "string":
        options.setdefault("length", 8)
    return PointCodec(kind, order, **options)  # type: ignore[arg-type]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float):
        return math.isclose(a, b, rel_tol=1e-6)
    return bool(a == b) and type(a) is type(b)


def test_every_type_and_order_has_a_golden_vector() -> None:
    kinds = {kind for kind, _, _ in GOLDEN}
    assert kinds >= {"int16", "uint16", "int32", "uint32", "int48", "uint48"}
    assert kinds >= {"int64", "uint64", "float32", "float64", "string", "bool"}
    assert all(set(orders) == set(ORDERS) for _, _, orders in GOLDEN)


@pytest.mark.parametrize(("kind", "value", "order", "registers"), CASES)
def test_decode_golden(kind: str, value: Any, order: str, registers: list[int]) -> None:
    reading = codec(kind, order).decode(registers)
    assert reading.quality is Quality.GOOD
    assert same(reading.value, value), (reading.value, value)


@pytest.mark.parametrize(("kind", "value", "order", "registers"), CASES)
def test_encode_golden(kind: str, value: Any, order: str, registers: list[int]) -> None:
    assert codec(kind, order).encode(value) == registers


@pytest.mark.parametrize(("kind", "value", "order", "registers"), CASES)
def test_simulator_encoding_agrees_with_golden(
    kind: str, value: Any, order: str, registers: list[int]
) -> None:
    """hil's own encoder (used to fill simulated devices) matches the same goldens."""
    length = 8 if kind == "string" else None
    assert to_registers(kind, value, order, length=length) == registers
    assert same(from_registers(kind, registers, order), value)


def test_permutations_are_their_own_inverse() -> None:
    for registers in (1, 2, 3, 4, 5):
        for order in ORDERS:
            perm = byte_permutation(registers, order)  # type: ignore[arg-type]
            assert sorted(perm) == list(range(2 * registers))
            assert [perm[p] for p in perm] == list(range(2 * registers))


# -- shaping values -----------------------------------------------------------------------------


def test_scale_and_offset_on_read_and_write() -> None:
    c = codec("int16", scale=0.1, offset=-40)
    assert c.decode([650]).value == pytest.approx(25.0)  # 650 × 0.1 − 40
    assert c.encode(25.0) == [650]
    assert c.encode(25.04) == [650]  # rounds to the nearest raw step
    assert c.decode([0xFFFF]).value == pytest.approx(-40.1)


def test_scaled_write_out_of_range_names_the_raw_value() -> None:
    with pytest.raises(ValueError, match=r"outside the range of a int16.*raw value 40000"):
        codec("int16", scale=0.1).encode(4000)


def test_clamp_marks_the_reading_uncertain() -> None:
    c = codec("uint16", clamp=(0.0, 100.0), scale=1.0, offset=-10)
    assert c.decode([50]).quality is Quality.GOOD
    clamped = c.decode([500])
    assert clamped.value == 100.0
    assert clamped.quality is Quality.UNCERTAIN
    assert clamped.error is None
    assert c.decode([0]).value == 0.0


def test_enum_labels() -> None:
    c = codec("uint16", enum={"stopped": 0, "running": 1, "fault": 2})
    assert c.decode([1]).value == "running"
    unknown = c.decode([7])
    assert (unknown.value, unknown.quality) == (7, Quality.UNCERTAIN)
    assert c.encode("fault") == [2]
    assert c.encode(1) == [1]
    with pytest.raises(ValueError, match=r"'walking' is not one of 'stopped', 'running', 'fault'"):
        c.encode("walking")


def test_bit_map_reads_and_writes_only_named_bits() -> None:
    c = codec("uint16", bits={"running": 0, "fault": 3, "remote": 15})
    assert c.decode([0b1000_0000_0000_1001]).value == {
        "running": True,
        "fault": True,
        "remote": True,
    }
    assert c.needs_current()
    assert c.encode({"fault": False}, current=[0b1001]) == [0b0001]
    assert c.encode({"remote": True}, current=[0x0001]) == [0x8001]
    with pytest.raises(ValueError, match="'alarm' is not a bit of this point"):
        c.encode({"alarm": True}, current=[0])


def test_bit_in_register() -> None:
    c = codec("bool", bit=4)
    assert c.decode([0x0010]).value is True
    assert c.decode([0xFFEF]).value is False
    assert c.encode(True, current=[0x0101]) == [0x0111]
    assert c.encode(False, current=[0xFFFF]) == [0xFFEF]
    # the byte order applies to the register before picking the bit
    swapped = codec("bool", "BADC", bit=4)
    assert swapped.decode([0x1000]).value is True
    assert swapped.encode(True, current=[0x0000]) == [0x1000]


def test_whole_register_bool() -> None:
    c = codec("bool")
    assert c.decode([0]).value is False
    assert c.decode([2]).value is True
    assert c.encode(True) == [1]
    assert c.encode(0) == [0]
    with pytest.raises(ValueError, match="expected true or false"):
        c.encode("yes")


def test_strings() -> None:
    c = codec("string", length=5)  # 3 registers
    assert c.registers == 3
    assert c.encode("ab") == [0x6162, 0x0000, 0x0000]
    assert c.decode([0x6162, 0x2020, 0x0000]).value == "ab"  # trailing spaces are padding
    with pytest.raises(ValueError, match="6 bytes long; the point holds 5"):
        c.encode("abcdef")
    bad = c.decode([0xFFFE, 0, 0])
    assert bad.quality is Quality.BAD
    assert bad.value is None
    assert bad.error is not None
    assert "not UTF-8" in bad.error


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("int16", 32768, r"outside the range of a int16, -32768…32767"),
        ("uint16", -1, r"outside the range of a uint16, 0…65535"),
        ("uint32", 2**32, r"outside the range of a uint32"),
        ("int48", 2**47, r"outside the range of a int48"),
        ("int16", 2.5, r"2.5 is not a whole number, and the point is a int16"),
        ("int16", "12", r"expected a number for a int16"),
        ("int16", True, r"expected a number for a int16"),
        ("float32", 1e39, r"does not fit a float32"),
        ("float64", math.nan, r"nan cannot be written"),
    ],
)
def test_values_that_do_not_fit(kind: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        codec(kind).encode(value)


def test_coil_codec() -> None:
    c = PointCodec("bool", bit_table=True)
    assert c.encode(True) == [1]
    assert c.encode(False) == [0]


# -- whole requests ------------------------------------------------------------------------------


def test_block_decoder_with_holes_overlaps_and_mixed_orders() -> None:
    f32 = codec("float32", "CDAB")
    u16 = codec("uint16")
    i32 = codec("int32", "DCBA")
    text = codec("string", length=4)
    registers = [0x199A, 0x4366, 0xDEAD, 0x0007, 0xEB32, 0xA4F8, 0x4F4B, 0x2121]
    decoder = BlockDecoder(
        8,
        [
            ("voltage", 0, f32),  # 230.1, CDAB
            ("status", 3, u16),
            ("status_low", 3, codec("bool", bit=0)),  # overlaps status
            ("count", 4, i32),  # -123456789, DCBA
            ("tag", 6, text),  # "OK!!"
        ],
    )
    out: dict[str, Any] = {}
    decoder.decode(registers, out)
    assert out["voltage"].value == pytest.approx(230.1, rel=1e-6)
    assert out["status"].value == 7
    assert out["status_low"].value is True
    assert out["count"].value == -123456789
    assert out["tag"].value == "OK!!"


def test_unchanged_values_reuse_their_reading() -> None:
    decoder = BlockDecoder(3, [("a", 0, codec("uint16")), ("t", 1, codec("int16", scale=0.5))])
    first: dict[str, Any] = {}
    decoder.decode([1, 10, 0], first)
    again: dict[str, Any] = {}
    decoder.decode([1, 10, 0], again)
    assert again["a"] is first["a"]
    assert again["t"] is first["t"]
    changed: dict[str, Any] = {}
    decoder.decode([2, 12, 0], changed)
    assert (changed["a"].value, changed["t"].value) == (2, 6.0)


def test_plain_block_skips_the_shuffle() -> None:
    decoder = BlockDecoder(3, [("a", 0, codec("uint16")), ("b", 1, codec("uint32"))])
    assert decoder._shuffle is None
    out: dict[str, Any] = {}
    decoder.decode([1, 0x0001, 0x0002], out)
    assert (out["a"].value, out["b"].value) == (1, 0x00010002)


def test_bit_decoder() -> None:
    out: dict[str, Any] = {}
    BitDecoder(10, [("a", 0), ("b", 9)]).decode([True] + [False] * 8 + [True] + [False] * 6, out)
    assert (out["a"].value, out["b"].value) == (True, True)
    out.clear()
    BitDecoder(1, [("only", 0)]).decode([False] * 8, out)
    assert out["only"].value is False


# -- properties -----------------------------------------------------------------------------------

INTEGERS = {
    "int16": st.integers(-(2**15), 2**15 - 1),
    "uint16": st.integers(0, 2**16 - 1),
    "int32": st.integers(-(2**31), 2**31 - 1),
    "uint32": st.integers(0, 2**32 - 1),
    "int48": st.integers(-(2**47), 2**47 - 1),
    "uint48": st.integers(0, 2**48 - 1),
    "int64": st.integers(-(2**63), 2**63 - 1),
    "uint64": st.integers(0, 2**64 - 1),
}


@given(
    st.sampled_from(sorted(INTEGERS)).flatmap(lambda k: st.tuples(st.just(k), INTEGERS[k])),
    st.sampled_from(ORDERS),
)
def test_integers_round_trip_and_agree_with_the_simulator(
    case: tuple[str, int], order: str
) -> None:
    kind, value = case
    registers = codec(kind, order).encode(value)
    assert codec(kind, order).decode(registers).value == value
    assert registers == to_registers(kind, value, order)


@given(st.floats(width=32, allow_nan=False, allow_infinity=False), st.sampled_from(ORDERS))
def test_float32_round_trips(value: float, order: str) -> None:
    registers = codec("float32", order).encode(value)
    assert codec("float32", order).decode(registers).value == value
    assert registers == to_registers("float32", value, order)


@given(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(ORDERS))
def test_float64_round_trips(value: float, order: str) -> None:
    registers = codec("float64", order).encode(value)
    assert codec("float64", order).decode(registers).value == value


@given(
    st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=10).filter(
        lambda t: len(t.encode()) <= 20 and t == t.rstrip(" ")
    ),
    st.sampled_from(ORDERS),
)
def test_strings_round_trip(text: str, order: str) -> None:
    c = codec("string", order, length=20)
    assert c.decode(c.encode(text)).value == text
