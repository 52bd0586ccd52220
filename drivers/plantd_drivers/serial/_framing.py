"""Bytes from a serial line → frames (sans-IO).

An ASCII instrument ends each frame with a terminator (``\\r\\n``, ``\\n``, ``\\r``, ``;``, ETX…)
and some start each frame with a marker (``$`` for NMEA, STX). The framer is fed whatever the
port delivered — half a frame, three frames, noise — and returns the complete frames:

  F1  A frame is the bytes before the terminator, without it; surrounding whitespace is
      stripped (instruments pad), and an empty frame is dropped.
  F2  With a start marker, bytes before the marker are noise: dropped and counted in
      ``discarded``; the frame keeps its marker (a checksum may cover it).
      A marker in the middle of a frame starts a new frame (the first was cut short).
  F3  A frame longer than ``max_frame`` without a terminator is noise (a wrong baud rate looks
      like that): its bytes are dropped and counted, and framing restarts at the next
      terminator (or marker).
  F4  Bytes that do not decode with the encoding are replaced (U+FFFD), so one bad byte
      spoils one frame, which the extractor then refuses, not the stream.
"""

from __future__ import annotations

__all__ = ["Framer"]


class Framer:
    def __init__(
        self,
        terminator: bytes,
        *,
        start: bytes | None = None,
        max_frame: int = 1024,
        encoding: str = "ascii",
    ) -> None:
        if not terminator:
            raise ValueError("a framer needs a terminator")
        self.terminator = terminator
        self.start = start or None
        self.max_frame = max_frame
        self.encoding = encoding
        self.frames = 0
        self.discarded = 0  # bytes dropped as noise (F2, F3)
        self._buffer = bytearray()
        self._skipping = False  # inside an overlong frame (F3)

    def feed(self, data: bytes) -> list[str]:
        self._buffer += data
        frames: list[str] = []
        while True:
            end = self._buffer.find(self.terminator)
            if end < 0:
                self._check_length()
                return frames
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + len(self.terminator)]
            if self._skipping:
                self.discarded += len(raw) + len(self.terminator)
                self._skipping = False
                continue
            frame = self._frame(raw)
            if frame:
                self.frames += 1
                frames.append(frame)

    def _frame(self, raw: bytes) -> str:
        if self.start is not None:
            at = raw.rfind(self.start)  # F2: the last marker starts the real frame
            if at < 0:
                self.discarded += len(raw)
                return ""
            self.discarded += at
            raw = raw[at:]
        return raw.decode(self.encoding, errors="replace").strip()

    def _check_length(self) -> None:
        if len(self._buffer) <= self.max_frame:
            return
        if self.start is not None:
            at = self._buffer.rfind(self.start)
            if at > 0 and len(self._buffer) - at <= self.max_frame:
                self.discarded += at  # keep the newest frame start, drop what came before
                del self._buffer[:at]
                return
        self.discarded += len(self._buffer)
        self._buffer.clear()
        self._skipping = True
