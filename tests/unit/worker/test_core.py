"""The worker's rules alone (plantd.worker._core): frames and ``now`` in, frames and requests out.

No sockets and no sleeping: each test plays the broker's side with the frames a socket would
have read, at the times it chooses.
"""

from __future__ import annotations

import json
import random

import pytest

from plantd._zmq import backoff_delays
from plantd.config import WorkerConfig
from plantd.errors import LocalProtocolError, ServiceError
from plantd.mdp import Version
from plantd.mdp._address import wrap_address
from plantd.worker._core import Reconnect, Session, SessionEnd, WorkerCore

W2 = b"MDPW02"
READY, REQUEST, PARTIAL, FINAL, HEARTBEAT, DISCONNECT = (bytes([n]) for n in range(1, 7))
INTERVAL, LIVENESS = 1.0, 3


def request(body: bytes = b"q", client: bytes = b"C") -> list[bytes]:
    return [W2, REQUEST, client, b"", body]


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def opened(now: float = 0.0, **kwargs: object) -> Session:
    session = Session("echo", heartbeat_interval=INTERVAL, liveness=LIVENESS, **kwargs)  # type: ignore[arg-type]
    assert session.open(now) == [W2, READY, b"echo"]
    return session


def test_heartbeats_go_out_every_interval_in_which_nothing_else_did() -> None:
    session = opened(0.0)
    assert session.deadline() == 1.0
    assert session.outgoing(0.5) == []
    assert session.outgoing(1.0) == [[W2, HEARTBEAT]]
    assert session.deadline() == 2.0
    session.received([W2, HEARTBEAT], 1.5)
    assert session.healthy
    assert session.outgoing(1.9) == []
    assert session.outgoing(2.0) == [[W2, HEARTBEAT]]
    assert session.ended is None


def test_a_broker_silent_past_the_liveness_window_is_lost() -> None:
    session = opened(0.0)
    session.received([W2, HEARTBEAT], 2.0)  # the window now ends at 2.0 + 3 × 1.0
    assert session.outgoing(4.9) == [[W2, HEARTBEAT]]
    assert session.ended is None
    assert session.deadline() == 5.0
    assert session.outgoing(5.0) == []
    assert session.ended is SessionEnd.LOST
    with pytest.raises(LocalProtocolError):
        session.outgoing(5.1)


def test_a_request_becomes_a_handler_call_and_its_partials_precede_its_final() -> None:
    wakes = Wakes()
    session = opened(wake=wakes)
    handed = session.received(request(b"hi"), 0.1)
    assert handed is not None
    assert (handed.client, handed.body, handed.principal) == (b"C", [b"hi"], None)
    assert session.busy
    handed.send_partial(b"1")
    handed.send_partial(b"2")
    assert wakes.count == 2  # the socket's owner is woken to send them
    assert session.outgoing(0.2, final=[b"done"]) == [
        [W2, PARTIAL, b"C", b"", b"1"],
        [W2, PARTIAL, b"C", b"", b"2"],
        [W2, FINAL, b"C", b"", b"done"],
    ]
    assert not session.busy
    assert session.outgoing(0.3) == []  # replies count as signs of life: no heartbeat yet


def test_a_long_handler_does_not_silence_the_heartbeat() -> None:
    session = opened(0.0)
    session.received(request(), 0.0)
    assert session.outgoing(1.0) == [[W2, HEARTBEAT]]
    assert session.busy


def test_stopping_waits_for_the_request_in_hand_then_says_goodbye() -> None:
    session = opened()
    assert session.farewell(False) is None
    session.received(request(), 0.1)
    assert session.farewell(True) is None  # the request in hand is finished first
    session.outgoing(0.2, final=[b"r"])
    assert session.farewell(True) == [W2, DISCONNECT]
    assert session.ended is SessionEnd.STOPPED
    session.lost()  # a goodbye that could not go changes nothing
    assert session.ended is SessionEnd.STOPPED


def test_disconnect_from_the_broker_ends_the_session() -> None:
    session = opened()
    assert session.received([W2, DISCONNECT], 0.1) is None
    assert session.ended is SessionEnd.DISCONNECTED
    assert not session.healthy


