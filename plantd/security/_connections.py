"""Which connections each principal holds, so that revoking its key cuts them at once.

ZeroMQ has no call to close one peer's connection on a ROUTER, XSUB or XPUB socket. Every
message does carry the file descriptor it came from (the ``SRCFD`` property) and, under CURVE,
the principal (``User-Id``); so the socket's owner notes descriptor → principal as messages
arrive, and on revocation shuts those descriptors down (``shutdown(2)``, not ``close``: libzmq
owns them, sees the end of the stream and drops the connection itself; the peer's reconnection
then meets the ZAP handler, which refuses it).

Two gaps, and how they are closed:

- a revoked principal's connection that has sent nothing yet is not noted: the owner also cuts
  the connection of any message whose principal is no longer admitted (:func:`is_admitted`
  is a dict lookup), so it goes at its first word;
- a descriptor may have been closed, and its number reused by a newer connection, since it was
  noted: such a connection is cut by mistake only if it has not spoken since (speaking would
  have noted its own principal), and then it simply reconnects — its key is still good.

Only the thread that owns the socket calls these methods.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable, Collection
from typing import cast

import zmq

__all__ = ["Connections", "peer_address", "sender_principal"]

log = logging.getLogger(__name__)

_SRCFD = int(zmq.SRCFD)


def _socket_on(fd: int) -> socket.socket | None:
    """A socket object on a duplicate of ``fd`` (closing it leaves ``fd`` open); None if
    ``fd`` is not a socket any more."""
    try:
        duplicate = os.dup(fd)
    except OSError:
        return None
    try:
        return socket.socket(fileno=duplicate)
    except OSError:
        os.close(duplicate)
        return None


def peer_address(fd: int) -> str:
    """``host:port`` (or the ipc path) of the peer on ``fd``; empty if unknown."""
    sock = _socket_on(fd)
    if sock is None:
        return ""
    with sock:
        try:
            peer = sock.getpeername()
        except OSError:
            return ""
    if isinstance(peer, tuple):
        return f"{peer[0]}:{peer[1]}"
    return str(peer) if peer else ""


class Connections:
    """Descriptor → principal for the connections of one or more sockets."""

    def __init__(self) -> None:
        self._by_fd: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._by_fd)

    def seen(self, fd: int, principal: str) -> None:
        """A message from ``principal`` arrived on ``fd``."""
        self._by_fd[fd] = principal

    def cut(self, principals: Collection[str]) -> int:
        """Shut down every connection of ``principals``; returns how many were cut."""
        cut = 0
        for fd, principal in list(self._by_fd.items()):
            if principal in principals:
                del self._by_fd[fd]
                cut += self.cut_fd(fd, principal)
        return cut

    def cut_fd(self, fd: int, principal: str) -> int:
        """Shut down the connection on ``fd`` (1), unless it is no socket any more (0)."""
        self._by_fd.pop(fd, None)
        peer = peer_address(fd)
        sock = _socket_on(fd)
        if sock is None:
            return 0
        with sock, contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
            log.warning("cut the connection of %s from %s: its key was revoked", principal, peer)
            return 1
        return 0


def sender_principal(
    frame: zmq.Frame,
    connections: Connections,
    in_process: str,
    is_admitted: Callable[[str], bool],
) -> str | None:
    """The principal that sent ``frame`` (its User-Id), noting its connection, or None when
    that principal is no longer admitted (its connection is then cut, and the message must be
    dropped). A frame without a User-Id came over inproc, which has no handshake: only code in
    this process can have sent it, so it is ``in_process``."""
    try:
        principal = cast(str, frame.get("User-Id"))
    except zmq.ZMQError:
        return in_process
    fd: int = frame.get(_SRCFD)
    if not is_admitted(principal):
        connections.cut_fd(fd, principal)
        return None
    connections.seen(fd, principal)
    return principal
