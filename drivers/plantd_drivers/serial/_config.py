"""The serial instrument module file: the port, its framing, and groups of points.

    driver: serial
    connection:
      port: /dev/ttyUSB0         # a relative path is relative to this file's directory
      baudrate: 9600
      parity: none               # none, even, odd, mark, space
      stopbits: 1                # 1, 1.5, 2
      terminator: "\\r\\n"
      rs485: {mode: kernel}      # RTS toggled around each send (kernel, or software)
      reconnect_initial: 500ms   # reopening a lost port: backoff from this…
      reconnect_max: 30s         # …doubling up to this, for ever
    groups:
      - name: weight             # request/response: send, wait for the framed answer
        mode: query
        query: "SI\\r\\n"
        interval: 1s
        timeout: 500ms
        match: '^S\\s+(?P<stable>[SD])\\s+(?P<net>[-+]?\\s*\\d+\\.\\d+)\\s*kg$'
        points:
          - {name: net, capture: net}
          - {name: stable, capture: stable, type: bool, true_values: [S]}
      - name: gga                # free-running: the instrument sends by itself
        mode: stream
        match: '^\\$G[NP]GGA,'
        checksum: nmea
        separator: ","
        points:
          - {name: latitude, field: 2, type: nmea_angle, sign_field: 3}
          - {name: satellites, field: 7, type: int}

A frame belongs to a group when the group's ``match`` regular expression finds it (``search``).
Points take a named group of ``match`` (``capture``) or a field of the frame split by
``separator`` (``field``, counted from 0; for NMEA, field 0 is the sentence type), converted to
``type`` and then ``value × scale + offset``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Literal

from plantd.config import Check, Duration, Ge, Gt, KeyPath, Size
from plantd.module import GroupConfig, ModuleConfig, PointConfig

__all__ = ["Rs485", "SerialConnection", "SerialGroup", "SerialModule", "SerialPoint"]


def _regex_problem(text: str) -> str | None:
    try:
        re.compile(text)
    except re.error as exc:
        return f"not a regular expression: {exc} in {text!r}"
    return None


def _stopbits_problem(value: float) -> str | None:
    return None if value in (1, 1.5, 2) else f"expected 1, 1.5 or 2, got {value:g}"


@dataclass(frozen=True, kw_only=True)
class Rs485:
    mode: Literal["kernel", "software"] = "kernel"
    """``kernel``: the driver of the UART toggles RTS (exact timing; not every UART can);
    ``software``: pyserial sets RTS around each write (works anywhere, loose timing)."""
    rts_level_for_tx: bool = True
    rts_level_for_rx: bool = False
    delay_before_tx: Annotated[float, Duration, Ge(0)] = 0.0
    delay_before_rx: Annotated[float, Duration, Ge(0)] = 0.0


@dataclass(frozen=True, kw_only=True)
class SerialConnection:
    port: str
    """A device path (relative: to the module file's directory) or a pyserial URL
    (``socket://HOST:PORT``, ``rfc2217://…``)."""
    baudrate: Annotated[int, Gt(0)] = 9600
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["none", "even", "odd", "mark", "space"] = "none"
    stopbits: Annotated[float, Check(_stopbits_problem)] = 1
    xonxoff: bool = False
    rtscts: bool = False
    rs485: Rs485 | None = None
    encoding: str = "ascii"
    terminator: str = "\r\n"
    """What ends a frame (``\\n`` also frames ``\\r\\n`` lines: whitespace is stripped)."""
    start: str | None = None
    """What starts a frame (``$`` for NMEA): bytes before it are noise."""
    max_frame: Annotated[int, Size, Ge(8)] = 1024
    timeout: Annotated[float, Duration, Gt(0)] = 1.0
    """How long a query waits for its answer, unless its group says otherwise."""
    reconnect_initial: Annotated[float, Duration, Gt(0)] = 0.5
    """The first wait before reopening a lost port; it doubles after each failure…"""
    reconnect_max: Annotated[float, Duration, Gt(0)] = 30.0
    """…up to this (each wait drawn from its upper half); the module never gives up."""

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if self.reconnect_initial > self.reconnect_max:
            yield (
                ("reconnect_initial",),
                f"must not exceed reconnect_max ({self.reconnect_max:g} s), "
                f"got {self.reconnect_initial:g} s",
            )
        if not self.terminator:
            yield ("terminator",), "a frame needs a terminator"
        try:
            "x".encode(self.encoding)
        except LookupError:
            yield ("encoding",), f"unknown encoding {self.encoding!r}"


@dataclass(frozen=True, kw_only=True)
class SerialPoint(PointConfig):
    capture: str | None = None
    """A named group of the group's ``match``."""
    field: Annotated[int, Ge(0)] | None = None
    """A field of the frame split by the group's ``separator`` (0 is the first)."""
    type: Literal["float", "int", "str", "bool", "hex", "nmea_angle"] = "float"
    """``hex``: an integer written in hex; ``nmea_angle``: ``ddmm.mmmm`` → degrees."""
    scale: float = 1.0
    offset: float = 0.0
    true_values: tuple[str, ...] = ("1", "true", "on", "yes")
    """For ``type: bool``: texts read as true (compared without case); anything else is false."""
    sign_field: Annotated[int, Ge(0)] | None = None
    """For ``nmea_angle``: the field with N/S or E/W; S and W make the angle negative."""

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        yield from super().cross_check()
        if (self.capture is None) == (self.field is None):
            yield ("capture",), "give exactly one of capture (a named group) or field (a position)"


@dataclass(frozen=True, kw_only=True)
class SerialGroup(GroupConfig):
    mode: Literal["query", "stream"] = "query"
    """``query``: send ``query`` every ``interval`` and read the answer; ``stream``: the
    instrument sends by itself, and every frame that ``match`` finds is read."""
    query: str | None = None
    timeout: Annotated[float, Duration, Gt(0)] | None = None
    match: Annotated[str, Check(_regex_problem)] = ""
    """Frames of this group; its named groups are what ``capture`` points take."""
    separator: str | None = None
    checksum: Literal["none", "nmea"] = "none"
    points: tuple[SerialPoint, ...] = ()

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if self.mode == "query" and not self.query:
            yield ("query",), "a query group needs the query to send"
        if self.mode == "stream" and self.query:
            yield ("query",), "a stream group sends nothing (use mode: query)"
        groups = (
            set(re.compile(self.match).groupindex) if _regex_problem(self.match) is None else set()
        )
        for index, point in enumerate(self.points):
            if point.capture is not None and point.capture not in groups:
                named = ", ".join(sorted(groups)) or "none"
                yield (
                    ("points", index, "capture"),
                    f"match has no group named {point.capture!r} (it has: {named})",
                )
            if point.field is not None and not self.separator:
                yield ("points", index, "field"), "fields need the group's separator"


@dataclass(frozen=True, kw_only=True)
class SerialModule(ModuleConfig):
    connection: SerialConnection
    groups: tuple[SerialGroup, ...] = ()
