"""The role × operation matrix through a real CURVE broker: every operation of every plantd
service (generated from the services' own definitions), called by a user of each built-in
role, is answered by the service exactly when the role grants the operation's declared access,
and refused by the broker with ``broker.denied`` otherwise.

Each service is served by a stand-in worker holding the key of the principal that may serve it
(the state service's, a module's, …), which answers every call; ``org.plantd.Audit`` is the
broker's own, real one.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator

import pytest

from plantd.client import Client
from plantd.config._security import BUILTIN_ROLES
from plantd.security import Credentials
from plantd.service import encode_call
from plantd.testing import wait_for_workers
from plantd.worker import AsyncWorker, Request
from tests.conftest import Stack
from tests.unit.security._catalogue import DEFINITIONS, declared

pytestmark = pytest.mark.stack(security={"mode": "curve"})

# Who serves each service (the principal whose kind may).
SERVERS = {
    "org.plantd.State": "service.state",
    "org.plantd.Historian": "service.historian",
    "org.plantd.module.m1": "module.m1",
    "org.plantd.sink.cloud": "sink.cloud",
    "org.plantd.module.Echo": "service.echo",
    "org.plantd.sim.rig": "service.sim",
    "org.plantd.Logger": "service.logger",
    "org.plantd.Health": "service.logger",
    "org.plantd.Alarms": "service.control",
    "org.plantd.Control": "service.control",
}
STUB_REPLY = json.dumps({"ok": True, "result": "served"}).encode()


class StandIns:
    """One worker per service, each with its server's key, on an event loop in a thread."""

    def __init__(self, endpoint: str, credentials: dict[str, Credentials]) -> None:
        async def answer(request: Request) -> list[bytes]:
            return [STUB_REPLY]

        self.workers = [
            AsyncWorker(
                endpoint,
                service,
                answer,
                heartbeat_interval=0.25,
                credentials=credentials[principal],
            )
            for service, principal in SERVERS.items()
        ]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def serve() -> None:
            async with asyncio.TaskGroup() as group:
                for worker in self.workers:
                    group.create_task(worker.run())

        self.loop.run_until_complete(serve())

    def __enter__(self) -> StandIns:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self.workers:
            self.loop.call_soon_threadsafe(worker.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def stand_ins(stack: Stack) -> Iterator[None]:
    stack.start_broker()
    credentials = {principal: stack.credentials(principal) for principal in SERVERS.values()}
    with StandIns(stack.endpoint, credentials):
        for service in SERVERS:
            wait_for_workers(stack.endpoint, service)
        yield


def _outcome(client: Client, service: str, operation: str) -> str:
    """ "allowed" if the service answered, "denied" if the broker refused, else what came."""
    reply = json.loads(client.request(service, *encode_call(operation, {}))[0])
    if not reply["ok"] and reply["error"]["code"] == "broker.denied":
        return "denied"
    if reply == {"ok": True, "result": "served"} or service == "org.plantd.Audit":
        return "allowed"  # the stand-in answered, or the real audit service did
    return f"unexpected {reply}"


@pytest.mark.usefixtures("stand_ins")
@pytest.mark.parametrize("role", sorted(BUILTIN_ROLES))
def test_each_role_may_call_exactly_what_it_grants(stack: Stack, role: str) -> None:
    user = stack.credentials(f"user.{role}", (role,))
    wrong = []
    cells = 0
    with Client(stack.endpoint, timeout=5, retries=0, credentials=user) as client:
        for definition in DEFINITIONS:
            for operation, access in declared(definition):
                cells += 1
                expected = "allowed" if access in BUILTIN_ROLES[role] else "denied"
                got = _outcome(client, definition.name, operation)
                if got != expected:
                    wrong.append(f"{definition.name} {operation} ({access}): {got}, not {expected}")
    assert cells > 30
    assert wrong == []
