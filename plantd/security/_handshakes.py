"""Refused handshakes, from a socket's monitor events, for the audit trail.

The ZAP handler sees only the handshakes that get as far as asking it (a CURVE client with a
key it does not admit), and audits those itself, with the peer's address. Everything else
libzmq refuses on its own and tells only the socket monitor: a NULL or PLAIN peer
(``HANDSHAKE_FAILED_PROTOCOL``, mechanism mismatch), raw bytes that break the ZMTP handshake, a
peer that leaves mid-handshake or holds the wrong broker key (``…_PROTOCOL``,
``…_NO_DETAIL``). Each such event is one refused connection. Its peer address is not known: the
events do not carry one, and by the time an event is read the connection is gone. Bytes that
are not ZMTP at all (no greeting) end without any handshake event and are not recorded:
nothing of them reached plantd.
"""

from __future__ import annotations

from collections.abc import Callable

import zmq
from zmq.utils.monitor import parse_monitor_message

from plantd.security._audit_event import UNKNOWN_PRINCIPAL, AuditEvent

__all__ = ["MONITORED_EVENTS", "HandshakeMonitor", "drain_monitor"]

MONITORED_EVENTS = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL


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
        self.refused = 0

    def event(self, event: int, value: int) -> AuditEvent | None:
        if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            why = f"the handshake broke the protocol: {_protocol_error(value)}"
        elif event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            why = "the handshake failed (the peer left, or holds a wrong broker key)"
        else:
            return None
        self.refused += 1
        return AuditEvent(UNKNOWN_PRINCIPAL, "connect", self.endpoint, "denied", why)


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
