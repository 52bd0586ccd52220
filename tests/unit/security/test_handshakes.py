"""Refused handshakes from monitor events (plantd.security._handshakes)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import zmq

from plantd.security import AuditEvent, generate
from plantd.security._handshakes import MONITORED_EVENTS, HandshakeMonitor, drain_monitor

pytestmark = pytest.mark.timeout(30)

ENDPOINT = "tcp://0.0.0.0:5555"
MISMATCH = zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH


def test_each_failure_is_one_refusal() -> None:
    monitor = HandshakeMonitor(ENDPOINT)
    assert monitor.event(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, MISMATCH) == AuditEvent(
        "-",
        "connect",
        ENDPOINT,
        "denied",
        "the handshake broke the protocol: zmtp mechanism mismatch",
    )
    event = monitor.event(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 0)
    assert event is not None
    assert event.detail.startswith("the handshake failed")
    assert monitor.refused == 2


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (zmq.PROTOCOL_ERROR_ZMTP_UNEXPECTED_COMMAND, "zmtp unexpected command"),
        (zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC, "zmtp cryptographic"),
        (zmq.PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_HELLO, "zmtp malformed command hello"),
        (zmq.PROTOCOL_ERROR_ZAP_BAD_VERSION, "zap bad version"),
    ],
)
def test_protocol_errors_are_named(value: int, why: str) -> None:
    event = HandshakeMonitor(ENDPOINT).event(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, value)
    assert event is not None
    assert event.detail == f"the handshake broke the protocol: {why}"
    assert event.source == ""  # libzmq does not say who it was


def test_other_events_change_nothing() -> None:
    monitor = HandshakeMonitor(ENDPOINT)
    for event in (
        zmq.EVENT_LISTENING,
        zmq.EVENT_ACCEPTED,
        zmq.EVENT_HANDSHAKE_SUCCEEDED,
        zmq.EVENT_HANDSHAKE_FAILED_AUTH,  # the ZAP handler audits these itself
        zmq.EVENT_DISCONNECTED,
        zmq.EVENT_CLOSED,
    ):
        assert monitor.event(event, 3) is None
    assert monitor.refused == 0


@pytest.fixture
def curve_server() -> Iterator[tuple[zmq.Socket[bytes], zmq.Socket[bytes], str]]:
    """A CURVE ROUTER on loopback, the PAIR socket reading its monitor, and its endpoint."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        server = context.socket(zmq.ROUTER)
        server.linger = 0
        server.curve_server = True
        server.curve_secretkey = generate().secret or b""
        server.bind("tcp://127.0.0.1:*")
        server.monitor("inproc://handshakes", MONITORED_EVENTS)
        monitor = context.socket(zmq.PAIR)
        monitor.linger = 0
        monitor.connect("inproc://handshakes")
        yield server, monitor, server.getsockopt_string(zmq.LAST_ENDPOINT)
        server.disable_monitor()
    finally:
        context.destroy(linger=0)


def refusals_of(monitor: zmq.Socket[bytes], endpoint: str) -> list[AuditEvent]:
    """Drain ``monitor`` until a refusal is recorded (10 s at most)."""
    handshakes = HandshakeMonitor(endpoint)
    refusals: list[AuditEvent] = []
    deadline = time.monotonic() + 10
    while not refusals and time.monotonic() < deadline:
        if monitor.poll(100, zmq.POLLIN):
            drain_monitor(monitor, handshakes, refusals.append)
    return refusals


def test_a_null_client_on_a_curve_socket_is_recorded_from_real_monitor_events(
    curve_server: tuple[zmq.Socket[bytes], zmq.Socket[bytes], str],
) -> None:
    server, monitor, endpoint = curve_server
    client = server.context.socket(zmq.DEALER)  # NULL mechanism
    client.linger = 0
    try:
        client.connect(endpoint)
        refusals = refusals_of(monitor, endpoint)
    finally:
        client.close(linger=0)
    assert refusals, "no refusal recorded within 10 s"
    event = refusals[0]
    assert (event.principal, event.action, event.target, event.result) == (
        "-",
        "connect",
        endpoint,
        "denied",
    )
    assert event.detail == "the handshake broke the protocol: zmtp mechanism mismatch"


# A ZMTP 3.0 greeting asking for the NULL mechanism, as a client sends it.
NULL_GREETING = b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0") + b"\0" * 32


def test_raw_bytes_with_a_null_greeting_are_one_refusal(
    curve_server: tuple[zmq.Socket[bytes], zmq.Socket[bytes], str],
) -> None:
    _, monitor, endpoint = curve_server
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(NULL_GREETING)
        while raw.recv(4096):  # until the broker hangs up
            pass
    refusals = refusals_of(monitor, endpoint)
    assert [event.detail for event in refusals] == [
        "the handshake broke the protocol: zmtp mechanism mismatch"
    ]
