"""The MDP codec: every command of both versions round-trips; bad frames are named."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantd.errors import LocalProtocolError, RemoteProtocolError
from plantd.mdp import (
    ClientReply,
    ClientRequest,
    Disconnect,
    Heartbeat,
    Version,
    WorkerReady,
    WorkerReply,
    WorkerRequest,
    decode,
    encode,
)

services = st.binary(min_size=1, max_size=255).filter(lambda b: all(0x21 <= c <= 0x7E for c in b))
bodies = st.lists(st.binary(max_size=64), min_size=1, max_size=5)
identities = st.binary(min_size=1, max_size=32)
versions = st.sampled_from(Version)

messages = st.one_of(
    st.builds(ClientRequest, versions, services, bodies),
    st.builds(ClientReply, st.just(Version.V2), services, bodies, st.booleans()),
    st.builds(WorkerReady, versions, services),
    st.builds(WorkerRequest, versions, identities, bodies),
    st.builds(WorkerReply, st.just(Version.V2), identities, bodies, st.booleans()),
    st.builds(WorkerReply, st.just(Version.V1), identities, bodies, st.just(True)),
    st.builds(Heartbeat, versions),
    st.builds(Disconnect, versions),
)


@given(messages)
def test_every_message_round_trips(message: object) -> None:
    assert decode(encode(message)) == message  # type: ignore[arg-type]


@given(st.lists(st.binary(max_size=12), max_size=8))
def test_decode_never_raises_anything_but_a_protocol_error(frames: list[bytes]) -> None:
    with contextlib.suppress(RemoteProtocolError):
        decode(frames)


# The exact frame tables of RFC 18 (MDP/0.2) and RFC 7 (MDP/0.1).
@pytest.mark.parametrize(
    ("message", "frames"),
    [
        (ClientRequest(Version.V2, b"echo", [b"x"]), [b"MDPC02", b"\x01", b"echo", b"x"]),
        (
            ClientReply(Version.V2, b"echo", [b"x"], final=False),
            [b"MDPC02", b"\x02", b"echo", b"x"],
        ),
        (ClientReply(Version.V2, b"echo", [b"x"]), [b"MDPC02", b"\x03", b"echo", b"x"]),
        (WorkerReady(Version.V2, b"echo"), [b"MDPW02", b"\x01", b"echo"]),
        (WorkerRequest(Version.V2, b"C", [b"x"]), [b"MDPW02", b"\x02", b"C", b"", b"x"]),
        (WorkerReply(Version.V2, b"C", [b"x"], final=False), [b"MDPW02", b"\x03", b"C", b"", b"x"]),
        (WorkerReply(Version.V2, b"C", [b"x"]), [b"MDPW02", b"\x04", b"C", b"", b"x"]),
        (Heartbeat(Version.V2), [b"MDPW02", b"\x05"]),
        (Disconnect(Version.V2), [b"MDPW02", b"\x06"]),
        (ClientRequest(Version.V1, b"echo", [b"x"]), [b"", b"MDPC01", b"echo", b"x"]),
        (WorkerReady(Version.V1, b"echo"), [b"", b"MDPW01", b"\x01", b"echo"]),
        (WorkerRequest(Version.V1, b"C", [b"x"]), [b"", b"MDPW01", b"\x02", b"C", b"", b"x"]),
        (WorkerReply(Version.V1, b"C", [b"x"]), [b"", b"MDPW01", b"\x03", b"C", b"", b"x"]),
        (Heartbeat(Version.V1), [b"", b"MDPW01", b"\x04"]),
        (Disconnect(Version.V1), [b"", b"MDPW01", b"\x05"]),
    ],
)
def test_frames_match_the_rfc_tables(message: object, frames: list[bytes]) -> None:
    assert encode(message) == frames  # type: ignore[arg-type]
    assert decode(frames) == message


@pytest.mark.parametrize(
    ("frames", "complaint"),
    [
        ([], "empty message"),
        ([b"HTTP/1.1"], "unknown protocol header"),
        ([b"", b"MDPC02", b"\x01", b"echo", b"x"], "unknown protocol header"),
        ([b"MDPC02", b"\x01", b"echo"], "needs header, command, service and a body"),
        ([b"MDPC02", b"\x09", b"echo", b"x"], "unknown MDPC02 command"),
        ([b"MDPC02", b"\x01", b"bad name", b"x"], "service name"),
        ([b"MDPC02", b"\x01", b"", b"x"], "service name"),
        ([b"MDPC02", b"\x01", b"a" * 256, b"x"], "service name"),
        ([b"MDPW02"], "without a command"),
        ([b"MDPW02", b"\x01"], "READY takes exactly one service frame"),
        ([b"MDPW02", b"\x01", b"a", b"b"], "READY takes exactly one service frame"),
        ([b"MDPW02", b"\x05", b"extra"], "take no frames"),
        ([b"MDPW02", b"\x04", b"C", b"x"], "needs a client address"),
        ([b"MDPW02", b"\x04", b"C", b"not-empty", b"x"], "must be empty"),
        ([b"MDPW02", b"\x04", b"", b"", b"x"], "empty client address"),
        ([b"MDPW02", b"\x07"], "unknown MDPW02 command"),
        ([b"", b"MDPW01", b"\x06"], "unknown MDPW01 command"),
        ([b"", b"MDPC01", b"echo"], "needs ., header, service and a body"),
    ],
)
def test_malformed_frames_are_named(frames: list[bytes], complaint: str) -> None:
    with pytest.raises(RemoteProtocolError, match=complaint):
        decode(frames)


def test_mdp01_cannot_stream() -> None:
    with pytest.raises(LocalProtocolError, match="no PARTIAL"):
        encode(WorkerReply(Version.V1, b"C", [b"x"], final=False))
    with pytest.raises(LocalProtocolError, match="no PARTIAL"):
        encode(ClientReply(Version.V1, b"s", [b"x"], final=False))


def test_an_empty_body_is_refused_on_the_way_out() -> None:
    with pytest.raises(LocalProtocolError, match="at least one frame"):
        encode(ClientRequest(Version.V2, b"echo", []))
