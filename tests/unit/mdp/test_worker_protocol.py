"""The worker and client state machines (see the rules at the top of _worker.py, _client.py)."""

from __future__ import annotations

import pytest

from plantd.errors import LocalProtocolError, RemoteProtocolError
from plantd.mdp import (
    ClientProtocol,
    Disconnect,
    RequestReceived,
    Version,
    WorkerProtocol,
    WorkerState,
)

W2 = b"MDPW02"


def make_worker(**kwargs: object) -> WorkerProtocol:
    return WorkerProtocol(b"echo", heartbeat_interval=1.0, liveness=3, **kwargs)  # type: ignore[arg-type]


def test_connect_sends_ready() -> None:
    worker = make_worker()
    assert worker.state is WorkerState.DISCONNECTED
    assert worker.connect(0.0) == [W2, b"\x01", b"echo"]
    assert worker.state is WorkerState.IDLE
    assert make_worker(version=Version.V1).connect(0.0) == [b"", b"MDPW01", b"\x01", b"echo"]


def test_request_then_partial_then_final() -> None:
    worker = make_worker()
    worker.connect(0.0)
    event = worker.receive([W2, b"\x02", b"C", b"", b"q"], 0.1)
    assert event == RequestReceived(b"C", [b"q"])
    assert worker.state is WorkerState.BUSY
    assert worker.reply([b"p"], 0.2, final=False) == [W2, b"\x03", b"C", b"", b"p"]
    assert worker.state is WorkerState.BUSY
    assert worker.reply([b"f"], 0.3) == [W2, b"\x04", b"C", b"", b"f"]
    assert worker.state is WorkerState.IDLE


def test_reply_without_a_request_is_our_mistake() -> None:
    worker = make_worker()
    worker.connect(0.0)
    with pytest.raises(LocalProtocolError):
        worker.reply([b"x"], 0.0)


def test_a_second_request_while_busy_is_the_brokers_mistake() -> None:
    worker = make_worker()
    worker.connect(0.0)
    worker.receive([W2, b"\x02", b"C", b"", b"q"], 0.0)
    with pytest.raises(RemoteProtocolError, match="while we were busy"):
        worker.receive([W2, b"\x02", b"D", b"", b"q"], 0.0)


def test_heartbeats_go_out_when_nothing_else_did_even_while_busy() -> None:
    worker = make_worker()
    worker.connect(0.0)
    assert worker.tick(0.5).send == []
    assert worker.tick(1.0).send == [[W2, b"\x05"]]
    worker.receive([W2, b"\x02", b"C", b"", b"q"], 1.1)  # busy from now on
    assert worker.tick(1.9).send == []
    assert worker.tick(2.0).send == [[W2, b"\x05"]]
    worker.reply([b"p"], 2.5, final=False)  # a PARTIAL counts as sending
    assert worker.tick(3.0).send == []


def test_a_silent_broker_is_declared_lost() -> None:
    worker = make_worker()
    worker.connect(0.0)
    worker.receive([W2, b"\x05"], 1.0)  # any message proves the broker alive
    assert not worker.tick(3.9).broker_lost
    result = worker.tick(4.0)
    assert result.broker_lost
    assert worker.state is WorkerState.DISCONNECTED
    assert worker.next_tick() == 4.0


def test_disconnect_from_the_broker() -> None:
    worker = make_worker()
    worker.connect(0.0)
    assert isinstance(worker.receive([W2, b"\x06"], 0.0), Disconnect)
    assert worker.state is WorkerState.DISCONNECTED
    assert worker.tick(100.0).broker_lost is False  # nothing to do until connect() again


def test_messages_in_the_other_version_are_refused() -> None:
    worker = make_worker()
    worker.connect(0.0)
    with pytest.raises(RemoteProtocolError, match=r"MDP/0\.1"):
        worker.receive([b"", b"MDPW01", b"\x04"], 0.0)


def test_worker_names_are_checked_locally() -> None:
    with pytest.raises(LocalProtocolError, match="mmi"):
        WorkerProtocol(b"mmi.mine", heartbeat_interval=1, liveness=3)
    with pytest.raises(LocalProtocolError, match="invalid service name"):
        WorkerProtocol(b"has space", heartbeat_interval=1, liveness=3)


# -- client --------------------------------------------------------------------------------------


def test_client_request_and_streamed_reply() -> None:
    client = ClientProtocol()
    assert client.request(b"echo", [b"q"]) == [b"MDPC02", b"\x01", b"echo", b"q"]
    assert client.awaiting
    part = client.receive([b"MDPC02", b"\x02", b"echo", b"p"])
    assert (part.body, part.final, client.awaiting) == ([b"p"], False, True)
    done = client.receive([b"MDPC02", b"\x03", b"echo", b"f"])
    assert (done.body, done.final, client.awaiting) == ([b"f"], True, False)


def test_client_v1() -> None:
    client = ClientProtocol(Version.V1)
    assert client.request(b"echo", [b"q"]) == [b"", b"MDPC01", b"echo", b"q"]
    assert client.receive([b"", b"MDPC01", b"echo", b"r"]).final


@pytest.mark.parametrize(
    "frames",
    [
        [b"MDPC02", b"\x03", b"other", b"f"],  # wrong service
        [b"MDPC01", b"\x03", b"echo", b"f"],  # wrong header
        [b"MDPC02", b"\x01", b"echo", b"f"],  # a REQUEST is not a reply
        [b"MDPC02", b"\x03", b"echo"],  # no body
    ],
)
def test_client_refuses_replies_that_are_not_ours(frames: list[bytes]) -> None:
    client = ClientProtocol()
    client.request(b"echo", [b"q"])
    with pytest.raises(RemoteProtocolError):
        client.receive(frames)


def test_client_one_request_at_a_time_and_stale_replies() -> None:
    client = ClientProtocol()
    with pytest.raises(RemoteProtocolError, match="without an outstanding request"):
        client.receive([b"MDPC02", b"\x03", b"echo", b"late"])
    client.request(b"echo", [b"q"])
    with pytest.raises(LocalProtocolError, match="already outstanding"):
        client.request(b"echo", [b"q"])
    client.abandon()
    client.request(b"echo", [b"q2"])
