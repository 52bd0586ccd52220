"""Refused handshakes, from a socket's monitor events, for the audit trail.

The ZAP handler sees only the handshakes that get as far as asking it (a CURVE client with a
key it does not admit), and audits those itself. Everything else libzmq refuses on its own and
tells only the socket monitor: a NULL or PLAIN peer (``HANDSHAKE_FAILED_PROTOCOL``, mechanism
mismatch), raw bytes that break the ZMTP handshake, a client holding the wrong broker key
(``HANDSHAKE_FAILED_PROTOCOL`` or ``…_NO_DETAIL``).

A failure event does not say which connection failed, but libzmq's I/O thread reports the
failure and then, at once, that connection's ``DISCONNECTED`` (which carries its descriptor);
so each failure is recorded when the next disconnection arrives, with the peer address noted
when that descriptor was accepted. Bytes that are not ZMTP at all (no greeting) end without any
handshake event and are not recorded: nothing of them reached plantd.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import zmq
from zmq.utils.monitor import parse_monitor_message

from plantd.security._audit_event import UNKNOWN_PRINCIPAL, AuditEvent
from plantd.security._connections import peer_address

__all__ = ["MONITORED_EVENTS", "HandshakeMonitor", "drain_monitor"]

MONITORED_EVENTS = (
    zmq.EVENT_ACCEPTED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
)
_PEERS_LIMIT = 4096


def _protocol_error(value: int) -> str:
    try:
        name = zmq.Event(value).name
    except ValueError:
        name = None
    if not name:
        return f"error {value:#x}"
    return name.removeprefix("PROTOCOL_ERROR_").lower().replace("_", " ")


class HandshakeMonitor:
    """Feed it one socket's monitor events; it returns the audit events of refusals."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._peers: OrderedDict[int, str] = OrderedDict()  # fd -> peer, since ACCEPTED
        self._failure: str | None = None  # reported, waiting for its DISCONNECTED
        self.refused = 0

    def event(self, event: int, value: int) -> AuditEvent | None:
        if event == zmq.EVENT_ACCEPTED:
            if len(self._peers) >= _PEERS_LIMIT:
                self._peers.popitem(last=False)
            self._peers[value] = peer_address(value)
        elif event == zmq.EVENT_DISCONNECTED:
            peer = self._peers.pop(value, "")
            if self._failure is not None:
                why, self._failure = self._failure, None
                self.refused += 1
                return AuditEvent(UNKNOWN_PRINCIPAL, "connect", self.endpoint, "denied", why, peer)
        elif event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            self._failure = f"the handshake broke the protocol: {_protocol_error(value)}"
        elif event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            self._failure = "the handshake failed (the peer left, or holds a wrong broker key)"
        return None


def drain_monitor(
    monitor: zmq.Socket[bytes],
    handshakes: HandshakeMonitor,
    on_audit: Callable[[AuditEvent], None],
) -> None:
    """Read every event waiting on a monitor socket; refusals go to ``on_audit``."""
    while monitor.poll(0, zmq.POLLIN):
        message = parse_monitor_message(monitor.recv_multipart())
        refusal = handshakes.event(int(message["event"]), int(message["value"]))
        if refusal is not None:
            on_audit(refusal)
