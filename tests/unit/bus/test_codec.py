"""The bus payload codec: round trips for every value type, golden bytes, bad payloads."""

from __future__ import annotations

import contextlib
import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantd.bus import (
    BusDecodeError,
    GapTracker,
    Quality,
    Sample,
    decode,
    decode_record,
    decode_sample,
    encode_record,
    encode_sample,
    sample_to_json,
)

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=8))
json_values = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
values = st.one_of(
    st.floats(allow_nan=False),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.text(),
    st.none(),
    st.lists(json_leaf, max_size=4),
    st.dictionaries(st.text(max_size=5), json_values, max_size=3),
)
samples = st.builds(
    Sample,
    values,
    st.floats(min_value=0, max_value=4e9),
    st.sampled_from(Quality),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**32 - 1),
)


@given(samples)
def test_samples_round_trip(sample: Sample) -> None:
    decoded = decode_sample(encode_sample(sample))
    assert decoded == sample
    assert type(decoded.value) is type(sample.value)


def test_nan_survives_and_is_json_safe() -> None:
    decoded = decode_sample(encode_sample(Sample(math.nan, 1.0, Quality.BAD)))
    assert math.isnan(decoded.value)  # type: ignore[arg-type]
    assert sample_to_json(decoded)["value"] == "nan"
    assert sample_to_json(decoded)["quality"] == "bad"


def test_golden_bytes_of_a_float_sample() -> None:
    payload = encode_sample(Sample(1.5, 1700000000.25, Quality.UNCERTAIN, seq=7, epoch=0xABCD))
    assert payload == (
        b"\x01S\x01f" + struct.pack("<IQdQ", 0xABCD, 7, 1700000000.25, 0) + struct.pack("<d", 1.5)
    )


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_records_round_trip(fields: dict) -> None:  # type: ignore[type-arg]
    assert decode_record(encode_record(fields)).fields == fields
    assert decode(encode_record(fields)).fields == fields  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("payload", "complaint"),
    [
        (b"", "no header"),
        (b"\x02S", "version 2"),
        (b"\x01S\x00f", "shorter than its header"),
        (b"\x01S\x00z" + bytes(28), "unknown sample value type"),
        (b"\x01S\x00f" + bytes(28) + b"\x00", "bad sample value"),
        (b"\x01S\x00b" + bytes(28) + b"\x00\x00", "exactly one byte"),
        (b"\x01J[1]", "JSON object"),
        (b"\x01J{", "not JSON"),
    ],
)
def test_bad_payloads_are_named(payload: bytes, complaint: str) -> None:
    with pytest.raises(BusDecodeError, match=complaint):
        decode(payload)


@given(st.binary(max_size=64))
def test_decode_only_ever_raises_bus_decode_errors(payload: bytes) -> None:
    with contextlib.suppress(BusDecodeError):
        decode(payload)


def test_gap_tracker() -> None:
    tracker = GapTracker()
    assert tracker.observe("a", Sample(1, 0, seq=1, epoch=9)) == 0
    assert tracker.observe("a", Sample(1, 0, seq=2, epoch=9)) == 0
    assert tracker.observe("b", Sample(1, 0, seq=1, epoch=9)) == 0
    assert tracker.observe("a", Sample(1, 0, seq=5, epoch=9)) == 2
    assert tracker.observe("a", Sample(1, 0, seq=5, epoch=9)) == 0
    assert tracker.duplicates == 1
    assert tracker.observe("a", Sample(1, 0, seq=1, epoch=10)) == 0  # publisher restarted
    assert tracker.missing == 2
