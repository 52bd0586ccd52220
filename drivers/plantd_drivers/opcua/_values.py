"""OPC UA values ⇄ sample values (sans-IO; no asyncua import).

Reading, a Variant's Python value becomes a bus :data:`~plantd.bus.SampleValue`:

    Boolean, integers, Float, Double, String   as they are
    DateTime                                   ISO 8601 text (UTC)
    ByteString                                 hex text
    LocalizedText / QualifiedName / NodeId     their text
    enumerations                               their integer
    arrays                                     lists of the above
    structures (dataclasses)                   objects of their fields
    None (an empty Variant)                    None

Writing, :func:`coerce` turns what a caller sent (JSON: bool, int, float, text, lists) into the
Python value for the node's built-in type, checked against that type's range, or raises
ValueError saying why it does not fit. The I/O side wraps the result in a Variant of the type.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from datetime import UTC, datetime
from typing import Any

from plantd.bus import SampleValue

__all__ = ["INTEGER_RANGES", "coerce", "to_sample_value"]

INTEGER_RANGES = {
    "SByte": (-(2**7), 2**7 - 1),
    "Byte": (0, 2**8 - 1),
    "Int16": (-(2**15), 2**15 - 1),
    "UInt16": (0, 2**16 - 1),
    "Int32": (-(2**31), 2**31 - 1),
    "UInt32": (0, 2**32 - 1),
    "Int64": (-(2**63), 2**63 - 1),
    "UInt64": (0, 2**64 - 1),
}
_FLOAT32_MAX = 3.4028234663852886e38


def to_sample_value(value: Any) -> SampleValue:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return int(value.value) if isinstance(value.value, int) else str(value.name)
    if isinstance(value, datetime):
        stamp = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return stamp.isoformat()
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        return [to_sample_value(item) for item in value]
    text = getattr(value, "Text", None)  # LocalizedText
    if isinstance(text, str) or (text is None and hasattr(value, "Locale")):
        return text
    if hasattr(value, "to_string"):  # NodeId, QualifiedName, ExpandedNodeId
        return str(value.to_string())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_sample_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    raise ValueError(f"a value of OPC UA type {type(value).__name__} cannot be published")


def coerce(value: Any, type_name: str) -> Any:
    """``value`` (from JSON) as a Python value for built-in type ``type_name``."""
    if isinstance(value, list):
        return [coerce(item, type_name) for item in value]
    if type_name == "Boolean":
        if not isinstance(value, bool):
            raise ValueError(f"the node takes true or false, got {value!r}")
        return value
    if type_name in INTEGER_RANGES:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"the node takes an integer ({type_name}), got {value!r}")
        low, high = INTEGER_RANGES[type_name]
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range for {type_name} ({low} to {high})")
        return value
    if type_name in ("Float", "Double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"the node takes a number ({type_name}), got {value!r}")
        if type_name == "Float" and math.isfinite(value) and abs(value) > _FLOAT32_MAX:
            raise ValueError(f"{value} is out of range for Float")
        return float(value)
    if type_name in ("String", "LocalizedText"):
        if not isinstance(value, str):
            raise ValueError(f"the node takes text, got {value!r}")
        return value
    if type_name == "DateTime":
        return _datetime(value)
    if type_name == "ByteString":
        if not isinstance(value, str):
            raise ValueError(f"the node takes bytes, written as hex text, got {value!r}")
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise ValueError(f"{value!r} is not hex text") from None
    raise ValueError(f"writing nodes of type {type_name} is not supported")


def _datetime(value: Any) -> datetime:
    if isinstance(value, bool):
        raise ValueError(f"the node takes a time, got {value!r}")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 time") from None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise ValueError(f"the node takes a time (ISO 8601 text or Unix seconds), got {value!r}")
