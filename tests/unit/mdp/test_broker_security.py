"""The sans-IO broker's security rules S1–S5 (see the rules at the top of
plantd/mdp/_broker.py), frame by frame with a policy built in memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plantd.config import BrokerConfig, SecurityConfig
from plantd.mdp import Broker
from plantd.mdp._address import unwrap_address, wrap_address
from plantd.security import Entry, KeyRing, Policy, kind_grants

C2, W2 = b"MDPC02", b"MDPW02"
READY, REQUEST, FINAL, DISCONNECT = b"\x01", b"\x02", b"\x04", b"\x06"
STATE, PUMP = b"org.plantd.State", b"org.plantd.module.pump"


def keyring(**roles: tuple[str, ...]) -> KeyRing:
    """Admits each principal, users with the roles given (module.pump, service.state too)."""
    entries = {}
    for n, principal in enumerate(["module.pump", "service.state", *roles]):
        grants = kind_grants(principal)
        if principal in roles:
            grants = grants.merged(roles=frozenset(roles[principal]))
        key = bytes([65 + n]) * 40
        entries[principal] = Entry(principal, key, grants, Path(f"{principal}.key"))
    return KeyRing({e.public: e for e in entries.values()}, entries)


@pytest.fixture
def broker() -> Broker:
    users = {"user.viewer": ("viewer",), "user.op": ("operator",), "user.eng": ("engineer",)}
    policy = Policy(SecurityConfig(), keyring(**users))
    config = BrokerConfig(heartbeat_interval=1.0, request_expiry=5.0)
    return Broker(config, now=0.0, policy=policy)


def call(broker: Broker, client: bytes, principal: str, service: bytes, op: str) -> list:
    body = [op.encode(), b'{"point":"speed","value":1}']
    return broker.receive(client, [C2, b"\x01", service, *body], 0.0, principal)


def error_code(message: list[bytes]) -> str:
    code: str = json.loads(message[-1])["error"]["code"]
    return code


def test_s1_a_worker_may_register_only_what_its_principal_may_serve(broker: Broker) -> None:
    out = broker.receive(b"W1", [W2, READY, STATE], 0.0, "module.pump")
    assert out == [[b"W1", W2, DISCONNECT]]
    assert broker.workers == {}
    assert broker.counters.denied == 1
    [event] = broker.audit_events
    assert (event.principal, event.action, event.target, event.result) == (
        "module.pump",
        "register",
        "org.plantd.State",
        "denied",
    )
    assert broker.receive(b"W2", [W2, READY, PUMP], 0.0, "module.pump")[0][2] == b"\x05"
    assert b"W2" in broker.workers


def test_s2_a_request_the_principal_may_not_make_never_reaches_a_worker(broker: Broker) -> None:
    broker.receive(b"W", [W2, READY, PUMP], 0.0, "module.pump")
    [reply] = call(broker, b"C", "user.viewer", PUMP, "write")
    assert reply[:4] == [b"C", C2, b"\x03", PUMP]
    assert error_code(reply) == "broker.denied"
    assert "user.viewer may not call 'write' on org.plantd.module.pump" in reply[-1].decode()
    assert broker.workers[b"W"].request is None  # nothing was dispatched
    [event] = broker.audit_events
    assert (event.action, event.target, event.result) == ("call", "org.plantd.module.pump write",
                                                          "denied")  # fmt: skip


def test_s3_s4_an_allowed_call_carries_its_principal_and_is_audited_when_it_ends(
    broker: Broker,
) -> None:
    broker.receive(b"W", [W2, READY, PUMP], 0.0, "module.pump")
    [dispatched] = call(broker, b"C", "user.op", PUMP, "write")
    assert dispatched[:3] == [b"W", W2, REQUEST]
    address = dispatched[3]
    assert unwrap_address(address) == (b"C", "user.op")
    assert broker.audit_events == []  # recorded when it ends, with its result
    reply = [b'{"ok":false,"error":{"code":"module.bad-value","message":"no"}}']
    [answered] = broker.receive(b"W", [W2, FINAL, address, b"", *reply], 0.1)
    assert answered == [b"C", C2, b"\x03", PUMP, *reply]
    [event] = broker.audit_events
    assert (event.principal, event.action, event.target, event.result) == (
        "user.op",
        "call",
        "org.plantd.module.pump write",
        "module.bad-value",
    )
    assert json.loads(event.detail) == {"point": "speed", "value": 1}


def test_s3_a_reply_must_carry_the_address_the_worker_was_given(broker: Broker) -> None:
    broker.receive(b"W", [W2, READY, PUMP], 0.0, "module.pump")
    call(broker, b"C", "user.op", PUMP, "write")
    out = broker.receive(b"W", [W2, FINAL, b"C", b"", b"{}"], 0.1)  # the bare routing id
    assert out == [[b"W", W2, DISCONNECT]]


def test_reads_and_routine_calls_are_not_audited(broker: Broker) -> None:
    broker.receive(b"S", [W2, READY, STATE], 0.0, "service.state")
    [dispatched] = call(broker, b"C", "module.pump", STATE, "set")  # its kind's own grant
    broker.receive(b"S", [W2, FINAL, dispatched[3], b"", b'{"ok":true}'], 0.1)
    [dispatched] = call(broker, b"C", "user.viewer", STATE, "get")  # a read
    broker.receive(b"S", [W2, FINAL, dispatched[3], b"", b'{"ok":true}'], 0.2)
    assert broker.audit_events == []


def test_s4_a_call_that_ends_in_a_broker_error_is_audited_with_it(broker: Broker) -> None:
    call(broker, b"C", "user.eng", STATE, "set")  # nobody serves it: queued
    out = broker.tick(10.0)
    assert error_code(out[0]) == "broker.no-worker"
    [event] = broker.audit_events
    assert (event.principal, event.result) == ("user.eng", "broker.no-worker")


def test_s5_revoking_disconnects_its_workers_and_drops_its_queued_requests(
    broker: Broker,
) -> None:
    broker.receive(b"W", [W2, READY, PUMP], 0.0, "module.pump")
    call(broker, b"C1", "user.eng", STATE, "set")  # queued: nobody serves State
    call(broker, b"C2", "user.op", STATE, "get")
    assert broker.queued == 2
    out = broker.revoke({"module.pump", "user.eng"}, 0.1)
    assert [b"W", W2, DISCONNECT] in out
    assert broker.workers == {}
    assert broker.queued == 1
    assert [r.principal for r in broker.services[STATE].requests] == ["user.op"]


def test_without_a_policy_the_broker_is_plain_mdp() -> None:
    broker = Broker(BrokerConfig(), now=0.0)
    broker.receive(b"W", [W2, READY, STATE], 0.0, None)
    [dispatched] = broker.receive(b"C", [C2, b"\x01", STATE, b"set", b"{}"], 0.0, None)
    assert dispatched == [b"W", W2, REQUEST, b"C", b"", b"set", b"{}"]
    assert broker.audit_events == []


def test_an_address_round_trips() -> None:
    address = wrap_address(b"\x00\x01\x02\x03\x04", "user.ünïcode")
    assert unwrap_address(address) == (b"\x00\x01\x02\x03\x04", "user.ünïcode")


# -- S6: delegation (the proxy calls for the person logged in to it) ---------------------------


@pytest.fixture
def delegating_broker() -> Broker:
    users = {"user.viewer": ("viewer",), "user.op": ("operator",), "service.proxy": ()}
    policy = Policy(SecurityConfig(), keyring(**users))
    return Broker(BrokerConfig(request_expiry=5.0), now=0.0, policy=policy)


def delegated(broker: Broker, sender: str, on_behalf: str, op: str = "write") -> list:
    body = [f"@{on_behalf}".encode(), op.encode(), b'{"point":"speed","value":1}']
    return broker.receive(b"P", [C2, b"\x01", PUMP, *body], 0.0, sender)


def test_s6_a_delegated_call_is_the_other_principals_and_audited_as_theirs(
    delegating_broker: Broker,
) -> None:
    broker = delegating_broker
    broker.receive(b"W", [W2, READY, PUMP], 0.0, "module.pump")
    [dispatched] = delegated(broker, "service.proxy", "user.op")
    assert dispatched[:3] == [b"W", W2, REQUEST]
    assert unwrap_address(dispatched[3]) == (b"P", "user.op")
    assert dispatched[5:] == [b"write", b'{"point":"speed","value":1}']  # the @ frame is gone
    broker.receive(b"W", [W2, FINAL, dispatched[3], b"", b'{"ok":true,"result":null}'], 0.1)
    [event] = broker.audit_events
    assert (event.principal, event.target, event.result, event.source) == (
        "user.op",
        "org.plantd.module.pump write",
        "ok",
        "via service.proxy",
    )


def test_s6_the_others_roles_decide_not_the_delegates(delegating_broker: Broker) -> None:
    broker = delegating_broker
    broker.receive(b"W", [W2, READY, PUMP], 0.0, "module.pump")
    [reply] = delegated(broker, "service.proxy", "user.viewer")
    assert error_code(reply) == "broker.denied"
    assert "user.viewer may not call 'write'" in json.loads(reply[-1])["error"]["message"]
    assert broker.workers[b"W"].request is None
    [event] = broker.audit_events
    assert (event.principal, event.result, event.source) == (
        "user.viewer",
        "denied",
        "via service.proxy",
    )


@pytest.mark.parametrize(
    ("sender", "on_behalf", "why"),
    [
        ("user.op", "user.viewer", "user.op may not act on behalf of 'user.viewer'"),
        ("module.pump", "user.op", "module.pump may not act on behalf of 'user.op'"),
        ("service.proxy", "module.pump", "may not act on behalf of 'module.pump'"),
        ("service.proxy", "user.nobody", "user.nobody (on whose behalf service.proxy calls)"),
    ],
)
def test_s6_only_a_delegate_may_act_and_only_for_admitted_people(
    delegating_broker: Broker, sender: str, on_behalf: str, why: str
) -> None:
    broker = delegating_broker
    broker.receive(b"W", [W2, READY, PUMP], 0.0, "module.pump")
    [reply] = delegated(broker, sender, on_behalf)
    assert error_code(reply) == "broker.denied"
    assert why in json.loads(reply[-1])["error"]["message"]
    assert broker.workers[b"W"].request is None
    [event] = broker.audit_events
    assert (event.principal, event.action, event.result) == (sender, "call", "denied")


def test_s6_without_a_policy_the_body_goes_on_untouched() -> None:
    broker = Broker(BrokerConfig(request_expiry=5.0), now=0.0)
    broker.receive(b"W", [W2, READY, PUMP], 0.0)
    [dispatched] = broker.receive(b"P", [C2, b"\x01", PUMP, b"@user.op", b"write"], 0.0)
    assert dispatched[5:] == [b"@user.op", b"write"]
