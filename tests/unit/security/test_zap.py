"""The ZAP handler (plantd.security._zap): answer() on literal frames, the Gatekeeper for real."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from zmq.utils import z85

from plantd.security import (
    ZAP_ENDPOINT,
    AuditEvent,
    Credentials,
    Gatekeeper,
    KeyFile,
    KeyRing,
    answer,
    generate,
    load_keyring,
    write_key_file,
)
from tests.unit.security._keys import admit

pytestmark = pytest.mark.timeout(30)


def request(key: KeyFile | bytes, *, mechanism: bytes = b"CURVE") -> list[bytes]:
    public = key.public if isinstance(key, KeyFile) else key
    return [
        b"1.0",
        b"req-7",
        b"plantd",
        b"192.0.2.7:40000",
        b"routing-id",
        mechanism,
        z85.decode(public),
    ]


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    directory.mkdir()
    return directory


# -- answer() -------------------------------------------------------------------------------------


def test_an_admitted_key_gets_200_with_the_principal_as_user_id(keys: Path) -> None:
    alice = admit(keys, "user.alice", roles="viewer")
    reply, refusal = answer(request(alice), load_keyring(keys))
    assert reply == [b"1.0", b"req-7", b"200", b"OK", b"user.alice", b""]
    assert refusal is None


def test_an_unknown_key_gets_400_and_an_audit_event(keys: Path) -> None:
    admit(keys, "user.alice")
    stranger = generate()
    reply, refusal = answer(request(stranger), load_keyring(keys))
    why = f"unknown key {stranger.public.decode()}"
    assert reply == [b"1.0", b"req-7", b"400", why.encode(), b"", b""]
    assert refusal == AuditEvent(
        "-", "connect", "plantd", "denied", detail=why, source="192.0.2.7:40000"
    )


def test_a_revoked_key_gets_400_naming_whose_it_was(keys: Path) -> None:
    (keys / "revoked").mkdir()
    old = generate({"principal": "user.dave"})
    write_key_file(keys / "revoked" / "user.dave.20240101T000000.key", old, secret=False)
    reply, refusal = answer(request(old), load_keyring(keys))
    assert reply[2:4] == [b"400", b"revoked key of user.dave"]
    assert refusal is not None
    assert (refusal.result, refusal.detail, refusal.source) == (
        "denied",
        "revoked key of user.dave",
        "192.0.2.7:40000",
    )


def test_the_brokers_own_key_admits_nobody(keys: Path) -> None:
    broker = generate()
    write_key_file(keys / "broker.key", broker, secret=False)
    reply, refusal = answer(request(broker), load_keyring(keys))
    assert reply[2] == b"400"
    assert refusal is not None


@pytest.mark.parametrize("mechanism", [b"NULL", b"PLAIN", b"GSSAPI"])
def test_other_mechanisms_get_400(keys: Path, mechanism: bytes) -> None:
    alice = admit(keys, "user.alice")
    frames = request(alice, mechanism=mechanism)
    if mechanism == b"NULL":
        frames = frames[:6]
    elif mechanism == b"PLAIN":
        frames = [*frames[:6], b"alice", b"secret"]
    reply, refusal = answer(frames, load_keyring(keys))
    why = f"{mechanism.decode()} mechanism (plantd takes CURVE only)"
    assert reply == [b"1.0", b"req-7", b"400", why.encode(), b"", b""]
    assert refusal is not None
    assert refusal.detail == why
    assert refusal.source == "192.0.2.7:40000"


@pytest.mark.parametrize(
    "credentials", [[], [b"short"], [b"\0" * 33], [b"\0" * 32, b"extra"]], ids=str
)
def test_curve_without_one_32_byte_key_gets_400(keys: Path, credentials: list[bytes]) -> None:
    reply, refusal = answer(request(generate())[:6] + credentials, load_keyring(keys))
    assert reply[2] == b"400"
    assert refusal is not None


@pytest.mark.parametrize(
    ("frames", "request_id"),
    [
        ([], b""),
        ([b"1.0"], b""),
        ([b"1.0", b"id", b"plantd", b"addr", b"rid"], b"id"),  # five frames
        ([b"2.0", b"id", b"plantd", b"addr", b"rid", b"CURVE", b"\0" * 32], b"id"),
        ([b"", b"id", b"", b"", b"", b""], b"id"),
    ],
    ids=["empty", "version-only", "five-frames", "version-2.0", "empty-version"],
)
def test_a_malformed_request_gets_500_without_an_exception(
    frames: list[bytes], request_id: bytes
) -> None:
    reply, refusal = answer(frames, KeyRing())
    assert reply == [b"1.0", request_id, b"500", b"malformed ZAP request", b"", b""]
    assert refusal is None


def test_a_long_refusal_text_is_cut_to_255_bytes() -> None:
    frames = request(generate(), mechanism=b"X" * 300)[:6]
    reply, refusal = answer(frames, KeyRing())
    assert len(reply[3]) == 255
    assert refusal is not None


# -- the Gatekeeper, with a real context ----------------------------------------------------------


class Recorder:
    """Collects the Gatekeeper's callbacks (they run in its thread)."""

    def __init__(self) -> None:
        self.keyrings: list[tuple[KeyRing | None, KeyRing]] = []
        self.audits: list[AuditEvent] = []
        self.changed = threading.Condition()

    def on_keyring(self, old: KeyRing | None, new: KeyRing) -> None:
        with self.changed:
            self.keyrings.append((old, new))
            self.changed.notify_all()

    def on_audit(self, event: AuditEvent) -> None:
        with self.changed:
            self.audits.append(event)
            self.changed.notify_all()

    def wait(self, predicate: object, timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)  # type: ignore[arg-type]


