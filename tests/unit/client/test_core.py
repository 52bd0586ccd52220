"""The client's rules alone (plantd.client._core): frames and ``now`` in, steps and verdicts out.

No sockets and no sleeping: each test plays the broker's side by handing the call the frames a
socket would have read (None for silence) at the times it chooses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from plantd.client._core import Call, ClientCore, Exchange, Pause
from plantd.client._verdicts import PRESENCE_RECHECK
from plantd.errors import (
    LocalProtocolError,
    NoBroker,
    NoWorker,
    RemoteProtocolError,
    RequestTimeout,
)
from plantd.mdp import Version

C2 = b"MDPC02"
PARTIAL, FINAL = b"\x02", b"\x03"
LOST = json.dumps({"ok": False, "error": {"code": "broker.worker-lost", "message": "gone"}})


def final(service: bytes, *body: bytes) -> list[bytes]:
    return [C2, FINAL, service, *body]


def partial(service: bytes, *body: bytes) -> list[bytes]:
    return [C2, PARTIAL, service, *body]


def make_call(
    service: bytes = b"echo",
    *,
    client: ClientCore | None = None,
    timeout: float = 1.0,
    attempts: int = 3,
    idempotent: bool = False,
    delays: Iterator[float] | None = None,
) -> Call:
    return Call(
        client or ClientCore("tcp://broker:5555"),
        service,
        [b"hello"],
        timeout=timeout,
        attempts=attempts,
        idempotent=idempotent,
        delays=delays or iter([0.1, 0.2, 0.4, 0.8]),
    )


def exchange(call: Call, now: float = 0.0) -> Exchange:
    step = call.next_step(now)
    assert isinstance(step, Exchange)
    return step


def test_a_request_is_framed_once_and_its_final_answers_it() -> None:
    call = make_call(timeout=2.5)
    step = exchange(call)
    assert step == Exchange([C2, b"\x01", b"echo", b"hello"], 2.5)
    reply = call.received(final(b"echo", b"world"))
    assert reply is not None
    assert (reply.body, reply.final) == ([b"world"], True)
    assert call.done
    assert call.reusable  # a whole reply was read: the connection may carry the next request
    assert call.attempt == 1


def test_partials_are_handed_out_before_the_final() -> None:
    call = make_call()
    exchange(call)
    parts = [call.received(partial(b"echo", b"1")), call.received(partial(b"echo", b"2"))]
    assert [(p.body, p.final) for p in parts if p is not None] == [([b"1"], False), ([b"2"], False)]
    assert not call.done
    assert not call.reusable  # mid-stream: a connection given back now would carry the rest
    last = call.received(final(b"echo", b"done"))
    assert last is not None
    assert last.final
    assert call.done


def test_silence_is_retried_after_the_backoff_on_a_fresh_connection() -> None:
    call = make_call(attempts=3, delays=iter([0.25, 0.5]))
    first = exchange(call, 0.0)
    assert call.received(None) is None
    assert not call.reusable  # a late reply must never answer the next request
    assert call.next_step(1.0) == Pause(0.25)
    second = exchange(call, 1.25)
    assert second == first  # the same request again
    assert call.attempt == 2
    call.received(None)
    assert call.next_step(2.25) == Pause(0.5)
    exchange(call, 2.75)
    call.received(None)
    with pytest.raises(RequestTimeout) as failed:
        call.next_step(3.75)
    assert (failed.value.service, failed.value.attempts, failed.value.timeout) == ("echo", 3, 1.0)


def test_a_stream_that_breaks_off_is_not_sent_again() -> None:
    call = make_call(attempts=3)
    exchange(call)
    assert call.received(partial(b"echo", b"1")) is not None
    assert call.received(None) is None
    with pytest.raises(RequestTimeout) as failed:
        call.next_step(1.0)  # re-sending would repeat what the caller already has
    assert failed.value.attempts == 1


@pytest.mark.parametrize(
    "frames",
    [
        pytest.param([b"MDPC01", FINAL, b"echo", b"x"], id="wrong-header"),
        pytest.param([C2, b"\x09", b"echo", b"x"], id="unknown-command"),
        pytest.param([C2, FINAL, b"echo"], id="no-body"),
        pytest.param(final(b"other", b"x"), id="another-service"),
        pytest.param([], id="empty"),
    ],
)
def test_a_malformed_reply_ends_the_attempt_and_drops_the_connection(
    frames: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    call = make_call(attempts=2, delays=iter([0.1]))
    exchange(call)
    assert call.received(frames) is None
    assert not call.reusable
    assert "protocol error" in caplog.text
    assert call.next_step(1.0) == Pause(0.1)
    exchange(call, 1.1)
    assert call.received(final(b"echo", b"ok")) is not None
    assert call.done


def test_an_idempotent_request_goes_again_when_the_broker_lost_its_worker() -> None:
    call = make_call(attempts=2, idempotent=True, delays=iter([0.1]))
    exchange(call)
    assert call.received(final(b"echo", LOST.encode())) is None
    assert call.reusable  # a whole reply: the connection is fit for the retry
    assert call.next_step(0.5) == Pause(0.1)
    exchange(call, 0.6)
    # The last attempt gets no retry: the broker's error is the answer.
    answer = call.received(final(b"echo", LOST.encode()))
    assert answer is not None
    assert answer.body == [LOST.encode()]
    assert call.done


def test_a_request_that_is_not_idempotent_takes_the_lost_worker_as_its_answer() -> None:
    call = make_call(attempts=3)
    exchange(call)
    answer = call.received(final(b"echo", LOST.encode()))
    assert answer is not None
    assert call.done


def test_presence_is_asked_once_before_the_first_call_to_a_service() -> None:
    client = ClientCore("tcp://b:1", check_presence=True, presence_timeout=0.3)
    call = make_call(client=client, timeout=1.0)
    ask = exchange(call)
    assert ask == Exchange([C2, b"\x01", b"mmi.service", b"echo"], 0.3)
    assert call.received(final(b"mmi.service", b"200")) is None
    assert call.reusable
    assert exchange(call, 0.1).frames == [C2, b"\x01", b"echo", b"hello"]
    assert b"echo" in client.present
    # The next call to it goes straight to the service.
    again = make_call(client=client)
    assert exchange(again).frames[2] == b"echo"


def test_silence_from_the_broker_is_no_broker() -> None:
    client = ClientCore("tcp://b:1", check_presence=True, presence_timeout=5.0)
    call = make_call(client=client, timeout=0.5)
    assert exchange(call).wait == 0.5  # never longer than an attempt
    call.received(None)
    with pytest.raises(NoBroker):
        call.next_step(0.5)


def test_a_service_without_a_worker_is_asked_about_again_for_the_grace() -> None:
    client = ClientCore("tcp://b:1", check_presence=True, presence_grace=1.0)
    call = make_call(client=client, timeout=5.0)
    exchange(call, 10.0)  # the grace runs until 11.0
    call.received(final(b"mmi.service", b"404"))
    assert call.next_step(10.2) == Pause(PRESENCE_RECHECK)
    assert exchange(call, 10.45).frames[2] == b"mmi.service"
    call.received(final(b"mmi.service", b"404"))
    with pytest.raises(NoWorker):
        call.next_step(11.0)
    assert b"echo" not in client.present


def test_a_service_that_registers_within_the_grace_is_called() -> None:
    client = ClientCore("tcp://b:1", check_presence=True, presence_grace=1.0)
    call = make_call(client=client)
    exchange(call, 0.0)
    call.received(final(b"mmi.service", b"404"))
    assert isinstance(call.next_step(0.1), Pause)
    exchange(call, 0.35)
    call.received(final(b"mmi.service", b"200"))
    assert exchange(call, 0.4).frames[2] == b"echo"


def test_presence_is_asked_again_before_each_retry() -> None:
    client = ClientCore("tcp://b:1", check_presence=True)
    client.present.add(b"echo")
    call = make_call(client=client, delays=iter([0.2]))
    exchange(call)  # known to be served: no question first
    call.received(None)
    assert exchange(call, 1.0).frames[2] == b"mmi.service"
    assert b"echo" not in client.present
    call.received(final(b"mmi.service", b"200"))
    assert call.next_step(1.1) == Pause(0.2)
    assert exchange(call, 1.3).frames[2] == b"echo"
    assert call.attempt == 2


def test_the_broker_answering_for_its_own_service_is_enough() -> None:
    client = ClientCore("tcp://b:1", check_presence=True)
    call = make_call(b"mmi.services", client=client)
    exchange(call)
    call.received(final(b"mmi.service", b"501"))  # not a verdict: the broker answered
    assert exchange(call).frames[2] == b"mmi.services"


def test_a_malformed_presence_answer_raises() -> None:
    client = ClientCore("tcp://b:1", check_presence=True)
    call = make_call(client=client)
    exchange(call)
    with pytest.raises(RemoteProtocolError):
        call.received([b"junk"])
    call2 = make_call(client=client)
    exchange(call2)
    call2.received(final(b"mmi.service", b"500"))
    with pytest.raises(RemoteProtocolError, match="expected 200 or 404"):
        call2.next_step(0.0)


def test_steps_out_of_turn_are_refused() -> None:
    call = make_call()
    with pytest.raises(LocalProtocolError):
        call.received(None)  # nothing sent yet
    exchange(call)
    with pytest.raises(LocalProtocolError):
        call.next_step(0.0)  # the exchange is still out
    call.received(final(b"echo", b"x"))
    with pytest.raises(LocalProtocolError):
        call.next_step(0.0)  # answered


def test_an_invalid_service_name_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(LocalProtocolError, match="invalid service name"):
        make_call(b"has space").next_step(0.0)


def test_the_client_fills_in_its_defaults_and_speaks_its_version() -> None:
    client = ClientCore("tcp://b:1", timeout=0.75, retries=1, version=Version.V1)
    call = client._call("echo", [b"x"], None, None, False)
    assert (call.service, call.timeout, call.attempts) == (b"echo", 0.75, 2)
    assert exchange(call).frames == [b"", b"MDPC01", b"echo", b"x"]
    assert client._call(b"echo", [], 3.0, 0, True).attempts == 1
