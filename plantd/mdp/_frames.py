"""The MDP codec: frames to messages and back, for MDP/0.2 (RFC 18) and MDP/0.1 (RFC 7).

Wire format (the ROUTER identity frame is not shown; "." is an empty frame):

    MDP/0.2 client   REQUEST  MDPC02 0x01 service body+        (client → broker)
                     PARTIAL  MDPC02 0x02 service body+        (broker → client)
                     FINAL    MDPC02 0x03 service body+        (broker → client)
    MDP/0.2 worker   READY      MDPW02 0x01 service
                     REQUEST    MDPW02 0x02 client . body+    (broker → worker)
                     PARTIAL    MDPW02 0x03 client . body+    (worker → broker)
                     FINAL      MDPW02 0x04 client . body+    (worker → broker)
                     HEARTBEAT  MDPW02 0x05
                     DISCONNECT MDPW02 0x06
    MDP/0.1 client   REQUEST  . MDPC01 service body+
                     REPLY    . MDPC01 service body+
    MDP/0.1 worker   READY      . MDPW01 0x01 service
                     REQUEST    . MDPW01 0x02 client . body+
                     REPLY      . MDPW01 0x03 client . body+   (decoded as a final reply)
                     HEARTBEAT  . MDPW01 0x04
                     DISCONNECT . MDPW01 0x05

The two versions differ in command numbering, so a message is always read under the version its
header names. Bodies are opaque and carry at least one frame. Service names are 1–255 bytes of
printable ASCII without spaces. Anything else raises :class:`RemoteProtocolError` naming what was
wrong; nothing here does I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Final

from plantd.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "CLIENT_V1",
    "CLIENT_V2",
    "MAX_SERVICE_NAME",
    "WORKER_V1",
    "WORKER_V2",
    "ClientReply",
    "ClientRequest",
    "Disconnect",
    "Heartbeat",
    "Message",
    "Version",
    "WorkerReady",
    "WorkerReply",
    "WorkerRequest",
    "decode",
    "encode",
    "is_valid_service_name",
]

CLIENT_V2: Final = b"MDPC02"
WORKER_V2: Final = b"MDPW02"
CLIENT_V1: Final = b"MDPC01"
WORKER_V1: Final = b"MDPW01"
MAX_SERVICE_NAME: Final = 255


class Version(Enum):
    """The MDP sub-protocol revision a peer speaks."""

    V1 = 1  # RFC 7, MDP/0.1
    V2 = 2  # RFC 18, MDP/0.2


# Command bytes per (role, version). Client commands exist only in 0.2; 0.1 clients have none.
_C2_REQUEST, _C2_PARTIAL, _C2_FINAL = b"\x01", b"\x02", b"\x03"
_W2 = {
    "ready": b"\x01",
    "request": b"\x02",
    "partial": b"\x03",
    "final": b"\x04",
    "heartbeat": b"\x05",
    "disconnect": b"\x06",
}
_W1 = {
    "ready": b"\x01",
    "request": b"\x02",
    "reply": b"\x03",
    "heartbeat": b"\x04",
    "disconnect": b"\x05",
}


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """A client asks ``service`` to handle ``body``."""

    version: Version
    service: bytes
    body: list[bytes]


@dataclass(frozen=True, slots=True)
class ClientReply:
    """The broker answers a client; ``final`` is False for an MDP/0.2 PARTIAL."""

    version: Version
    service: bytes
    body: list[bytes]
    final: bool = True


@dataclass(frozen=True, slots=True)
class WorkerReady:
    """A worker registers for ``service``."""

    version: Version
    service: bytes


@dataclass(frozen=True, slots=True)
class WorkerRequest:
    """The broker hands a worker the request of ``client``."""

    version: Version
    client: bytes
    body: list[bytes]


@dataclass(frozen=True, slots=True)
class WorkerReply:
    """A worker answers ``client``; ``final`` is False for an MDP/0.2 PARTIAL."""

    version: Version
    client: bytes
    body: list[bytes]
    final: bool = True


@dataclass(frozen=True, slots=True)
class Heartbeat:
    version: Version


@dataclass(frozen=True, slots=True)
class Disconnect:
    version: Version


Message = (
    ClientRequest | ClientReply | WorkerReady | WorkerRequest | WorkerReply | Heartbeat | Disconnect
)


_SERVICE_NAME = re.compile(rb"[\x21-\x7e]{1,%d}" % MAX_SERVICE_NAME)


def is_valid_service_name(name: bytes) -> bool:
    """Printable ASCII without spaces, 1–255 bytes."""
    return _SERVICE_NAME.fullmatch(name) is not None


def _service(frame: bytes) -> bytes:
    if not is_valid_service_name(frame):
        raise RemoteProtocolError(
            f"service name must be 1-{MAX_SERVICE_NAME} printable ASCII bytes without spaces, "
            f"got {frame[:40]!r}"
        )
    return frame


def _envelope(version: Version, frames: list[bytes], command: str) -> tuple[bytes, list[bytes]]:
    """Split ``client . body+`` (the tail of REQUEST/PARTIAL/FINAL/REPLY to or from a worker)."""
    if len(frames) < 3:
        raise RemoteProtocolError(
            f"worker {command} needs a client address, an empty delimiter and a body, "
            f"got {len(frames)} frame(s)"
        )
    client, delimiter = frames[0], frames[1]
    if not client:
        raise RemoteProtocolError(f"worker {command} has an empty client address")
    if delimiter:
        raise RemoteProtocolError(f"worker {command}: the frame after the client must be empty")
    return client, frames[2:]


def decode(frames: list[bytes]) -> Message:
    """Read one MDP message (without its ROUTER identity frame).

    Accepts every command of both sub-protocols in both versions, in either direction; the
    caller decides whether a command is expected where it arrived.
    """
    if not frames:
        raise RemoteProtocolError("empty message")
    header = frames[0]
    if header == CLIENT_V2:
        return _decode_client_v2(frames)
    if header == WORKER_V2:
        return _decode_worker(Version.V2, frames)
    if header == b"" and len(frames) > 1:
        header = frames[1]
        if header == CLIENT_V1:
            return _decode_client_v1(frames)
        if header == WORKER_V1:
            return _decode_worker(Version.V1, frames[1:])
    raise RemoteProtocolError(f"unknown protocol header {header[:16]!r}")


def _decode_client_v2(frames: list[bytes]) -> Message:
    if len(frames) < 4:
        raise RemoteProtocolError(
            f"MDPC02 command needs header, command, service and a body, got {len(frames)} frame(s)"
        )
    command, service, body = frames[1], _service(frames[2]), frames[3:]
    if command == _C2_REQUEST:
        return ClientRequest(Version.V2, service, body)
    if command == _C2_PARTIAL:
        return ClientReply(Version.V2, service, body, final=False)
    if command == _C2_FINAL:
        return ClientReply(Version.V2, service, body, final=True)
    raise RemoteProtocolError(f"unknown MDPC02 command {command[:8]!r}")


def _decode_client_v1(frames: list[bytes]) -> Message:
    # RFC 7 uses the same frames for REQUEST and REPLY; the direction tells them apart. We
    # decode as a request: a broker only ever receives them, a client reads replies itself.
    if len(frames) < 4:
        raise RemoteProtocolError(
            f"MDPC01 message needs ., header, service and a body, got {len(frames)} frame(s)"
        )
    return ClientRequest(Version.V1, _service(frames[2]), frames[3:])


def _decode_worker(version: Version, frames: list[bytes]) -> Message:
    """``frames`` starts at the header (the 0.1 leading empty frame already removed)."""
    if len(frames) < 2:
        raise RemoteProtocolError(f"{frames[0].decode()} message without a command")
    table = _W2 if version is Version.V2 else _W1
    command, rest = frames[1], frames[2:]
    if command == table["ready"]:
        if len(rest) != 1:
            raise RemoteProtocolError(f"READY takes exactly one service frame, got {len(rest)}")
        return WorkerReady(version, _service(rest[0]))
    if command == table["heartbeat"] or command == table["disconnect"]:
        if rest:
            raise RemoteProtocolError(f"HEARTBEAT/DISCONNECT take no frames, got {len(rest)}")
        kind = Heartbeat if command == table["heartbeat"] else Disconnect
        return kind(version)
    if command == table["request"]:
        client, body = _envelope(version, rest, "REQUEST")
        return WorkerRequest(version, client, body)
    if version is Version.V2 and command in (_W2["partial"], _W2["final"]):
        client, body = _envelope(version, rest, "reply")
        return WorkerReply(version, client, body, final=command == _W2["final"])
    if version is Version.V1 and command == _W1["reply"]:
        client, body = _envelope(version, rest, "REPLY")
        return WorkerReply(version, client, body, final=True)
    raise RemoteProtocolError(f"unknown {frames[0].decode()} command {command[:8]!r}")


def encode(message: Message) -> list[bytes]:
    """Frames for ``message`` (without a ROUTER identity frame)."""
    v2 = message.version is Version.V2
    match message:
        case ClientRequest(service=service, body=body):
            _check_body(body)
            return (
                [CLIENT_V2, _C2_REQUEST, service, *body] if v2 else [b"", CLIENT_V1, service, *body]
            )
        case ClientReply(service=service, body=body, final=final):
            _check_body(body)
            if v2:
                return [CLIENT_V2, _C2_FINAL if final else _C2_PARTIAL, service, *body]
            if not final:
                raise LocalProtocolError("MDP/0.1 has no PARTIAL reply")
            return [b"", CLIENT_V1, service, *body]
        case WorkerReady(service=service):
            return _worker(message.version, "ready", [service])
        case WorkerRequest(client=client, body=body):
            _check_body(body)
            return _worker(message.version, "request", [client, b"", *body])
        case WorkerReply(client=client, body=body, final=final):
            _check_body(body)
            if v2:
                return _worker(
                    message.version, "final" if final else "partial", [client, b"", *body]
                )
            if not final:
                raise LocalProtocolError("MDP/0.1 has no PARTIAL reply")
            return _worker(message.version, "reply", [client, b"", *body])
        case Heartbeat():
            return _worker(message.version, "heartbeat", [])
        case Disconnect():
            return _worker(message.version, "disconnect", [])
    raise LocalProtocolError(f"not an MDP message: {message!r}")  # pragma: no cover


def _worker(version: Version, command: str, rest: list[bytes]) -> list[bytes]:
    if version is Version.V2:
        return [WORKER_V2, _W2[command], *rest]
    return [b"", WORKER_V1, _W1[command], *rest]


def _check_body(body: list[bytes]) -> None:
    if not body:
        raise LocalProtocolError("an MDP body needs at least one frame")
