"""Modbus data types and byte/word orders: the vocabulary the codec, planner and config share.

A Modbus register is 16 bits, sent high byte first. Wider values span consecutive registers,
and devices disagree on how to lay them out. The four orders name the layout of a 32-bit value
whose big-endian bytes are ``A B C D`` (A the most significant), as the registers carry them:

    ABCD  registers [AB, CD]   big-endian words, big-endian bytes (the Modbus default)
    CDAB  registers [CD, AB]   word swap: the least significant register first
    BADC  registers [BA, DC]   byte swap inside each register
    DCBA  registers [DC, BA]   both: the value little-endian

The same two rules (reverse the registers; swap the bytes in each register) apply at every
width: a 64-bit ``CDAB`` value ``A…H`` is sent ``[GH, EF, CD, AB]``, a 16-bit value only sees
the byte swap (``BADC``/``DCBA`` send ``[BA]``). Strings only honour the byte swap: their
characters always run from the first register to the last.

Pure data and pure functions; nothing here does I/O.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

__all__ = [
    "BIT_TABLES",
    "EXCEPTION_NAMES",
    "FUNCTION_OF_TABLE",
    "GATEWAY_NO_ANSWER",
    "INTEGER_TYPES",
    "ORDERS",
    "TABLES",
    "TYPES",
    "Order",
    "Table",
    "ValueType",
    "byte_permutation",
    "describe_exception",
    "register_count",
    "type_range",
]

Order = Literal["ABCD", "CDAB", "BADC", "DCBA"]
Table = Literal["coil", "discrete", "holding", "input"]
ValueType = Literal[
    "bool",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int48",
    "uint48",
    "int64",
    "uint64",
    "float32",
    "float64",
    "string",
]

ORDERS: Final[tuple[Order, ...]] = get_args(Order)
TABLES: Final[tuple[Table, ...]] = get_args(Table)
TYPES: Final[tuple[ValueType, ...]] = get_args(ValueType)

BIT_TABLES: Final = frozenset({"coil", "discrete"})
"""The tables whose entries are single bits (coils, discrete inputs), not 16-bit registers."""
FUNCTION_OF_TABLE: Final[dict[Table, int]] = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}

# Registers per value, and the struct code of its big-endian bytes ("6s": struct has no
# 48-bit integers; those bytes are turned into an int by the codec).
_REGISTERS: Final[dict[str, int]] = {
    "bool": 1,
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "int48": 3,
    "uint48": 3,
    "int64": 4,
    "uint64": 4,
    "float64": 4,
}

INTEGER_TYPES: Final = frozenset(
    {"int16", "uint16", "int32", "uint32", "int48", "uint48", "int64", "uint64"}
)


def register_count(value_type: ValueType, length: int | None = None) -> int:
    """Registers one value of ``value_type`` spans (a string of ``length`` bytes: ⌈length/2⌉)."""
    if value_type == "string":
        if length is None:
            raise ValueError("a string needs a length")
        return (length + 1) // 2
    return _REGISTERS[value_type]


def type_range(value_type: ValueType) -> tuple[int, int]:
    """The smallest and largest raw value of an integer type."""
    bits = 16 * _REGISTERS[value_type]
    if value_type.startswith("u"):
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def byte_permutation(registers: int, order: Order, *, string: bool = False) -> tuple[int, ...]:
    """Where each big-endian byte of a value sits on the wire.

    ``wire[perm[j]]`` is byte ``j`` of the value's big-endian form. Every permutation here is its
    own inverse, so the same table turns wire bytes into big-endian bytes and back.
    """
    size = 2 * registers
    reverse_words = order in ("CDAB", "DCBA") and not string
    swap_bytes = order in ("BADC", "DCBA")
    perm = []
    for j in range(size):
        word, low = divmod(j, 2)
        if reverse_words:
            word = registers - 1 - word
        if swap_bytes:
            low ^= 1
        perm.append(2 * word + low)
    return tuple(perm)


EXCEPTION_NAMES: Final[dict[int, str]] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
GATEWAY_NO_ANSWER: Final = frozenset({10, 11})
"""Exception codes a gateway answers for a unit behind it that is silent: a timeout, really."""


def describe_exception(code: int) -> str:
    return f"exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})"
