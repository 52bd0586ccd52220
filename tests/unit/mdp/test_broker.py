"""The sans-IO broker, rule by rule (see the rules at the top of plantd/mdp/_broker.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantd.config import BrokerConfig
from plantd.mdp import Broker

C2, W2 = b"MDPC02", b"MDPW02"
# Command bytes differ by role: clients speak 0x01-0x03, workers 0x01-0x06.
C_REQUEST, C_PARTIAL, C_FINAL = b"\x01", b"\x02", b"\x03"
READY, REQUEST, PARTIAL, FINAL, HEARTBEAT, DISCONNECT = (bytes([i]) for i in range(1, 7))


def make_broker(**overrides: object) -> Broker:
    settings_ = {
        "heartbeat_interval": 1.0,
        "heartbeat_liveness": 3,
        "request_expiry": 5.0,
        "max_queue_per_service": 3,
        "max_queued_total": 5,
        "max_message_bytes": 100,
        "worker_loss_retries": 1,
    }
    settings_.update(overrides)
    return Broker(BrokerConfig(**settings_), now=0.0)  # type: ignore[arg-type]


def ready(broker: Broker, worker: bytes, service: bytes = b"echo", now: float = 0.0) -> list:
    return broker.receive(worker, [W2, READY, service], now)


def request(
    broker: Broker, client: bytes, service: bytes = b"echo", body: bytes = b"hi", now: float = 0.0
) -> list:
    return broker.receive(client, [C2, C_REQUEST, service, body], now)


def final(
    broker: Broker, worker: bytes, client: bytes, body: bytes = b"ok", now: float = 0.0
) -> list:
    return broker.receive(worker, [W2, FINAL, client, b"", body], now)


def error_code(message: list[bytes]) -> str:
    code: str = json.loads(message[-1])["error"]["code"]
    return code


def check_invariants(broker: Broker) -> None:
    assert broker.queued == sum(len(s.requests) for s in broker.services.values())
    assert broker.queued_bytes == sum(s.queued_bytes for s in broker.services.values())
    for service in broker.services.values():
        assert service.queued_bytes == sum(r.size for r in service.requests)
    for service in broker.services.values():
        assert service.workers > 0 or service.requests, "empty services are forgotten"
        assert service.workers == sum(1 for w in broker.workers.values() if w.service is service)
        assert 0 <= service.idle <= service.workers
    for worker in broker.workers.values():
        assert worker.service.name in broker.services


# -- C1, W1, W3: routing ----


def test_request_goes_to_an_idle_worker_and_the_final_comes_back() -> None:
    broker = make_broker()
    assert ready(broker, b"W") == [[b"W", W2, HEARTBEAT]]  # READY is acknowledged (W1)
    assert request(broker, b"C") == [[b"W", W2, REQUEST, b"C", b"", b"hi"]]
    assert final(broker, b"W", b"C") == [[b"C", C2, C_FINAL, b"echo", b"ok"]]
    check_invariants(broker)


def test_multi_frame_bodies_pass_through_untouched() -> None:
    broker = make_broker()
    ready(broker, b"W")
    out = broker.receive(b"C", [C2, C_REQUEST, b"echo", b"a", b"", b"c"], 0.0)
    assert out == [[b"W", W2, REQUEST, b"C", b"", b"a", b"", b"c"]]
    out = broker.receive(b"W", [W2, FINAL, b"C", b"", b"x", b"y"], 0.0)
    assert out == [[b"C", C2, C_FINAL, b"echo", b"x", b"y"]]


def test_requests_wait_for_a_worker_then_are_served_in_order() -> None:
    broker = make_broker()
    assert request(broker, b"C1", body=b"1") == []
    assert request(broker, b"C2", body=b"2") == []
    assert broker.queued == 2
    assert ready(broker, b"W") == [[b"W", W2, REQUEST, b"C1", b"", b"1"]]
    assert final(broker, b"W", b"C1") == [
        [b"C1", C2, C_FINAL, b"echo", b"ok"],
        [b"W", W2, REQUEST, b"C2", b"", b"2"],
    ]
    assert broker.queued == 0
    check_invariants(broker)


def test_idle_workers_are_used_least_recently_used_first() -> None:
    broker = make_broker()
    for worker in (b"A", b"B", b"C"):
        ready(broker, worker)
    assert request(broker, b"x")[0][0] == b"A"
    assert request(broker, b"y")[0][0] == b"B"
    final(broker, b"A", b"x")  # A goes to the back of the idle line, behind C
    assert request(broker, b"z")[0][0] == b"C"
    assert request(broker, b"w")[0][0] == b"A"


def test_partials_are_forwarded_and_the_worker_stays_busy() -> None:
    broker = make_broker()
    ready(broker, b"W")
    request(broker, b"C")
    out = broker.receive(b"W", [W2, PARTIAL, b"C", b"", b"p1"], 0.0)
    assert out == [[b"C", C2, C_PARTIAL, b"echo", b"p1"]]
    assert request(broker, b"D") == []  # W is still busy
    assert final(broker, b"W", b"C")[1] == [b"W", W2, REQUEST, b"D", b"", b"hi"]


def test_services_are_independent() -> None:
    broker = make_broker()
    ready(broker, b"W1", b"one")
    ready(broker, b"W2", b"two")
    assert request(broker, b"C", b"two")[0][0] == b"W2"
    assert request(broker, b"C", b"one")[0][0] == b"W1"


# -- W2, W5, W6: heartbeats and expiry ----


def test_heartbeats_go_to_workers_that_heard_nothing_this_interval() -> None:
    broker = make_broker()
    ready(broker, b"A")
    ready(broker, b"B")
    assert broker.tick(1.0) == []  # both heard a HEARTBEAT when they registered
    out = broker.tick(2.0)
    assert sorted(out) == [[b"A", W2, HEARTBEAT], [b"B", W2, HEARTBEAT]]
    broker.receive(b"A", [W2, HEARTBEAT], 2.1)
    broker.receive(b"B", [W2, HEARTBEAT], 2.1)
    request(broker, b"C", now=2.5)  # goes to A
    assert broker.tick(3.0) == [[b"B", W2, HEARTBEAT]]


def test_any_worker_message_keeps_it_alive() -> None:
    broker = make_broker()
    ready(broker, b"W")
    broker.receive(b"W", [W2, HEARTBEAT], 2.5)
    broker.tick(5.0)
    assert b"W" in broker.workers
    broker.tick(5.6)
    assert b"W" not in broker.workers
    assert broker.counters.workers_expired == 1
    check_invariants(broker)


def test_a_busy_worker_that_dies_has_its_request_retried_elsewhere() -> None:
    broker = make_broker()
    ready(broker, b"A")
    request(broker, b"C")
    ready(broker, b"B", now=2.0)  # B registered later, stays alive longer
    broker.receive(b"B", [W2, HEARTBEAT], 2.9)
    out = broker.tick(3.1)  # A is 3.1 s silent: expired while busy
    assert [b"B", W2, REQUEST, b"C", b"", b"hi"] in out
    assert broker.counters.requeued == 1
    check_invariants(broker)


def test_a_request_is_retried_only_worker_loss_retries_times() -> None:
    broker = make_broker(worker_loss_retries=1)
    ready(broker, b"A")
    request(broker, b"C")
    out = broker.receive(b"A", [W2, DISCONNECT], 0.1)  # lost once: queued again
    assert out == []
    assert broker.queued == 1
    assert ready(broker, b"B", now=0.2) == [[b"B", W2, REQUEST, b"C", b"", b"hi"]]
    out = broker.receive(b"B", [W2, DISCONNECT], 0.3)  # lost twice: the client hears
    assert len(out) == 1
    assert out[0][:4] == [b"C", C2, C_FINAL, b"echo"]
    assert error_code(out[0]) == "broker.worker-lost"
    check_invariants(broker)


def test_a_streamed_request_is_never_rerun_after_its_worker_dies() -> None:
    broker = make_broker(worker_loss_retries=5)
    ready(broker, b"A")
    ready(broker, b"B")
    request(broker, b"C")
    broker.receive(b"A", [W2, PARTIAL, b"C", b"", b"p"], 0.0)
    out = broker.receive(b"A", [W2, DISCONNECT], 0.1)
    assert len(out) == 1
    assert error_code(out[0]) == "broker.worker-lost"


# -- C2, C3: bounds and expiry ----


def test_queued_requests_expire_with_a_clear_error() -> None:
    broker = make_broker()
    request(broker, b"C")
    assert broker.tick(4.9) == []
    out = broker.tick(5.0)
    assert error_code(out[0]) == "broker.no-worker"
    assert "no worker for 'echo'" in json.loads(out[0][-1])["error"]["message"]
    assert broker.services == {}


def test_requests_waiting_for_busy_workers_expire_as_expired() -> None:
    broker = make_broker()
    ready(broker, b"W")
    request(broker, b"C1")
    request(broker, b"C2")
    broker.receive(b"W", [W2, HEARTBEAT], 2.5)
    out = broker.tick(5.0)
    assert [m[0] for m in out] == [b"C2"]
    assert error_code(out[0]) == "broker.expired"


def test_a_full_service_queue_answers_at_once() -> None:
    broker = make_broker(max_queue_per_service=2)
    request(broker, b"C1")
    request(broker, b"C2")
    out = request(broker, b"C3")
    assert error_code(out[0]) == "broker.queue-full"
    assert broker.queued == 2


def test_the_total_queue_bound_covers_all_services() -> None:
    broker = make_broker(max_queue_per_service=10, max_queued_total=3)
    for i, service in enumerate([b"a", b"b", b"c"]):
        assert request(broker, b"C%d" % i, service) == []
    out = request(broker, b"C9", b"d")
    assert error_code(out[0]) == "broker.queue-full"
    assert b"d" not in broker.services
    check_invariants(broker)


def test_an_oversized_request_is_refused() -> None:
    broker = make_broker(max_message_bytes=10)
    ready(broker, b"W")
    out = broker.receive(b"C", [C2, C_REQUEST, b"echo", b"x" * 6, b"y" * 6], 0.0)
    assert error_code(out[0]) == "broker.too-large"
    assert broker.counters.rejected_too_large == 1


# -- W4: valid but unexpected commands ----


@pytest.mark.parametrize(
    "frames",
    [
        [W2, HEARTBEAT],
        [W2, FINAL, b"C", b"", b"x"],
        [W2, PARTIAL, b"C", b"", b"x"],
        [W2, REQUEST, b"C", b"", b"x"],
    ],
)
def test_worker_commands_from_an_unknown_peer_get_disconnect(frames: list[bytes]) -> None:
    broker = make_broker()
    assert broker.receive(b"X", frames, 0.0) == [[b"X", W2, DISCONNECT]]
    assert broker.counters.unexpected == 1


def test_ready_twice_disconnects_and_forgets_the_worker() -> None:
    broker = make_broker()
    ready(broker, b"W")
    assert ready(broker, b"W") == [[b"W", W2, DISCONNECT]]
    assert broker.workers == {}
    assert broker.services == {}


def test_a_reply_when_idle_or_for_another_client_disconnects() -> None:
    broker = make_broker()
    ready(broker, b"W")
    assert final(broker, b"W", b"C") == [[b"W", W2, DISCONNECT]]
    ready(broker, b"W")
    request(broker, b"C")
    out = final(broker, b"W", b"someone-else")
    assert out[0] == [b"W", W2, DISCONNECT]
    assert broker.queued == 1  # C's request waits for another worker
    check_invariants(broker)


def test_a_worker_switching_protocol_version_is_disconnected() -> None:
    broker = make_broker()
    ready(broker, b"W")
    assert broker.receive(b"W", [b"", b"MDPW01", b"\x04"], 0.0) == [[b"W", W2, DISCONNECT]]


def test_workers_may_not_register_mmi_services() -> None:
    broker = make_broker()
    assert ready(broker, b"W", b"mmi.service") == [[b"W", W2, DISCONNECT]]
    assert broker.workers == {}
    assert broker.counters.refused_mmi == 1


def test_disconnect_before_ready_is_ignored() -> None:
    broker = make_broker()
    assert broker.receive(b"W", [W2, DISCONNECT], 0.0) == []
    assert broker.counters.unexpected == 0


def test_clients_may_not_send_replies() -> None:
    broker = make_broker()
    assert broker.receive(b"C", [C2, C_FINAL, b"echo", b"x"], 0.0) == []
    assert broker.counters.unexpected == 1


# -- malformed input ----


def test_malformed_messages_are_counted_and_dropped() -> None:
    broker = make_broker()
    assert broker.receive(b"X", [b"GET / HTTP/1.1"], 0.0) == []
    assert broker.receive(b"X", [], 0.0) == []
    assert broker.receive(b"X", [C2, b"\x07", b"echo", b"x"], 0.0) == []
    assert broker.counters.malformed == 3


def test_a_registered_worker_sending_garbage_is_disconnected() -> None:
    broker = make_broker()
    ready(broker, b"W")
    request(broker, b"C")
    out = broker.receive(b"W", [W2, b"\x09"], 0.0)
    assert out[0] == [b"W", W2, DISCONNECT]
    assert b"W" not in broker.workers
    assert broker.queued == 1  # its request is waiting for someone else


# -- C4: MMI ----


def mmi(broker: Broker, service: bytes, body: bytes = b"") -> bytes:
    out = broker.receive(b"C", [C2, C_REQUEST, service, body], 1.0)
    assert out[0][:4] == [b"C", C2, C_FINAL, service]
    return out[0][4]


def test_mmi_service_is_exactly_rfc8() -> None:
    broker = make_broker()
    assert mmi(broker, b"mmi.service", b"echo") == b"404"
    request(broker, b"C0")  # a queue without workers is still 404
    assert mmi(broker, b"mmi.service", b"echo") == b"404"
    ready(broker, b"W")
    assert mmi(broker, b"mmi.service", b"echo") == b"200"
    assert mmi(broker, b"mmi.nonsense") == b"501"


def test_mmi_extensions() -> None:
    broker = make_broker()
    ready(broker, b"A")
    ready(broker, b"B")
    ready(broker, b"Z", b"other")
    request(broker, b"C1")
    request(broker, b"C2", b"nobody")
    assert json.loads(mmi(broker, b"mmi.services")) == ["echo", "other"]
    assert json.loads(mmi(broker, b"mmi.workers")) == {
        "echo": {"idle": 1, "busy": 1, "queued": 0},
        "other": {"idle": 1, "busy": 0, "queued": 0},
        "nobody": {"idle": 0, "busy": 0, "queued": 1},
    }
    assert json.loads(mmi(broker, b"mmi.workers", b"other")) == {
        "other": {"idle": 1, "busy": 0, "queued": 0}
    }
    info = json.loads(mmi(broker, b"mmi.broker"))
    assert info["workers"] == 3
    assert info["queued"] == 1
    assert info["uptime"] == 1.0
    assert info["counters"]["workers_registered"] == 3


# -- C5: MDP/0.1 peers ----


def test_mdp01_client_and_worker_interoperate_with_mdp02_peers() -> None:
    broker = make_broker()
    broker.receive(b"W1", [b"", b"MDPW01", b"\x01", b"echo"], 0.0)
    out = broker.receive(b"C2", [C2, C_REQUEST, b"echo", b"x"], 0.0)
    assert out == [[b"W1", b"", b"MDPW01", b"\x02", b"C2", b"", b"x"]]
    out = broker.receive(b"W1", [b"", b"MDPW01", b"\x03", b"C2", b"", b"y"], 0.0)
    assert out == [[b"C2", C2, C_FINAL, b"echo", b"y"]]
    assert broker.tick(1.0) == []  # it was sent a request this interval
    assert broker.tick(2.0) == [[b"W1", b"", b"MDPW01", b"\x04"]]


def test_partials_for_an_mdp01_client_arrive_as_one_reply() -> None:
    broker = make_broker()
    ready(broker, b"W")
    broker.receive(b"C1", [b"", b"MDPC01", b"echo", b"q"], 0.0)
    assert broker.receive(b"W", [W2, PARTIAL, b"C1", b"", b"a"], 0.0) == []
    out = broker.receive(b"W", [W2, FINAL, b"C1", b"", b"b"], 0.0)
    assert out == [[b"C1", b"", b"MDPC01", b"echo", b"a", b"b"]]


def test_a_streamed_reply_too_large_for_an_mdp01_client_becomes_an_error() -> None:
    broker = make_broker(max_message_bytes=10)
    ready(broker, b"W")
    broker.receive(b"C1", [b"", b"MDPC01", b"echo", b"q"], 0.0)
    broker.receive(b"W", [W2, PARTIAL, b"C1", b"", b"x" * 8], 0.0)
    broker.receive(b"W", [W2, PARTIAL, b"C1", b"", b"x" * 8], 0.0)
    out = broker.receive(b"W", [W2, FINAL, b"C1", b"", b"end"], 0.0)
    assert out[0][:4] == [b"C1", b"", b"MDPC01", b"echo"]
    assert error_code(out[0]) == "broker.too-large"


def test_shutdown_disconnects_every_worker() -> None:
    broker = make_broker()
    ready(broker, b"A")
    broker.receive(b"B", [b"", b"MDPW01", b"\x01", b"echo"], 0.0)
    assert sorted(broker.shutdown()) == sorted(
        [[b"A", W2, DISCONNECT], [b"B", b"", b"MDPW01", b"\x05"]]
    )


# -- anything goes ----

peers = st.sampled_from([b"A", b"B", b"C", b"D"])
services = st.sampled_from([b"echo", b"other", b"mmi.service"])
frames_ = st.one_of(
    st.tuples(services).map(lambda s: [W2, READY, s[0]]),
    st.tuples(services).map(lambda s: [C2, C_REQUEST, s[0], b"x"]),
    st.tuples(peers, st.booleans()).map(
        lambda t: [W2, FINAL if t[1] else PARTIAL, t[0], b"", b"r"]
    ),
    st.just([W2, HEARTBEAT]),
    st.just([W2, DISCONNECT]),
    st.just([b"", b"MDPW01", b"\x01", b"echo"]),
    st.just([b"", b"MDPC01", b"echo", b"x"]),
    st.lists(st.binary(max_size=6), max_size=4),
)
steps = st.lists(
    st.tuples(peers, frames_, st.floats(min_value=0, max_value=2), st.booleans()), max_size=60
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_no_sequence_of_messages_breaks_the_broker(script: list) -> None:
    broker = make_broker()
    now = 0.0
    for sender, frames, delay, tick in script:
        now += delay
        for message in broker.receive(sender, frames, now):
            assert message[0]  # always addressed
        if tick:
            broker.tick(now)
        check_invariants(broker)
