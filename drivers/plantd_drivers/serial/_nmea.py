"""NMEA 0183 checksums (sans-IO).

A sentence is ``$BODY*HH``: ``HH`` is the XOR of every byte of ``BODY`` (between ``$`` or
``!`` and ``*``), as two hex digits. :func:`verify` returns the body of a sentence whose
checksum is right, and raises ValueError saying what is wrong otherwise; :func:`sentence`
makes one (for simulators and tests).
"""

from __future__ import annotations

__all__ = ["checksum", "sentence", "verify"]


def checksum(body: str) -> int:
    value = 0
    for byte in body.encode("ascii", errors="replace"):
        value ^= byte
    return value


def sentence(body: str, start: str = "$") -> str:
    return f"{start}{body}*{checksum(body):02X}"


def verify(frame: str) -> str:
    """The body of ``frame`` (``$GPGGA,…*47`` → ``GPGGA,…``), or ValueError."""
    if not frame or frame[0] not in "$!":
        raise ValueError(f"not an NMEA sentence (no '$' or '!' at the start): {frame[:40]!r}")
    body, star, given = frame[1:].rpartition("*")
    if not star:
        raise ValueError(f"NMEA sentence without a checksum: {frame[:40]!r}")
    try:
        expected = int(given, 16)
    except ValueError:
        raise ValueError(f"NMEA checksum {given!r} is not hex") from None
    if len(given) != 2 or checksum(body) != expected:
        raise ValueError(
            f"NMEA checksum mismatch: the sentence says {given}, its body gives "
            f"{checksum(body):02X}"
        )
    return body