@pytest.fixture
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        yield ctx
    finally:
        ctx.destroy(linger=0)


@pytest.fixture
def broker_key(keys: Path) -> KeyFile:
    key = generate()
    write_key_file(keys / "broker.key", key, secret=False)
    return key


@pytest.fixture
def gatekeeper(
    context: zmq.Context[zmq.Socket[bytes]], keys: Path, broker_key: KeyFile
) -> Iterator[tuple[Gatekeeper, Recorder]]:
    recorder = Recorder()
    keeper = Gatekeeper(context, keys, recorder.on_keyring, recorder.on_audit, poll_interval=0.02)
    try:
        yield keeper, recorder
    finally:
        keeper.stop()


@pytest.fixture
def server(
    context: zmq.Context[zmq.Socket[bytes]], broker_key: KeyFile
) -> Iterator[tuple[zmq.Socket[bytes], str]]:
    """A CURVE ROUTER that asks the ZAP handler, and its endpoint."""
    router = context.socket(zmq.ROUTER)
    router.linger = 0
    router.curve_server = True
    router.curve_secretkey = broker_key.secret or b""
    router.zap_domain = b"plantd"
    try:
        router.bind("tcp://127.0.0.1:*")
        yield router, router.getsockopt_string(zmq.LAST_ENDPOINT)
    finally:
        router.close(linger=0)


def connect(
    context: zmq.Context[zmq.Socket[bytes]], endpoint: str, key: KeyFile, server: KeyFile
) -> zmq.Socket[bytes]:
    client = context.socket(zmq.DEALER)
    client.linger = 0
    Credentials("user.x", key.public, key.secret or b"", server.public).apply(client)
    client.connect(endpoint)
    client.send(b"hello")
    return client


def test_start_reads_the_keys_and_reports_the_first_keyring(
    gatekeeper: tuple[Gatekeeper, Recorder], keys: Path
) -> None:
    alice = admit(keys, "user.alice")
    keeper, recorder = gatekeeper
    ring = keeper.start()
    assert set(ring.by_principal) == {"user.alice"}
    assert keeper.keyring is ring
    assert len(recorder.keyrings) == 1
    old, new = recorder.keyrings[0]
    assert old is None
    assert new is ring
    assert new.by_key[alice.public].principal == "user.alice"


def test_a_key_file_added_is_read_again_and_reported(
    gatekeeper: tuple[Gatekeeper, Recorder], keys: Path
) -> None:
    keeper, recorder = gatekeeper
    first = keeper.start()
    admit(keys, "user.bob", roles="operator")
    assert recorder.wait(lambda: len(recorder.keyrings) >= 2)
    old, new = recorder.keyrings[1]
    assert old is first
    assert set(new.by_principal) == {"user.bob"}
    assert keeper.keyring is new
    assert len(recorder.keyrings) == 2  # once per change, not once per poll


