"""Test doubles and helpers that ship with plantd, for its own tests and for yours.

- :class:`ManagedProcess`: a real plantd process you can start, kill -9 and restart;
- :func:`write_config`: a throwaway configuration directory, and :func:`make_keys` for one
  with CURVE security;
- :func:`wait_for_broker`, :func:`wait_for_workers`: block until the stack serves;
- :data:`ANY_PORT`, :func:`start_broker`, :func:`wait_for_endpoints`: a broker on ports the
  system picks, and where it got them (written into its config by :func:`merge_into_config`);
  :func:`wait_for_listening_port` for a server that cannot say (never choose a port for a
  server: bind port 0 and read back what it got); :func:`ipc_endpoints` for a stack whose
  services start before its broker;
- :class:`FakeDriver` (driver ``fake``): a module driver with no hardware, failures on demand;
- :func:`check_driver`: the conformance check every driver's tests call;
- :class:`NotifySocket`: what a service tells systemd (READY, WATCHDOG, STATUS);
- :func:`capture_logs`: the records a block logs, with their fields; :func:`bus_log_records`:
  the records that arrive on the bus.
"""

from __future__ import annotations

from plantd.testing._clock import ManualClock
from plantd.testing._conformance import check_driver
from plantd.testing._fake_driver import FakeDriver, FakeGroup, FakeModule, FakePoint
from plantd.testing._logs import BusRecords, bus_log_records, capture_logs
from plantd.testing._notify import NotifySocket
from plantd.testing._ports import (
    ANY_PORT,
    ipc_endpoints,
    listening_ports,
    merge_into_config,
    start_broker,
    wait_for_endpoints,
    wait_for_listening_port,
)
from plantd.testing._processes import (
    ManagedProcess,
    make_keys,
    wait_for_broker,
    wait_for_workers,
    write_config,
)

__all__ = [
    "ANY_PORT",
    "BusRecords",
    "FakeDriver",
    "FakeGroup",
    "FakeModule",
    "FakePoint",
    "ManagedProcess",
    "ManualClock",
    "NotifySocket",
    "bus_log_records",
    "capture_logs",
    "check_driver",
    "ipc_endpoints",
    "listening_ports",
    "make_keys",
    "merge_into_config",
    "start_broker",
    "wait_for_broker",
    "wait_for_endpoints",
    "wait_for_listening_port",
    "wait_for_workers",
    "write_config",
]
