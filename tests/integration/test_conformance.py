"""RFC 18 (MDP/0.2), RFC 7 (MDP/0.1) and RFC 8 (MMI) against a real broker process.

Raw DEALER (and REQ) sockets send the exact frame tables of the RFCs; the broker's answers are
checked frame by frame. Nothing from plantd's own client or worker is used here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from tests.conftest import HEARTBEAT, Stack, make_stack

C2, W2, C1, W1 = b"MDPC02", b"MDPW02", b"MDPC01", b"MDPW01"
TIMEOUT_MS = 3000


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    the_stack = make_stack(Path(tmp_path_factory.mktemp("conformance")))
    the_stack.start_broker()
    yield the_stack
    for process in the_stack.processes:
        process.kill()


@pytest.fixture
def sockets(broker: Stack) -> Iterator[list[zmq.Socket[bytes]]]:
    opened: list[zmq.Socket[bytes]] = []
    yield opened
    for sock in opened:
        sock.close(linger=0)


def connect(
    broker: Stack,
    sockets: list[zmq.Socket[bytes]],
    kind: int = zmq.DEALER,
    identity: bytes | None = None,
) -> zmq.Socket[bytes]:
    sock = zmq.Context.instance().socket(kind)
    if identity:
        sock.identity = identity
    sock.linger = 0
    sock.connect(broker.endpoint)
    sockets.append(sock)
    return sock


def recv(sock: zmq.Socket[bytes], skip_heartbeats: bool = True) -> list[bytes]:
    while True:
        assert sock.poll(TIMEOUT_MS), "no answer from the broker"
        frames = sock.recv_multipart()
        heartbeat = frames in ([W2, b"\x05"], [b"", W1, b"\x04"])
        if not (skip_heartbeats and heartbeat):
            return frames


def nothing_arrives(sock: zmq.Socket[bytes], seconds: float = 0.3) -> bool:
    return not sock.poll(int(seconds * 1000))


def register(
    broker: Stack, sockets: list[zmq.Socket[bytes]], service: bytes, version: int = 2
) -> zmq.Socket[bytes]:
    worker = connect(broker, sockets)
    worker.send_multipart([W2, b"\x01", service] if version == 2 else [b"", W1, b"\x01", service])
    ask_mmi(broker, sockets, service)  # READY is processed before this returns
    return worker


def ask_mmi(broker: Stack, sockets: list[zmq.Socket[bytes]], service: bytes) -> bytes:
    client = connect(broker, sockets)
    client.send_multipart([C2, b"\x01", b"mmi.service", service])
    frames = recv(client)
    assert frames[:4] == [C2, b"\x03", b"mmi.service", *frames[3:4]]
    return frames[3]


# -- MDP/0.2 ----


def test_v2_request_partial_final(broker: Stack, sockets: list[zmq.Socket[bytes]]) -> None:
    worker = register(broker, sockets, b"conf.v2")
    client = connect(broker, sockets, identity=b"client-v2")
    client.send_multipart([C2, b"\x01", b"conf.v2", b"body-1", b"body-2"])
    assert recv(worker) == [W2, b"\x02", b"client-v2", b"", b"body-1", b"body-2"]
    worker.send_multipart([W2, b"\x03", b"client-v2", b"", b"part"])
    assert recv(client) == [C2, b"\x02", b"conf.v2", b"part"]
    worker.send_multipart([W2, b"\x04", b"client-v2", b"", b"done", b"!"])
    assert recv(client) == [C2, b"\x03", b"conf.v2", b"done", b"!"]
    assert nothing_arrives(client)


def test_v2_broker_heartbeats_an_idle_worker(
    broker: Stack, sockets: list[zmq.Socket[bytes]]
) -> None:
    worker = register(broker, sockets, b"conf.hb")
    assert worker.poll(int(HEARTBEAT * 4 * 1000))
    assert worker.recv_multipart() == [W2, b"\x05"]


def test_v2_worker_disconnect_unregisters(broker: Stack, sockets: list[zmq.Socket[bytes]]) -> None:
    worker = register(broker, sockets, b"conf.bye")
    assert ask_mmi(broker, sockets, b"conf.bye") == b"200"
    worker.send_multipart([W2, b"\x06"])
    assert ask_mmi(broker, sockets, b"conf.bye") == b"404"


@pytest.mark.parametrize(
    "frames",
    [
        pytest.param([W2, b"\x05"], id="heartbeat-before-ready"),
        pytest.param([W2, b"\x04", b"someone", b"", b"x"], id="final-before-ready"),
        pytest.param([W2, b"\x02", b"someone", b"", b"x"], id="request-from-a-worker"),
    ],
)
def test_v2_valid_but_unexpected_commands_get_disconnect(
    broker: Stack, sockets: list[zmq.Socket[bytes]], frames: list[bytes]
) -> None:
    peer = connect(broker, sockets)
    peer.send_multipart(frames)
    assert recv(peer) == [W2, b"\x06"]


def test_v2_ready_twice_gets_disconnect(broker: Stack, sockets: list[zmq.Socket[bytes]]) -> None:
    worker = register(broker, sockets, b"conf.twice")
    worker.send_multipart([W2, b"\x01", b"conf.twice"])
    assert recv(worker) == [W2, b"\x06"]
    assert ask_mmi(broker, sockets, b"conf.twice") == b"404"


def test_v2_mmi_namespace_is_refused_to_workers(
    broker: Stack, sockets: list[zmq.Socket[bytes]]
) -> None:
    worker = connect(broker, sockets)
    worker.send_multipart([W2, b"\x01", b"mmi.service"])
    assert recv(worker) == [W2, b"\x06"]


# -- MDP/0.1 ----


def test_v1_req_client_and_v1_worker(broker: Stack, sockets: list[zmq.Socket[bytes]]) -> None:
    worker = register(broker, sockets, b"conf.v1", version=1)
    client = connect(broker, sockets, kind=zmq.REQ)  # REQ adds and strips the empty frame
    client.send_multipart([C1, b"conf.v1", b"hello"])
    frames = recv(worker)
    assert frames[:3] == [b"", W1, b"\x02"]
    assert frames[4:] == [b"", b"hello"]
    worker.send_multipart([b"", W1, b"\x03", frames[3], b"", b"world"])
    assert recv(client) == [C1, b"conf.v1", b"world"]


def test_v1_worker_heartbeat_and_disconnect(
    broker: Stack, sockets: list[zmq.Socket[bytes]]
) -> None:
    worker = register(broker, sockets, b"conf.v1hb", version=1)
    assert worker.poll(int(HEARTBEAT * 4 * 1000))
    assert worker.recv_multipart() == [b"", W1, b"\x04"]
    worker.send_multipart([b"", W1, b"\x05"])
    assert ask_mmi(broker, sockets, b"conf.v1hb") == b"404"


def test_v1_heartbeat_before_ready_gets_v1_disconnect(
    broker: Stack, sockets: list[zmq.Socket[bytes]]
) -> None:
    peer = connect(broker, sockets)
    peer.send_multipart([b"", W1, b"\x04"])
    assert recv(peer, skip_heartbeats=False) == [b"", W1, b"\x05"]


def test_v1_client_with_v2_worker_gets_one_reply(
    broker: Stack, sockets: list[zmq.Socket[bytes]]
) -> None:
    worker = register(broker, sockets, b"conf.mixed")
    client = connect(broker, sockets)  # a DEALER speaking 0.1 adds the empty frame itself
    client.send_multipart([b"", C1, b"conf.mixed", b"q"])
    frames = recv(worker)
    client_id = frames[2]
    worker.send_multipart([W2, b"\x03", client_id, b"", b"a"])
    worker.send_multipart([W2, b"\x04", client_id, b"", b"b"])
    assert recv(client) == [b"", C1, b"conf.mixed", b"a", b"b"]


# -- MMI (RFC 8 and extensions) ----


def test_mmi_service_and_501(broker: Stack, sockets: list[zmq.Socket[bytes]]) -> None:
    assert ask_mmi(broker, sockets, b"conf.nobody") == b"404"
    register(broker, sockets, b"conf.somebody")
    assert ask_mmi(broker, sockets, b"conf.somebody") == b"200"
    client = connect(broker, sockets)
    client.send_multipart([C2, b"\x01", b"mmi.unknown", b""])
    assert recv(client) == [C2, b"\x03", b"mmi.unknown", b"501"]


def test_mmi_over_mdp01(broker: Stack, sockets: list[zmq.Socket[bytes]]) -> None:
    client = connect(broker, sockets, kind=zmq.REQ)
    client.send_multipart([C1, b"mmi.service", b"conf.nobody-v1"])
    assert recv(client) == [C1, b"mmi.service", b"404"]


def test_mmi_extensions_answer_json(broker: Stack, sockets: list[zmq.Socket[bytes]]) -> None:
    register(broker, sockets, b"conf.listed")
    client = connect(broker, sockets)
    client.send_multipart([C2, b"\x01", b"mmi.services", b""])
    assert "conf.listed" in json.loads(recv(client)[3])
    client.send_multipart([C2, b"\x01", b"mmi.workers", b"conf.listed"])
    assert json.loads(recv(client)[3]) == {"conf.listed": {"idle": 1, "busy": 0, "queued": 0}}
    client.send_multipart([C2, b"\x01", b"mmi.broker", b""])
    info = json.loads(recv(client)[3])
    assert {"uptime", "counters", "workers", "queued", "version"} <= set(info)
