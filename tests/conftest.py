"""Fixtures shared by the integration tests: a throwaway stack of real plantd processes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from plantd.broker._endpoints import has_wildcard
from plantd.client import Client
from plantd.config import load_config
from plantd.errors import RequestTimeout, SecurityError
from plantd.security import Credentials, Identity, KeySet, use_identity, user_identity
from plantd.testing import (
    ANY_PORT,
    ManagedProcess,
    ipc_endpoints,
    merge_into_config,
    wait_for_broker,
    wait_for_endpoints,
    wait_for_workers,
    write_config,
)

# Fast heartbeats so failure tests finish in seconds; the rules are the same at any pace.
HEARTBEAT = 0.25
LIVENESS = 3


@dataclass
class Stack:
    """A config directory, and the processes started from it.

    The broker's endpoints start as wildcards (:data:`~plantd.testing.ANY_PORT`): its first
    start binds ports the system picks, and the stack writes the endpoints it got into the
    config every other process (and a restarted broker) is then started with. So
    :attr:`endpoint` and the bus endpoints in :attr:`settings` are known once the broker has
    started; a test that wants no broker at all calls :meth:`without_broker`.
    """

    config_dir: Path
    log_dir: Path
    settings: dict[str, dict[str, Any]]
    processes: list[ManagedProcess] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        endpoint: str = self.settings["broker"]["endpoint"]
        if has_wildcard(endpoint):
            raise RuntimeError(
                "the stack's broker endpoint is known once its broker has started "
                "(stack.start_broker(); or stack.without_broker() for a test with none)"
            )
        return endpoint

    def _unbound(self) -> bool:
        bus = self.settings["bus"]
        return has_wildcard(self.settings["broker"]["endpoint"], bus["frontend"], bus["backend"])

    def start_broker(self, name: str = "broker") -> ManagedProcess:
        process = ManagedProcess.plantd(
            ["plantd.broker", "--config", str(self.config_dir)], name=name, log_dir=self.log_dir
        ).start()
        self.processes.append(process)
        return self.broker_started(process)

    def broker_started(self, process: ManagedProcess) -> ManagedProcess:
        """Wait until ``process``, a broker started from this stack's config (by the stack or
        by a test, e.g. under ``prlimit``), serves; return it. On the broker's first start,
        the endpoints it got go into the config: from then on every process, a restarted
        broker too, has them."""
        if self._unbound():
            run_dir = Path(self.settings["paths"]["run"])
            self._set_endpoints(wait_for_endpoints(run_dir, process))
        wait_for_broker(self.endpoint, process=process)
        return process

    def without_broker(self) -> str:
        """Point the stack at endpoints nobody serves (ipc paths of its own, unique without
        choosing a port) for a test with no broker at all; returns the broker's."""
        endpoints = ipc_endpoints(self.config_dir.parent / "no-broker")
        self._set_endpoints(endpoints)
        return endpoints["broker"]["endpoint"]

    def _set_endpoints(self, sections: dict[str, dict[str, str]]) -> None:
        """Merge ``sections`` into the settings and into ``plantd.yaml``."""
        for section, values in sections.items():
            self.settings.setdefault(section, {}).update(values)
        merge_into_config(self.config_dir, sections)

    def start_echo(self, name: str = "echo", *, wait: bool = True) -> ManagedProcess:
        process = ManagedProcess.plantd(
            ["plantd.cli", "--config", str(self.config_dir), "serve", "echo"],
            name=name,
            log_dir=self.log_dir,
        ).start()
        self.processes.append(process)
        if wait:
            wait_for_workers(self.endpoint, "org.plantd.module.Echo", count=self.echo_count())
        return process

    def keyset(self) -> KeySet:
        return KeySet(load_config(self.config_dir))

    def credentials(self, principal: str, roles: tuple[str, ...] = ()) -> Credentials:
        """``principal``'s keys on a CURVE stack: admitted now (with ``roles``) if it is not yet,
        its secret kept in the stack's secrets directory."""
        keyset = self.keyset()
        secret = keyset.secret_path(principal)
        added = not keyset.public_path(principal).exists()
        if added:
            keyset.add(principal, roles=roles, generate_secret=secret)
        credentials = Identity(secret, keyset.public_path("broker")).credentials()
        if added and any(p.name == "broker" and p.running() for p in self.processes):
            self._wait_admitted(credentials)
        return credentials

    def _wait_admitted(self, credentials: Credentials, timeout: float = 10.0) -> None:
        """The broker re-reads its keys every 0.25 s: wait until it admits these."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with Client(self.endpoint, timeout=0.3, retries=0, credentials=credentials) as c:
                    c.request("mmi.service", b"mmi.broker")
                return
            except (RequestTimeout, SecurityError):  # refused until the broker reads the key
                if time.monotonic() > deadline:
                    raise

    def echo_count(self) -> int:
        return sum(1 for p in self.processes if p.name.startswith("echo") and p.running())

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log_text()}" for p in self.processes)


def make_stack(base: Path, **overrides: dict[str, Any]) -> Stack:
    settings: dict[str, dict[str, Any]] = {
        "broker": {
            "endpoint": ANY_PORT,
            "heartbeat_interval": HEARTBEAT,
            "heartbeat_liveness": LIVENESS,
            "request_expiry": 3.0,
        },
        "bus": {"frontend": ANY_PORT, "backend": ANY_PORT},
        "worker": {"heartbeat_interval": HEARTBEAT, "heartbeat_liveness": LIVENESS},
        "client": {"timeout": 2.0, "retries": 3},
        "paths": {"data": str(base / "data"), "run": str(base / "run")},
        "logging": {"level": "debug"},
        "logger": {"listen": "127.0.0.1:0"},  # any free port, read back from the run directory
        "proxy": {"listen": "127.0.0.1:0"},  # the same
    }
    for section, values in overrides.items():
        settings.setdefault(section, {}).update(values)
    config_dir = write_config(base / "etc", settings)
    return Stack(config_dir, base / "logs", settings)


@pytest.fixture
def stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A fresh stack directory; every process started from it is killed afterwards.

    ``@pytest.mark.stack(security={"mode": "curve"})`` makes it a CURVE stack with its keys;
    the test process then calls it as its user, an admin (``user.LOGIN``).
    """
    marker = request.node.get_closest_marker("stack")
    overrides = marker.kwargs if marker else {}
    the_stack = make_stack(tmp_path, **overrides)
    config = load_config(the_stack.config_dir)
    use_identity(user_identity(config, {}))
    try:
        yield the_stack
    finally:
        use_identity(None)
        for process in the_stack.processes:
            process.kill()
    if request.node.stash.get(_failed, False):
        print(the_stack.logs())


@pytest.fixture(autouse=True)
def _no_identity_left_behind() -> Iterator[None]:
    """A test that runs ``plant`` in this process leaves its user's identity set (the CLI sets
    it for the process, as an entry point does): the next test starts without one."""
    yield
    use_identity(None)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--crash-cycles",
        type=int,
        default=50,
        metavar="N",
        help="kill -9 cycles in the state service's crash-durability test (default 50)",
    )


_failed = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_failed] = True
    return report
