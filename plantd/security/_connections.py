"""Which TCP connections each principal holds, so that revoking its key cuts them at once.

ZeroMQ has no call to close one peer's connection on a ROUTER, XSUB or XPUB socket. Every
message does carry the file descriptor it came from (the ``SRCFD`` property) and, under CURVE,
the principal (``User-Id``); so the socket's owner notes each (descriptor → principal, peer
address) pair as messages arrive, and on revocation shuts those descriptors down
(``shutdown(2)``, not ``close``: libzmq owns them, sees the end of the stream and drops the
connection itself; the peer's reconnection then meets the ZAP handler, which refuses it).

A descriptor may have been closed and its number reused by a newer connection since it was
noted, so before cutting one the peer address is checked again: a descriptor whose peer is not
the one noted is left alone. Only the thread that owns the socket calls these methods.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Collection
from typing import cast

import zmq

__all__ = ["Connections", "peer_address", "sender_principal"]

log = logging.getLogger(__name__)


def _peer(fd: int) -> object:
    """The peer address of descriptor ``fd`` (None if it is not a connected socket)."""
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            return sock.getpeername()
    except OSError:
        return None


def peer_address(fd: int) -> str:
    """``host:port`` (or the ipc path) of the peer on ``fd``; empty if unknown."""
    peer = _peer(fd)
    if isinstance(peer, tuple):
        return f"{peer[0]}:{peer[1]}"
    return str(peer) if peer else ""


class Connections:
    """Descriptor → (principal, peer) for the connections of one or more sockets."""

    def __init__(self) -> None:
        self._by_fd: dict[int, tuple[str, object]] = {}

    def __len__(self) -> int:
        return len(self._by_fd)

    def seen(self, fd: int, principal: str) -> None:
        """A message from ``principal`` arrived on ``fd`` (cheap when already known)."""
        known = self._by_fd.get(fd)
        if known is None or known[0] != principal:
            self._by_fd[fd] = (principal, _peer(fd))

    def cut(self, principals: Collection[str]) -> int:
        """Shut down every connection of ``principals``; returns how many were cut."""
        cut = 0
        for fd, (principal, peer) in list(self._by_fd.items()):
            if principal not in principals:
                continue
            del self._by_fd[fd]
            if peer is None or _peer(fd) != peer:
                continue  # closed since, perhaps reused by another connection
            with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
                cut += 1
                log.warning(
                    "cut the connection of %s from %s: its key was revoked", principal, peer
                )
        return cut


_SRCFD = int(zmq.SRCFD)


def sender_principal(frame: zmq.Frame, connections: Connections, in_process: str) -> str:
    """The principal that sent ``frame`` (its User-Id), noting its connection in
    ``connections``. A frame without one came over inproc, which has no handshake: only code in
    this process can have sent it, so it is ``in_process``."""
    try:
        principal = cast(str, frame.get("User-Id"))
    except zmq.ZMQError:
        return in_process
    connections.seen(frame.get(_SRCFD), principal)
    return principal
