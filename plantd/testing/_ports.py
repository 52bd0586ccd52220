"""Where a server started by a test really listens, without ever choosing a port for it.

A port chosen as "free a moment ago" and bound later by another process may be taken by then
(tests in parallel, a busy CI machine): "Address already in use", or two servers on one port.
So every server a test starts binds port 0 (or a ZeroMQ wildcard) and the test reads the port
it got back:

- the broker records its endpoints in ``<paths.run>/broker-endpoints.json``:
  :func:`wait_for_endpoints`;
- a server that says nothing about its port: the kernel's table of listening sockets, for
  the sockets that process holds: :func:`listening_ports`.

A test that starts services *before* the broker (they must wait for it) cannot wait for the
broker's ports: :func:`ipc_endpoints` gives it endpoints in a directory of its own instead,
known before anything binds and nobody else's by construction.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from plantd.broker._endpoints import endpoints_path, has_wildcard
from plantd.testing._processes import ManagedProcess, wait_for_broker

__all__ = [
    "ANY_PORT",
    "ipc_endpoints",
    "listening_ports",
    "merge_into_config",
    "start_broker",
    "wait_for_endpoints",
    "wait_for_listening_port",
]

ANY_PORT = "tcp://127.0.0.1:*"
"""A loopback ZeroMQ endpoint on whatever port the system gives (for the broker's config)."""

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's st column
_IPC_PATH_MAX = 107  # sun_path holds 108 bytes, the last one a NUL


def ipc_endpoints(directory: Path) -> dict[str, dict[str, str]]:
    """The broker's and the bus's endpoints as ipc sockets in ``directory`` (made), shaped
    like the config's sections: for a stack whose services start before its broker."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / f"{name}.ipc" for name in ("mdp", "bus-in", "bus-out")}
    longest = max(paths.values(), key=lambda path: len(os.fsencode(path)))
    if len(os.fsencode(longest)) > _IPC_PATH_MAX:
        raise ValueError(f"{longest}: too long for an ipc socket ({_IPC_PATH_MAX} bytes at most)")
    return {
        "broker": {"endpoint": f"ipc://{paths['mdp']}"},
        "bus": {"frontend": f"ipc://{paths['bus-in']}", "backend": f"ipc://{paths['bus-out']}"},
    }


def wait_for_endpoints(
    run_dir: Path, process: ManagedProcess, timeout: float = 15.0
) -> dict[str, dict[str, str]]:
    """The endpoints the broker ``process`` bound, from its endpoints file in ``run_dir``
    (its ``paths.run``): ``{"broker": {"endpoint": …}, "bus": {"frontend": …, "backend": …}}``.

    Waits for the file written by this very process (a killed broker's file may be there); gives
    up at once if the process exits (its log then says why).
    """
    path = endpoints_path(run_dir)
    deadline = time.monotonic() + timeout
    while True:
        recorded = _read_json(path)
        if recorded is not None and recorded.get("pid") == process.pid:
            recorded.pop("pid")
            return recorded
        if not process.running():
            raise RuntimeError(
                f"{process.name} exited with {process.process and process.process.poll()} "
                f"before recording its endpoints in {path}:\n{process.log_text()[-2000:]}"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"{process.name} recorded no endpoints in {path} in {timeout} s")
        time.sleep(0.02)


def merge_into_config(config_dir: Path, sections: Mapping[str, Mapping[str, Any]]) -> None:
    """Set the keys of ``sections`` in ``config_dir/plantd.yaml`` (the rest of the file stays),
    replacing the file whole: a process starting meanwhile reads the old one or the new."""
    path = config_dir / "plantd.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    aside = path.with_name(f".{path.name}.new")
    aside.write_text(yaml.safe_dump(data))
    aside.replace(path)


def start_broker(
    config_dir: Path,
    *,
    log_dir: Path,
    name: str = "broker",
    env: Mapping[str, str] | None = None,
    timeout: float = 20.0,
) -> tuple[ManagedProcess, dict[str, dict[str, str]]]:
    """Start the broker of ``config_dir``, wait until it answers; return it and its endpoints.

    Endpoints that are wildcards (:data:`ANY_PORT`) are read back from the broker's endpoints
    file and written into ``plantd.yaml``, so every process started from ``config_dir`` after
    it (and the broker itself, restarted) has the real ones. The broker is killed if it never
    answers.
    """
    from plantd.config import load_config

    config = load_config(config_dir, {})
    process = ManagedProcess.plantd(
        ["plantd.broker", "--config", str(config_dir)], name=name, log_dir=log_dir, env=env
    ).start()
    try:
        bound = {
            "broker": {"endpoint": config.broker.endpoint},
            "bus": {"frontend": config.bus.frontend, "backend": config.bus.backend},
        }
        if has_wildcard(config.broker.endpoint, config.bus.frontend, config.bus.backend):
            bound = wait_for_endpoints(config.paths.run, process, timeout)
            merge_into_config(config_dir, bound)
        wait_for_broker(bound["broker"]["endpoint"], timeout, process)
    except BaseException:
        process.kill()
        raise
    return process, bound


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):  # not there yet (it is renamed into place whole)
        return None
    return data if isinstance(data, dict) else None


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` listens on (IPv4 and IPv6), from ``/proc``.

    A listening socket is a row of ``/proc/<pid>/net/tcp{,6}`` in state LISTEN whose inode is
    one of the process's open sockets (the table lists the whole network namespace's).
    """
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(fd_dir / fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except FileNotFoundError:  # no IPv6 in this kernel
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == _LISTEN and inode in inodes:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def wait_for_listening_port(process: ManagedProcess, timeout: float = 15.0) -> int:
    """The one TCP port ``process`` listens on, once it does; gives up at once if it exits."""
    deadline = time.monotonic() + timeout
    while True:
        if not process.running():
            raise RuntimeError(
                f"{process.name} exited with {process.process and process.process.poll()} "
                f"before listening:\n{process.log_text()[-2000:]}"
            )
        ports = listening_ports(process.pid)
        if len(ports) > 1:
            raise RuntimeError(f"{process.name} listens on several ports: {sorted(ports)}")
        if ports:
            return ports.pop()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{process.name} did not listen on a TCP port in {timeout} s")
        time.sleep(0.02)
