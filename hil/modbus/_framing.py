"""Server-side framing, sans-IO: bytes from a client → request PDUs, response PDUs → bytes.

Two framings:

- ``mbap`` (Modbus TCP): a 7-byte header (transaction id, protocol 0, length, unit id) before
  each PDU; the length delimits the frame.
- ``rtu`` (serial lines, and RTU tunnelled over TCP by serial servers): unit id, PDU, CRC-16.
  Nothing delimits a frame but silence, so a request's length is worked out from its function
  code; bytes that do not make a frame with a good CRC are dropped one at a time until one does
  (the hunt a real device does after noise). Requests with function codes this simulator does
  not know cannot be delimited: they are dropped the same way, byte by byte, unanswered.
"""

from __future__ import annotations

import struct
from typing import Literal

__all__ = ["Framing", "RequestFramer", "crc16"]

Framing = Literal["mbap", "rtu"]


def crc16(data: bytes) -> bytes:
    """The Modbus RTU CRC of ``data``, low byte first as sent."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


class RequestFramer:
    """Collects bytes and returns complete requests as ``(transaction id, unit, pdu)``."""

    def __init__(self, framing: Framing) -> None:
        self.framing = framing
        self._buffer = bytearray()

    def receive(self, data: bytes) -> list[tuple[int, int, bytes]]:
        self._buffer += data
        found: list[tuple[int, int, bytes]] = []
        while True:
            request = self._next_mbap() if self.framing == "mbap" else self._next_rtu()
            if request is None:
                return found
            found.append(request)

    def frame(self, transaction: int, unit: int, pdu: bytes) -> bytes:
        """The bytes of a response."""
        if self.framing == "mbap":
            return struct.pack(">HHHB", transaction, 0, len(pdu) + 1, unit) + pdu
        body = bytes((unit,)) + pdu
        return body + crc16(body)

    def _next_mbap(self) -> tuple[int, int, bytes] | None:
        if len(self._buffer) < 7:
            return None
        transaction, protocol, length, unit = struct.unpack(">HHHB", self._buffer[:7])
        if protocol != 0 or not 2 <= length <= 254:
            self._buffer.clear()  # not Modbus TCP: drop it all, as a device would
            return None
        if len(self._buffer) < 6 + length:
            return None
        pdu = bytes(self._buffer[7 : 6 + length])
        del self._buffer[: 6 + length]
        return transaction, unit, pdu

    def _next_rtu(self) -> tuple[int, int, bytes] | None:
        while len(self._buffer) >= 4:
            size = _rtu_request_size(self._buffer)
            if size is None:  # no function code this simulator knows: not a frame start
                del self._buffer[0]
                continue
            if len(self._buffer) < size:
                return None
            frame = bytes(self._buffer[:size])
            if crc16(frame[:-2]) == frame[-2:]:
                del self._buffer[:size]
                return 0, frame[0], frame[1:-2]
            del self._buffer[0]  # noise: hunt for the next frame start
        return None


def _rtu_request_size(buffer: bytearray) -> int | None:
    function = buffer[1]
    if 1 <= function <= 6:
        return 8  # unit, function, address (2), count or value (2), CRC (2)
    if function in (15, 16):
        return 9 + buffer[6] if len(buffer) >= 7 else 7
    return None