@pytest.mark.parametrize(
    "frames",
    [
        pytest.param([b"junk"], id="not-mdp"),
        pytest.param([W2, b"\x09"], id="unknown-command"),
        pytest.param([W2, REQUEST, b"C", b"x", b"q"], id="no-delimiter"),
        pytest.param([b"", b"MDPW01", b"\x04"], id="other-version"),
        pytest.param([W2, READY, b"echo"], id="ready-to-a-worker"),
    ],
)
def test_a_malformed_message_ends_the_session(
    frames: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    session = opened()
    assert session.received(frames, 0.1) is None
    assert session.ended is SessionEnd.PROTOCOL_ERROR
    assert "echo:" in caplog.text


def test_a_request_while_busy_is_a_protocol_error() -> None:
    session = opened()
    session.received(request(), 0.1)
    assert session.received(request(), 0.2) is None
    assert session.ended is SessionEnd.PROTOCOL_ERROR


def test_a_partial_for_an_ended_session_goes_nowhere() -> None:
    wakes = Wakes()
    session = opened(wake=wakes)
    handed = session.received(request(), 0.1)
    assert handed is not None
    session.lost()
    handed.send_partial(b"late")
    assert wakes.count == 0


def test_the_caller_is_read_from_the_address_only_under_curve() -> None:
    address = wrap_address(b"\x00ab", "alice")
    plain = opened().received(request(client=address), 0.1)
    secured = opened(secured=True).received(request(client=address), 0.1)
    assert plain is not None
    assert plain.principal is None
    assert secured is not None
    assert secured.principal == "alice"
    assert secured.client == address  # handed back untouched with the reply


def test_mdp01_framing() -> None:
    v1 = Session("echo", heartbeat_interval=INTERVAL, liveness=LIVENESS, version=Version.V1)
    assert v1.open(0.0) == [b"", b"MDPW01", READY, b"echo"]
    assert v1.received([b"", b"MDPW01", REQUEST, b"C", b"", b"q"], 0.1) is not None
    assert v1.outgoing(0.2, final=[b"r"]) == [[b"", b"MDPW01", b"\x03", b"C", b"", b"r"]]


def ended(end: SessionEnd, *, healthy: bool = False) -> Session:
    session = opened()
    if healthy:
        session.received([W2, HEARTBEAT], 0.1)
    session.ended = end
    return session


def test_reconnect_waits_only_after_sessions_the_broker_ended_unhealthy() -> None:
    expected = backoff_delays(0.5, 2.0, random.Random(7))
    reconnect = Reconnect("echo", 0.5, 2.0, random.Random(7))
    assert reconnect.after(ended(SessionEnd.STOPPED)) is None
    # Silence already lasted the liveness window: register again at once.
    assert reconnect.after(ended(SessionEnd.LOST)) == 0.0
    assert reconnect.after(ended(SessionEnd.DISCONNECTED)) == next(expected)
    assert reconnect.after(ended(SessionEnd.PROTOCOL_ERROR)) == next(expected)
    third = reconnect.after(ended(SessionEnd.DISCONNECTED))
    assert third == next(expected)
    assert third is not None
    assert 1.0 <= third <= 2.0  # doubled twice, capped at 2.0, jittered down to half


def test_a_healthy_session_resets_the_backoff() -> None:
    reconnect = Reconnect("echo", 0.5, 4.0, random.Random(1))
    for _ in range(4):
        reconnect.after(ended(SessionEnd.DISCONNECTED))
    assert reconnect.after(ended(SessionEnd.DISCONNECTED, healthy=True)) == 0.0
    delay = reconnect.after(ended(SessionEnd.DISCONNECTED))
    assert delay is not None
    assert 0.25 <= delay <= 0.5


def test_reconnect_refuses_a_session_that_has_not_ended() -> None:
    with pytest.raises(LocalProtocolError):
        Reconnect("echo", 0.1, 1.0).after(opened())


def test_the_worker_core_counts_sessions_and_takes_its_timing_from_config() -> None:
    config = WorkerConfig(heartbeat_interval=0.5, heartbeat_liveness=4)
    core: WorkerCore[object] = WorkerCore.from_config("tcp://b:1", "echo", object(), config)
    assert (core.heartbeat_interval, core.liveness) == (0.5, 4)
    session = core._new_session(secured=False, wake=Wakes())
    assert core.sessions == 1
    assert session.send_window == 2.0


def test_a_failed_handler_becomes_an_error_reply(caplog: pytest.LogCaptureFixture) -> None:
    core: WorkerCore[object] = WorkerCore("tcp://b:1", "echo", object())
    try:
        raise ValueError("bad input")
    except ValueError as exc:
        body = core._failure_reply(exc)
    reply = json.loads(body[0])
    assert reply == {"ok": False, "error": {"code": "internal", "message": "ValueError: bad input"}}
    assert "handler failed" in caplog.text  # a bug: logged with its traceback
    caplog.clear()
    try:
        raise ServiceError("bad_request", "no")
    except ServiceError as exc:
        core._failure_reply(exc)
    assert "handler failed" not in caplog.text  # an answer the service meant to give
