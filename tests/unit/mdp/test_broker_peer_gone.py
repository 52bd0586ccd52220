"""W7: a send that finds a worker's connection closed (ROUTER_MANDATORY in the shell) makes the
broker forget that worker at once. A request that was never delivered goes to another worker
with no attempt counted; one the worker had already taken is a lost attempt, as at expiry."""

from __future__ import annotations

from tests.unit.mdp.test_broker import (
    C2,
    C_FINAL,
    W2,
    check_invariants,
    error_code,
    final,
    make_broker,
    ready,
    request,
)


def test_an_undelivered_request_goes_through_every_dead_worker_to_a_live_one() -> None:
    broker = make_broker(worker_loss_retries=1)
    for dead in (b"D1", b"D2", b"D3"):  # registered first: least recently used, picked first
        ready(broker, dead)
    ready(broker, b"LIVE")
    [dispatch] = request(broker, b"C")
    assert dispatch[0] == b"D1"
    hops = [dispatch[0]]
    while dispatch[0] != b"LIVE":
        [dispatch] = broker.peer_gone(dispatch[0], dispatch, 0.0)
        hops.append(dispatch[0])
    assert hops == [b"D1", b"D2", b"D3", b"LIVE"]
    assert dispatch[:3] == [b"LIVE", W2, b"\x02"]
    # More dead workers than worker_loss_retries, yet no worker-lost: it never reached them.
    assert broker.counters.workers_gone == 3
    assert broker.counters.worker_lost == 0
    assert set(broker.workers) == {b"LIVE"}
    assert final(broker, b"LIVE", b"C")[0][:3] == [b"C", C2, C_FINAL]
    check_invariants(broker)


def test_with_no_worker_left_the_request_waits_for_the_next_one() -> None:
    broker = make_broker()
    ready(broker, b"D")
    [dispatch] = request(broker, b"C")
    assert broker.peer_gone(b"D", dispatch, 0.0) == []
    assert broker.queued == 1
    check_invariants(broker)
    [dispatch] = ready(broker, b"NEW", now=1.0)  # the restarted service registers
    assert dispatch[:3] == [b"NEW", W2, b"\x02"]
    assert broker.queued == 0
    check_invariants(broker)


def test_a_request_the_worker_had_taken_counts_as_a_lost_attempt() -> None:
    broker = make_broker(worker_loss_retries=0)
    ready(broker, b"W")
    request(broker, b"C")
    heartbeat = [b"W", W2, b"\x04"]  # a later message to the busy worker found it gone
    [reply] = broker.peer_gone(b"W", heartbeat, 0.0)
    assert reply[:2] == [b"C", C2]
    assert error_code(reply) == "broker.worker-lost"
    assert broker.counters.worker_lost == 1
    check_invariants(broker)


def test_a_client_that_left_is_nobody_to_forget() -> None:
    broker = make_broker()
    ready(broker, b"W")
    request(broker, b"C")
    [reply] = final(broker, b"W", b"C")
    assert broker.peer_gone(b"C", reply, 0.0) == []
    assert set(broker.workers) == {b"W"}
    assert broker.counters.workers_gone == 0
    check_invariants(broker)
