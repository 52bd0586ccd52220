"""Noticing that the broker refused this process's key, so that a socket can start again.

When the broker's ZAP handler refuses a CURVE client (its key was revoked, or rotated and the
socket still holds the old one, or it is not admitted yet), libzmq stops reconnecting that
socket for good. Clients and workers open fresh sockets on their own after a silence; the bus
publisher and subscriber keep one socket for their whole life, so they watch it with a
:class:`RefusalWatch` and rebuild it — with the key file's current key — when it is refused.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import zmq

__all__ = ["RefusalWatch"]

log = logging.getLogger(__name__)

_ids = itertools.count()
_REFUSED = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
)


class RefusalWatch:
    """Watches one CURVE client socket's handshakes; :meth:`refused` drains what happened."""

    def __init__(self, sock: Any) -> None:
        # The monitor is read without blocking from any code, asyncio or not, so it is a plain
        # socket of the same context, whatever kind ``sock`` is.
        self._sock = sock
        address = f"inproc://plantd-refusals-{next(_ids)}"
        sock.monitor(address, _REFUSED)
        self._monitor: zmq.Socket[bytes] | None = zmq.Context.instance().socket(zmq.PAIR)
        self._monitor.connect(address)

    def refused(self) -> bool:
        """True if a handshake was refused since the last call (never blocks)."""
        monitor = self._monitor
        if monitor is None:
            return False
        seen = False
        while monitor.poll(0, zmq.POLLIN):
            monitor.recv_multipart()
            seen = True
        return seen

    def close(self) -> None:
        if self._monitor is not None:
            self._sock.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None