def test_a_real_curve_client_is_admitted_or_refused(
    gatekeeper: tuple[Gatekeeper, Recorder],
    server: tuple[zmq.Socket[bytes], str],
    context: zmq.Context[zmq.Socket[bytes]],
    keys: Path,
    broker_key: KeyFile,
) -> None:
    alice = admit(keys, "user.alice", roles="viewer")
    keeper, recorder = gatekeeper
    keeper.start()
    router, endpoint = server

    admitted = connect(context, endpoint, alice, broker_key)
    try:
        assert router.poll(10_000, zmq.POLLIN)
        frames = router.recv_multipart(copy=False)
        assert frames[-1].bytes == b"hello"
        assert frames[-1].get("User-Id") == "user.alice"
        assert keeper.admitted == 1
    finally:
        admitted.close(linger=0)

    stranger = generate()
    refused = connect(context, endpoint, stranger, broker_key)
    try:
        assert recorder.wait(lambda: recorder.audits)
        event = recorder.audits[0]
        assert (event.action, event.target, event.result) == ("connect", "plantd", "denied")
        assert event.detail == f"unknown key {stranger.public.decode()}"
        assert event.source == "127.0.0.1"
        assert keeper.refused == 1
        # The handshake was refused before any message could pass.
        assert not router.poll(0, zmq.POLLIN)
    finally:
        refused.close(linger=0)


def test_a_key_added_while_running_is_admitted(
    gatekeeper: tuple[Gatekeeper, Recorder],
    server: tuple[zmq.Socket[bytes], str],
    context: zmq.Context[zmq.Socket[bytes]],
    keys: Path,
    broker_key: KeyFile,
) -> None:
    keeper, recorder = gatekeeper
    keeper.start()
    router, endpoint = server
    bob = admit(keys, "user.bob")
    assert recorder.wait(lambda: len(recorder.keyrings) >= 2)
    client = connect(context, endpoint, bob, broker_key)
    try:
        assert router.poll(10_000, zmq.POLLIN)
        assert router.recv_multipart(copy=False)[-1].get("User-Id") == "user.bob"
        assert recorder.audits == []
    finally:
        client.close(linger=0)


def test_a_broken_key_file_later_keeps_the_others_and_serving(
    gatekeeper: tuple[Gatekeeper, Recorder],
    context: zmq.Context[zmq.Socket[bytes]],
    keys: Path,
) -> None:
    admit(keys, "user.alice")
    keeper, recorder = gatekeeper
    keeper.start()
    (keys / "user.bob.key").write_text("not a key\n")
    assert recorder.wait(lambda: len(recorder.keyrings) >= 2)
    ring = recorder.keyrings[1][1]
    assert set(ring.by_principal) == {"user.alice"}
    assert len(ring.problems) == 1
    alice = ring.by_principal["user.alice"]
    assert ask(context, request(alice.public))[2:5] == [b"200", b"OK", b"user.alice"]


def ask(context: zmq.Context[zmq.Socket[bytes]], frames: list[bytes]) -> list[bytes]:
    """One ZAP request to the handler bound in ``context``, as libzmq would send it."""
    asker = context.socket(zmq.REQ)
    asker.linger = 0
    try:
        asker.connect(ZAP_ENDPOINT)
        asker.send_multipart(frames)
        assert asker.poll(10_000, zmq.POLLIN)
        return asker.recv_multipart()
    finally:
        asker.close(linger=0)


def test_the_handler_answers_a_malformed_request_and_goes_on(
    gatekeeper: tuple[Gatekeeper, Recorder],
    context: zmq.Context[zmq.Socket[bytes]],
    keys: Path,
) -> None:
    alice = admit(keys, "user.alice")
    keeper, recorder = gatekeeper
    keeper.start()
    malformed = ask(context, [b"0.9", b"r1"])
    assert malformed == [b"1.0", b"r1", b"500", b"malformed ZAP request", b"", b""]
    assert ask(context, request(alice))[2:5] == [b"200", b"OK", b"user.alice"]
    refused = ask(context, request(generate(), mechanism=b"NULL")[:6])
    assert refused[2] == b"400"
    assert recorder.wait(lambda: len(recorder.audits) == 1)
    assert keeper.refused == 1


def test_a_malformed_request_is_not_counted_as_admitted(
    gatekeeper: tuple[Gatekeeper, Recorder], context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    keeper, _ = gatekeeper
    keeper.start()
    assert ask(context, [b"0.9", b"r1"])[2] == b"500"
    assert (keeper.admitted, keeper.refused) == (0, 0)


def test_stop_ends_the_thread_and_unbinds_the_handler(
    context: zmq.Context[zmq.Socket[bytes]], keys: Path
) -> None:
    recorder = Recorder()
    keeper = Gatekeeper(context, keys, recorder.on_keyring, recorder.on_audit, poll_interval=0.02)
    keeper.start()
    thread = keeper._thread
    assert thread is not None
    assert thread.is_alive()
    keeper.stop()
    assert not thread.is_alive()
    rebound = context.socket(zmq.REP)  # the endpoint is free again
    try:
        rebound.bind(ZAP_ENDPOINT)
    finally:
        rebound.close(linger=0)
