"""Cutting a principal's connections (plantd.security._connections), on real TCP sockets."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq

from plantd.security import Connections, Credentials, Gatekeeper, KeyFile, generate, write_key_file
from plantd.security._connections import peer_address, sender_principal
from tests.unit.security._keys import admit

pytestmark = pytest.mark.timeout(30)

Pair = tuple[socket.socket, socket.socket]  # (client end, server end)


@pytest.fixture
def connect() -> Iterator[Callable[[], Pair]]:
    """Makes connected TCP pairs on a listening socket bound to port 0; closes them after."""
    opened: list[socket.socket] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def make() -> Pair:
            client = socket.create_connection(listener.getsockname(), timeout=10)
            server, _ = listener.accept()
            opened.extend((client, server))
            return client, server

        try:
            yield make
        finally:
            for sock in opened:
                sock.close()


def at_eof(client: socket.socket) -> bool:
    """Whether the other end shut the connection down (waits up to the socket's timeout)."""
    try:
        return client.recv(1) == b""
    except ConnectionResetError:
        return True


def still_open(client: socket.socket) -> bool:
    """Whether nothing arrived and the connection is open (does not wait)."""
    client.setblocking(False)
    try:
        client.recv(1)
    except BlockingIOError:
        return True
    finally:
        client.settimeout(10)
    return False


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_peer_address_of_a_connection_a_closed_descriptor_and_a_listener(
    connect: Callable[[], Pair],
) -> None:
    client, server = connect()
    host, port = client.getsockname()
    assert peer_address(server.fileno()) == f"{host}:{port}"
    with socket.create_server(("127.0.0.1", 0)) as listener:
        assert peer_address(listener.fileno()) == ""  # not connected
    assert peer_address(1_000_000) == ""


def test_cutting_a_principal_shuts_its_connections_down_and_no_others(
    connect: Callable[[], Pair],
) -> None:
    alice1, alice1_server = connect()
    alice2, alice2_server = connect()
    bob, bob_server = connect()
    connections = Connections()
    connections.seen(alice1_server.fileno(), "user.alice")
    connections.seen(alice2_server.fileno(), "user.alice")
    connections.seen(bob_server.fileno(), "user.bob")
    connections.seen(bob_server.fileno(), "user.bob")  # noting again changes nothing
    assert len(connections) == 3
    assert connections.cut({"user.alice", "user.nobody"}) == 2
    assert at_eof(alice1)
    assert at_eof(alice2)
    assert still_open(bob)
    assert len(connections) == 1
    assert connections.cut({"user.alice"}) == 0  # forgotten once cut
    os.fstat(alice1_server.fileno())  # shut down, not closed: the owner still holds it
    assert connections.cut(["user.bob"]) == 1
    assert at_eof(bob)
    assert len(connections) == 0


def test_cutting_nobody_cuts_nothing(connect: Callable[[], Pair]) -> None:
    client, server = connect()
    connections = Connections()
    connections.seen(server.fileno(), "user.alice")
    assert connections.cut(()) == 0
    assert still_open(client)
    assert len(connections) == 1


def test_a_descriptor_reused_by_a_principal_that_spoke_since_is_not_cut(
    connect: Callable[[], Pair],
) -> None:
    _, old_server = connect()
    carol, carol_server = connect()
    fd = old_server.fileno()
    connections = Connections()
    connections.seen(fd, "user.alice")
    # alice's connection closes and its descriptor number now holds carol's connection ...
    os.dup2(carol_server.fileno(), fd)
    carol_server.close()
    # ... and carol speaks on it before alice is revoked
    connections.seen(fd, "user.carol")
    assert connections.cut({"user.alice"}) == 0
    assert still_open(carol)
    assert connections.cut({"user.carol"}) == 1
    assert at_eof(carol)


def test_a_descriptor_closed_since_it_was_noted_is_not_counted(
    connect: Callable[[], Pair],
) -> None:
    _, server = connect()
    connections = Connections()
    connections.seen(server.fileno(), "user.alice")
    server.close()
    assert connections.cut({"user.alice"}) == 0
    assert len(connections) == 0


def test_a_descriptor_reused_by_a_file_leaks_nothing(tmp_path: Path) -> None:
    with (tmp_path / "audit.db").open("w") as file:
        connections = Connections()
        connections.seen(file.fileno(), "user.alice")
        before = open_descriptors()
        assert peer_address(file.fileno()) == ""
        assert connections.cut({"user.alice"}) == 0
        assert open_descriptors() == before


# -- sender_principal, on frames from a real CURVE connection -------------------------------------


def test_a_frame_without_user_id_came_from_this_process() -> None:
    connections = Connections()
    frame = zmq.Frame(b"hello")
    assert sender_principal(frame, connections, "broker", lambda _: False) == "broker"
    assert len(connections) == 0


@pytest.fixture
def curve(tmp_path: Path) -> Iterator[tuple[zmq.Socket[bytes], zmq.Socket[bytes], KeyFile]]:
    """A CURVE ROUTER with its Gatekeeper, and a DEALER of user.alice connected to it."""
    keys = tmp_path / "keys"
    keys.mkdir()
    broker = generate()
    write_key_file(keys / "broker.key", broker, secret=False)
    alice = admit(keys, "user.alice")
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    keeper = Gatekeeper(context, keys, lambda old, new: None, lambda event: None)
    try:
        keeper.start()
        router = context.socket(zmq.ROUTER)
        router.linger = 0
        router.curve_server = True
        router.curve_secretkey = broker.secret or b""
        router.zap_domain = b"plantd"
        router.bind("tcp://127.0.0.1:*")
        client = context.socket(zmq.DEALER)
        client.linger = 0
        Credentials("user.alice", alice.public, alice.secret or b"", broker.public).apply(client)
        client.connect(router.getsockopt_string(zmq.LAST_ENDPOINT))
        yield router, client, alice
    finally:
        keeper.stop()
        context.destroy(linger=0)


def received(router: zmq.Socket[bytes], client: zmq.Socket[bytes]) -> zmq.Frame:
    client.send(b"hello")
    assert router.poll(10_000, zmq.POLLIN)
    frame: zmq.Frame = router.recv_multipart(copy=False)[-1]
    return frame


def test_the_sender_of_an_admitted_principal_is_noted(
    curve: tuple[zmq.Socket[bytes], zmq.Socket[bytes], KeyFile],
) -> None:
    router, client, _ = curve
    connections = Connections()
    frame = received(router, client)
    assert sender_principal(frame, connections, "broker", lambda p: p == "user.alice") == (
        "user.alice"
    )
    assert len(connections) == 1


def test_the_sender_of_a_principal_no_longer_admitted_is_cut(
    curve: tuple[zmq.Socket[bytes], zmq.Socket[bytes], KeyFile],
) -> None:
    router, client, _ = curve
    client.monitor("inproc://client-events", zmq.EVENT_DISCONNECTED)
    events = client.context.socket(zmq.PAIR)
    events.linger = 0
    events.connect("inproc://client-events")
    try:
        connections = Connections()
        frame = received(router, client)
        assert sender_principal(frame, connections, "broker", lambda p: False) is None
        assert len(connections) == 0
        deadline = time.monotonic() + 10
        disconnected = False
        while not disconnected and time.monotonic() < deadline:
            disconnected = bool(events.poll(100, zmq.POLLIN))
        assert disconnected, "the client's connection was not cut within 10 s"
    finally:
        client.disable_monitor()
        events.close(linger=0)
