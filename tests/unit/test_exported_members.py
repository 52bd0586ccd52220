"""The public surface is deliberate: each package exports exactly what its ``__all__`` says,
every name in it exists, and these lists change only on purpose."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "plantd.errors": [
        "ConfigError", "DeviceError", "DeviceFault", "DeviceUnavailable", "LocalProtocolError",
        "NoBroker", "NoWorker", "PlantdError", "ProtocolError", "RemoteProtocolError",
        "RequestError", "RequestTimeout",
        "SecurityError", "ServiceError", "UsageError",
    ],
    "plantd.client": ["AsyncClient", "Client", "Reply"],
    "plantd.worker": [
        "AsyncHandler", "AsyncWorker", "Handler", "Request", "SyncHandler", "Worker",
    ],
    "plantd.security": [
        "ACTIONS", "BROKER", "KINDS", "PUBLIC_SUFFIX", "REVOKED_DIR", "SECRET_SUFFIX",
        "SERVICES", "UNKNOWN_PRINCIPAL", "ZAP_ENDPOINT", "AuditAction", "AuditEvent",
        "CallDecision", "Connections", "Credentials", "DeviceCertificate", "Entry",
        "Gatekeeper", "Grants", "Identity", "KeyFile", "KeyRing", "KeySet", "Listed", "Policy",
        "answer", "assume_identity", "check_principal", "current_identity",
        "ensure_device_certificate", "fingerprint", "generate",
        "kind_grants", "load_keyring", "local_principals", "principal_kind", "read_key_file",
        "secret_key_path", "secure", "service_identity", "use_identity", "user_identity",
        "write_key_file",
    ],
    "plantd.broker": ["BrokerServer", "BusProxy"],
    "plantd.testing": [
        "FakeDriver", "FakeGroup", "FakeModule", "FakePoint", "ManagedProcess", "ManualClock",
        "NotifySocket",
        "check_driver",
        "BusRecords", "bus_log_records", "capture_logs",
        "ANY_PORT", "ipc_endpoints", "listening_ports", "make_keys", "merge_into_config",
        "start_broker", "wait_for_broker", "wait_for_endpoints", "wait_for_listening_port",
        "wait_for_workers", "write_config",
    ],
}  # fmt: skip


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_exports_are_pinned(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == sorted(PUBLIC[module_name])


@pytest.mark.parametrize(
    "module_name",
    ["plantd.mdp", "plantd.service", "plantd.bus", "plantd.config", *sorted(PUBLIC)],
)
def test_every_exported_name_exists(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name}"


def test_errors_have_one_root() -> None:
    errors = importlib.import_module("plantd.errors")
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.PlantdError)
