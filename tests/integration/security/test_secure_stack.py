"""The whole stack under CURVE, as the appliance runs it: real broker, state service, historian
and module processes, each proving itself with its own key — and each held to what its
principal may do. Also: the audit trail is exact, and revocation cuts a peer at once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest
import zmq

from plantd.bus import BusPublisher, BusSubscriber
from plantd.client import Client
from plantd.config import load_config
from plantd.errors import RequestTimeout, SecurityError, ServiceError
from plantd.security import Credentials
from plantd.service import call
from plantd.testing import ManagedProcess, wait_for_workers
from tests.conftest import Stack

pytestmark = pytest.mark.stack(security={"mode": "curve"})

STATE = "org.plantd.State"
MODULE = """
driver: fake
state_interval: 200ms
state_values: true
groups:
  - name: main
    interval: 100ms
    points:
      - {name: level, value: 1.5}
      - {name: setpoint, value: 10.0, writable: true}
"""


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
        except (ServiceError, RequestTimeout):
            result = None
        if result:
            return result
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def start(stack: Stack, name: str, args: list[str]) -> ManagedProcess:
    process = ManagedProcess.plantd(args, name=name, log_dir=stack.log_dir).start()
    stack.processes.append(process)
    return process


def start_state(stack: Stack) -> None:
    start(stack, "state", ["plantd.state", "--config", str(stack.config_dir)])
    wait_for_workers(stack.endpoint, STATE)


def start_module(stack: Stack, name: str = "m1", text: str = MODULE) -> None:
    modules = stack.config_dir / "modules.d"
    modules.mkdir(exist_ok=True)
    (modules / f"{name}.yaml").write_text(text)
    stack.credentials(f"module.{name}")  # its key, as `plant keys init` makes it on the box
    start(stack, f"module-{name}",
          ["plantd.cli", "--config", str(stack.config_dir), "module", "run", name])  # fmt: skip
    wait_for_workers(stack.endpoint, f"org.plantd.module.{name}")


def test_the_stack_serves_under_curve(stack: Stack) -> None:
    stack.start_broker()
    start_state(stack)
    # The historian subscribes before the module publishes: the module's steady level is
    # published once, then only every max_silence (60 s), and a bus drops what nobody hears.
    start(stack, "historian", ["plantd.historian", "--config", str(stack.config_dir)])
    wait_for_workers(stack.endpoint, "org.plantd.Historian")
    start_module(stack)
    with Client(stack.endpoint, timeout=3, retries=2) as admin:  # this process: an admin
        wait_for(lambda: call(admin, "org.plantd.module.m1", "read").get("level", {})
                 .get("quality") == "good", what="the module reads its device")  # fmt: skip
        written = call(admin, "org.plantd.module.m1", "write", {"point": "setpoint", "value": 42.0})
        assert written["value"] == 42.0
        # The module keeps its own scope in the state service (a module principal may).
        stored = wait_for(lambda: call(admin, STATE, "get", {"scope": "org.plantd.module.m1",
                                                              "key": "value.level"}))  # fmt: skip
        assert stored["value"]["value"] == 1.5  # type: ignore[index]
        # The historian got the module's samples through the guarded bus.
        since = time.time() - 60
        wait_for(lambda: call(admin, "org.plantd.Historian", "samples",
                              {"point": "m1.level", "since": since}),
                 what="samples stored")  # fmt: skip

        # The write is in the audit trail, with who did it.
        def writes() -> list[tuple[str, str]]:
            found = call(admin, "org.plantd.Audit", "query", {"target": "org.plantd.module.m1"})
            return [(r["principal"], r["result"]) for r in found["records"]
                    if r["target"] == "org.plantd.module.m1 write"]  # fmt: skip

        wait_for(writes, what="the write is audited")
        assert writes() == [("user.root", "ok")]


def test_a_module_may_do_only_what_is_its_own(stack: Stack) -> None:
    stack.start_broker()
    start_state(stack)
    start_module(stack, "m2")  # another module, the target
    m1 = stack.credentials("module.m1")
    with Client(stack.endpoint, timeout=3, retries=0, credentials=m1) as client:
        call(client, STATE, "create-scope", {"scope": "org.plantd.module.m1"})
        call(client, STATE, "set", {"scope": "org.plantd.module.m1", "key": "k", "value": 1})
        with pytest.raises(ServiceError) as refused:
            call(client, STATE, "set", {"scope": "org.plantd.module.m2", "key": "k", "value": 1})
        assert refused.value.code == "state.forbidden"
        with pytest.raises(ServiceError) as denied:
            call(client, "org.plantd.module.m2", "write", {"point": "setpoint", "value": 1.0})
        assert denied.value.code == "broker.denied"
        assert "module.m1 may not call 'write' on org.plantd.module.m2" in denied.value.message
    # Nor may it serve another's service (READY is refused), nor publish another's topics.
    context = zmq.Context.instance()
    rogue = context.socket(zmq.DEALER)
    m1.apply(rogue)
    rogue.connect(stack.endpoint)
    rogue.send_multipart([b"MDPW02", b"\x01", STATE.encode()])
    assert rogue.poll(3000)
    assert rogue.recv_multipart() == [b"MDPW02", b"\x06"]  # DISCONNECT
    rogue.close(linger=0)
    with Client(stack.endpoint, timeout=3) as admin:
        table = json.loads(admin.request("mmi.workers", STATE.encode())[0])
        registered = table[STATE]["idle"] + table[STATE]["busy"]
        assert registered == load_config(stack.config_dir).state.workers  # the real ones only

    async def publish() -> list[str]:
        subscriber = BusSubscriber(stack.settings["bus"]["backend"], ["data."])
        publisher = BusPublisher(stack.settings["bus"]["frontend"], credentials=m1)
        assert await publisher.wait_for_subscribers(5)
        for n in range(20):
            publisher.publish_sample("data.m2.forged", float(n))  # not its own
            publisher.publish_sample("data.m1.level", float(n))
        topics = []
        while (message := await subscriber.receive_within(1.0)) is not None:
            topics.append(message.topic)
        publisher.close()
        subscriber.close()
        return topics

    topics = asyncio.run(publish())
    assert "data.m1.level" in topics
    assert "data.m2.forged" not in topics


def test_the_audit_trail_is_exact(stack: Stack) -> None:
    stack.start_broker()
    start_state(stack)
    engineer = stack.credentials("user.eng", ("engineer",))
    viewer = stack.credentials("user.viewer", ("viewer",))
    writes, refusals = 40, 7
    with Client(stack.endpoint, timeout=3, credentials=engineer) as client:
        call(client, STATE, "create-scope", {"scope": "plant.line1"})
        for n in range(writes):
            call(client, STATE, "set", {"scope": "plant.line1", "key": f"k{n}", "value": n})
            call(client, STATE, "get", {"scope": "plant.line1", "key": f"k{n}"})  # not audited
    with Client(stack.endpoint, timeout=3, retries=0, credentials=viewer) as client:
        for _ in range(refusals):
            with pytest.raises(ServiceError):
                call(client, STATE, "set", {"scope": "plant.line1", "key": "x", "value": 0})
        call(client, STATE, "get", {"scope": "plant.line1", "key": "k0"})  # allowed, not audited

    def records(**filters: object) -> list[dict[str, object]]:
        result = call(admin, "org.plantd.Audit", "query", {"limit": 10_000, **filters})
        return result["records"]  # type: ignore[no-any-return]

    with Client(stack.endpoint, timeout=3) as admin:
        wait_for(lambda: sum(r["count"] for r in records(principal="user.viewer")) == refusals,
                 what="the refusals are written")  # fmt: skip
        sets = records(principal="user.eng", target="org.plantd.State set")
        assert len(sets) == writes
        assert {(r["action"], r["result"]) for r in sets} == {("call", "ok")}
        assert sorted(json.loads(str(r["detail"]))["key"] for r in sets) == sorted(
            f"k{n}" for n in range(writes)
        )
        assert [r["target"] for r in records(principal="user.eng")].count(
            "org.plantd.State create-scope"
        ) == 1
        assert not [r for r in records(principal="user.eng") if "get" in str(r["target"])]
        denied = records(principal="user.viewer")
        assert {(r["action"], r["target"], r["result"]) for r in denied} == {
            ("call", "org.plantd.State set", "denied")
        }
        assert sum(int(r["count"]) for r in denied) == refusals  # type: ignore[call-overload]
        assert call(admin, "org.plantd.Audit", "verify")["ok"] is True


def _connected(credentials: Credentials, endpoint: str) -> zmq.Socket[bytes]:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    credentials.apply(sock)
    sock.connect(endpoint)
    return sock


def test_revocation_cuts_a_connection_within_a_second(stack: Stack) -> None:
    stack.start_broker()
    stack.start_echo()
    operator = stack.credentials("user.op", ("operator",))
    sock = _connected(operator, stack.endpoint)
    ended = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    # A request in flight: Echo holds it for 5 s.
    sock.send_multipart([b"MDPC02", b"\x01", b"org.plantd.module.Echo", b"echo",
                         b'{"delay": 5}'])  # fmt: skip
    echo = b"org.plantd.module.Echo"
    with Client(stack.endpoint, timeout=3) as admin:
        wait_for(lambda: json.loads(admin.request("mmi.workers", echo)[0])[echo.decode()]["busy"],
                 what="the request is in flight")  # fmt: skip
    revoked_at = time.monotonic()
    stack.keyset().revoke("user.op")
    assert ended.poll(5000), "the revoked client's connection was never cut"
    cut_after = time.monotonic() - revoked_at
    assert cut_after <= 1.0, f"cut after {cut_after:.2f} s"
    assert not sock.poll(500)  # and the in-flight reply never reaches it
    # (A monitor nobody reads would block the context's I/O thread: stop it first.)
    sock.disable_monitor()
    ended.close(linger=0)
    sock.close(linger=0)
    # It cannot come back with that key, and is told so.
    with (
        Client(stack.endpoint, timeout=0.5, retries=1, credentials=operator) as client,
        pytest.raises(SecurityError, match=r"refused this client's key \(user.op\)"),
    ):
        client.request("mmi.broker", b"")
    with Client(stack.endpoint, timeout=3) as admin:
        records = call(admin, "org.plantd.Audit", "query", {"action": "key"})["records"]
        assert any(r["target"] == "user.op" and r["detail"] == "revoked" for r in records)


def test_a_rotated_module_key_takes_over_without_a_restart(stack: Stack) -> None:
    stack.start_broker()
    start_state(stack)
    start_module(stack, text=MODULE.replace("value: 1.5}", "value: 1.5, pattern: ramp}"))
    module = stack.processes[-1]  # its level ramps: a new sample every poll

    async def samples_after(moment: float, count: int) -> int:
        subscriber = BusSubscriber(stack.settings["bus"]["backend"], ["data.m1."])
        seen = 0
        deadline = time.monotonic() + 20
        while seen < count and time.monotonic() < deadline:
            message = await subscriber.receive_within(1.0)
            if message is not None and message.payload.timestamp > moment:  # type: ignore[union-attr]
                seen += 1
        subscriber.close()
        return seen

    old = stack.credentials("module.m1")
    stack.keyset().rotate("module.m1")
    rotated_at = time.time()
    new = stack.credentials("module.m1")
    assert new.public != old.public
    # Its samples flow again (the bus refused the old key; the publisher took the new one)…
    assert asyncio.run(samples_after(rotated_at + 1.0, 5)) == 5
    # …and its service answers (its worker registered again with the new key).
    with Client(stack.endpoint, timeout=3, retries=3) as admin:
        wait_for(lambda: call(admin, "org.plantd.module.m1", "read").get("level"),
                 what="the module answers after the rotation")  # fmt: skip
        records = call(admin, "org.plantd.Audit", "query", {"action": "key"})["records"]
        assert any(r["target"] == "module.m1" and r["detail"] == "key rotated" for r in records)
    assert module.running()  # no restart
    # The old key is refused from now on.
    with Client(stack.endpoint, timeout=0.5, retries=0, credentials=old) as client,\
            pytest.raises(SecurityError):  # fmt: skip
        client.request("mmi.broker", b"")
