"""The endpoints file: where a running broker really listens, for whoever started it.

A broker configured with a wildcard port (``tcp://127.0.0.1:*``) binds a port the system
picks, so nobody could know it in advance. Once bound, the broker writes the endpoints it got
to ``<paths.run>/broker-endpoints.json`` with its process id::

    {"pid": 4242, "broker": {"endpoint": "tcp://127.0.0.1:40123"},
     "bus": {"frontend": "tcp://127.0.0.1:40125", "backend": "tcp://127.0.0.1:40127"}}

The sections are shaped like the config's, so a test stack or a rig merges them into the config
it starts the other processes with. The file is replaced whole (written aside, then renamed):
a reader never sees half of it. The process id tells a reader this broker's file from one a
killed broker left behind.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

from plantd._runfiles import remove_run_record, write_run_record
from plantd.config import PlantdConfig

__all__ = [
    "ENDPOINTS_FILE",
    "endpoints_path",
    "has_wildcard",
    "record_endpoints",
    "remove_endpoints",
    "write_endpoints",
]

log = logging.getLogger("plantd.broker")

ENDPOINTS_FILE = "broker-endpoints.json"


def endpoints_path(run_dir: Path) -> Path:
    """The endpoints file of the broker whose ``paths.run`` is ``run_dir``."""
    return run_dir / ENDPOINTS_FILE


def has_wildcard(*endpoints: str) -> bool:
    """True if any of ``endpoints`` asks for any free port (``tcp://HOST:*``)."""
    return any(endpoint.startswith("tcp://") and endpoint.endswith(":*") for endpoint in endpoints)


def write_endpoints(path: Path, bound: Mapping[str, Mapping[str, str]]) -> None:
    """Replace ``path`` with ``bound`` and this process's id, atomically."""
    write_run_record(path, bound)


def record_endpoints(config: PlantdConfig, bound: Mapping[str, Mapping[str, str]]) -> Path:
    """Write the endpoints file of the broker ``config`` describes and log what it holds.

    Raises ``OSError`` naming the file when it cannot be written and a wildcard needs it (a
    broker on ports nobody can know is no use); with fixed ports that is only logged.
    """
    path = endpoints_path(config.paths.run)
    try:
        write_endpoints(path, bound)
    except OSError as exc:
        why = exc.strerror or str(exc)
        if has_wildcard(config.broker.endpoint, config.bus.frontend, config.bus.backend):
            raise OSError(
                f"cannot record the endpoints it bound in {path} ({why}); a wildcard port "
                "(tcp://HOST:*) needs a paths.run it may write",
            ) from exc
        log.info("endpoints not recorded in %s: %s", path, why)
        return path
    log.info("endpoints: %s (recorded in %s)", json.dumps(dict(bound)), path)
    return path


def remove_endpoints(path: Path) -> None:
    """Remove ``path`` if this process wrote it (a newer broker's file stays)."""
    remove_run_record(path)
