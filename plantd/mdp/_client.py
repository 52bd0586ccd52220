"""The client side of MDP as a sans-IO state machine: one request at a time per socket.

    READY --request()--> AWAITING --PARTIAL--> AWAITING --FINAL (or 0.1 REPLY)--> READY

Rules:
  R1  ``request`` is valid only when READY.
  R2  A reply must carry our header and the service we asked; anything else breaks the
      protocol (the I/O shell then drops the socket, as RFC 18 advises for a confused peer).
  R3  A reply while READY is stale (it belongs to an abandoned request) and is an error too.
"""

from __future__ import annotations

from dataclasses import dataclass

from plantd.errors import LocalProtocolError, RemoteProtocolError
from plantd.mdp._frames import (
    CLIENT_V1,
    CLIENT_V2,
    ClientRequest,
    Version,
    encode,
    is_valid_service_name,
)

__all__ = ["ClientProtocol", "ReplyReceived"]


@dataclass(frozen=True, slots=True)
class ReplyReceived:
    body: list[bytes]
    final: bool


class ClientProtocol:
    def __init__(self, version: Version = Version.V2) -> None:
        self.version = version
        self.service: bytes | None = None  # set while a request is outstanding

    @property
    def awaiting(self) -> bool:
        return self.service is not None

    def request(self, service: bytes, body: list[bytes]) -> list[bytes]:
        if self.service is not None:
            raise LocalProtocolError("a request is already outstanding on this client")
        if not is_valid_service_name(service):
            raise LocalProtocolError(
                f"invalid service name {service!r}: 1-255 printable ASCII bytes, no spaces"
            )
        frames = encode(ClientRequest(self.version, service, body))
        self.service = service
        return frames

    def receive(self, frames: list[bytes]) -> ReplyReceived:
        if self.service is None:
            raise RemoteProtocolError("reply without an outstanding request")
        if self.version is Version.V2:
            if len(frames) < 4 or frames[0] != CLIENT_V2 or frames[1] not in (b"\x02", b"\x03"):
                raise RemoteProtocolError(f"not an MDPC02 PARTIAL/FINAL: {frames[:3]!r}")
            final = frames[1] == b"\x03"
            service, body = frames[2], frames[3:]
        else:
            if len(frames) < 4 or frames[0] != b"" or frames[1] != CLIENT_V1:
                raise RemoteProtocolError(f"not an MDPC01 REPLY: {frames[:3]!r}")
            final = True
            service, body = frames[2], frames[3:]
        if service != self.service:
            raise RemoteProtocolError(f"reply for service {service!r}, expected {self.service!r}")
        if final:
            self.service = None
        return ReplyReceived(body, final)

    def abandon(self) -> None:
        """Forget the outstanding request (after a timeout the socket is replaced too)."""
        self.service = None
