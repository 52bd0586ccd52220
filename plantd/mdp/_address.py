"""The client address a worker sees: the client's routing id and, under CURVE, its principal.

MDP treats the client address in a worker REQUEST as opaque: the worker hands it back untouched
with its reply. Under CURVE the broker packs the caller's authenticated principal into it, so
that plantd workers can apply finer rules and audit who asked; any other MDP worker just
echoes it, and the frames stay exactly RFC 18's. The layout::

    [length of the routing id: 1 byte][routing id][principal, UTF-8]

(ZeroMQ routing ids are 1 to 255 bytes.) Without CURVE the address is the routing id alone.
"""

from __future__ import annotations

from plantd.errors import RemoteProtocolError

__all__ = ["unwrap_address", "wrap_address"]


def wrap_address(routing_id: bytes, principal: str) -> bytes:
    return bytes((len(routing_id),)) + routing_id + principal.encode()


def unwrap_address(address: bytes) -> tuple[bytes, str]:
    """(routing id, principal) from a wrapped address; RemoteProtocolError if it is not one."""
    if not address or len(address) < 1 + address[0] or address[0] == 0:
        raise RemoteProtocolError(f"not a client address with a principal: {address[:32]!r}")
    end = 1 + address[0]
    try:
        return address[1:end], address[end:].decode()
    except UnicodeDecodeError:
        raise RemoteProtocolError("the principal in the client address is not UTF-8") from None
