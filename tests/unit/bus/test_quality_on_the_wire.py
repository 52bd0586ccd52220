"""A quality number outside 0–2 is a decode error that names it, in a sample and in a batch
(a subscriber skips and counts such a message; it never takes it for a real quality)."""

from __future__ import annotations

import pytest

from plantd.bus import BusDecodeError, Quality, Sample, decode_sample, encode_sample
from plantd.bus._codec import decode_batch, encode_batch


@pytest.mark.parametrize("quality", list(Quality))
def test_every_quality_comes_back_as_itself(quality: Quality) -> None:
    sample = decode_sample(encode_sample(Sample(1.5, 2.0, quality, seq=3, epoch=4)))
    assert sample.quality is quality
    _, [(_, item)] = decode_batch(encode_batch(4, [(b"\x01p", 1.5, 2.0, quality, 3)]))
    assert item.quality is quality


def test_an_unknown_quality_is_named() -> None:
    payload = bytearray(encode_sample(Sample(1.0, 2.0)))
    payload[2] = 7  # the quality byte of the sample header
    with pytest.raises(BusDecodeError, match="unknown quality 7"):
        decode_sample(bytes(payload))
    with pytest.raises(BusDecodeError, match="unknown quality 9 in a batch item"):
        decode_batch(encode_batch(1, [(b"\x01p", 1.0, 2.0, 9, 1)]))
