"""The OPC UA simulator: an asyncua server built from a :class:`SimulatorModel`.

    model = load_model(Path("line.yaml"))
    async with OpcuaSimulator(model) as sim:
        await sim.set("Line1.Speed", 1200.0)    # what a client reads next
        await sim.set_status("Line1.Temperature", "BadSensorFailure")
        await sim.restart()                     # every session and subscription is gone
        sim.session_count()                     # sessions the server holds now

Moving values (``behaviour`` in the model) are recomputed every ``update_interval`` by one task
that the simulator owns; writes by clients go through for ``writable`` variables. ``restart``
stops the server (closing every connection, as a crashed or rebooted server would) and starts a
new one on the same endpoint with the same address space and current values. An endpoint on
port 0 (``opc.tcp://127.0.0.1:0/sim``) takes a port the system picks; ``endpoint`` then names
it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager
from asyncua.ua.uaerrors._base import UaStatusCodeError
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from hil.opcua._model import MethodModel, SimulatorModel, VariableModel, value_at

__all__ = ["OpcuaSimulator"]

log = logging.getLogger(__name__)

_INTEGERS = {"SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64"}


class _Users(UserManager):
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None,
        certificate: Any = None,
    ) -> User | None:  # fmt: skip
        if username is not None and self.users.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


class OpcuaSimulator:
    def __init__(self, model: SimulatorModel, *, endpoint: str | None = None, seed: int = 1):
        self.model = model
        self.endpoint = endpoint or model.endpoint
        self.variables: dict[str, VariableModel] = {}
        self.values: dict[str, Any] = {}
        self.status: dict[str, int] = {}
        self.methods: dict[str, MethodModel] = {}
        self.namespace_index = 0
        self.restarts = 0
        self.certificate: Path | None = None
        self._server: Server | None = None
        self._updater: asyncio.Task[None] | None = None
        self._rng = random.Random(seed)
        self._t0 = time.monotonic()
        self._extra_namespaces = 0
        for obj in model.objects:
            for variable in obj.all_variables():
                key = f"{obj.name}.{variable.name}"
                self.variables[key] = variable
                self.values[key] = _typed(variable.value, variable.type)
            for method in obj.methods:
                self.methods[f"{obj.name}.{method.name}"] = method

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> OpcuaSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._server = await self._build()
        await self._server.start()
        self._advertise_bound_port(self._server)
        self._updater = asyncio.create_task(self._update_loop())

    def _advertise_bound_port(self, server: Server) -> None:
        """An endpoint on port 0 listens on a port the system picks: from now on the endpoint
        (and what the server tells clients in GetEndpoints) names that port, and a restart
        binds it again."""
        parsed = urlparse(self.endpoint)
        if parsed.port != 0 or server.bserver is None:
            return
        host = parsed.hostname if ":" not in (parsed.hostname or "") else f"[{parsed.hostname}]"
        self.endpoint = parsed._replace(netloc=f"{host}:{server.bserver.port}").geturl()
        server.set_endpoint(self.endpoint)
        for description in server.iserver.endpoints:
            description.EndpointUrl = self.endpoint
            description.Server.DiscoveryUrls = [self.endpoint]

    async def stop(self) -> None:
        if self._updater is not None:
            self._updater.cancel()
            await asyncio.wait([self._updater])
            self._updater = None
        server, self._server = self._server, None
        if server is not None:
            self._save_values(server)
            await server.stop()

    async def restart(self, down_for: float = 0.0, *, shift_namespaces: int = 0) -> None:
        """Stop, stay down ``down_for`` seconds, start again (same endpoint, same values).

        ``shift_namespaces`` registers that many more namespaces before the model's, so its
        namespace index changes, as it may on a real server after an upgrade.
        """
        await self.stop()
        if down_for:
            await asyncio.sleep(down_for)
        self.restarts += 1
        self._extra_namespaces += shift_namespaces
        await self.start()

    # -- what tests and people do with it ---------------------------------------------------------

    def node_id(self, key: str) -> str:
        """``"Line1.Speed"`` → ``"ns=2;s=Line1.Speed"`` (the namespace index of this run)."""
        return f"ns={self.namespace_index};s={key}"

    async def set(self, key: str, value: Any) -> None:
        """Give variable ``key`` (``Object.Variable``) a value now (and good status)."""
        self.values[key] = _typed(value, self.variables[key].type)
        self.status.pop(key, None)
        await self._write(key)

    def get(self, key: str) -> Any:
        if self._server is not None:
            self._save_values(self._server)
        return self.values[key]

    async def set_status(self, key: str, code: str | int) -> None:
        """Report variable ``key`` with status ``code`` (a name like ``BadSensorFailure``)."""
        self.status[key] = int(getattr(ua.StatusCodes, code)) if isinstance(code, str) else code
        await self._write(key)

    def session_count(self) -> int:
        """Client sessions the server holds now (asyncua's registry of external sessions)."""
        if self._server is None:
            return 0
        return len(self._server.iserver._external_sessions)

    # -- building the server ---------------------------------------------------------------------

    async def _build(self) -> Server:
        model = self.model
        server = Server(user_manager=_Users(model.users) if model.users else None)
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(model.name)
        uri = f"urn:plantd:sim:{socket.gethostname()}"
        await server.set_application_uri(uri)
        await self._secure(server, uri)
        if model.users:
            server.set_identity_tokens([ua.UserNameIdentityToken])
        for n in range(self._extra_namespaces):
            await server.register_namespace(f"urn:plantd:sim:padding:{n}")
        self.namespace_index = await server.register_namespace(model.namespace)
        idx = self.namespace_index
        objects = server.nodes.objects
        for obj in model.objects:
            node = await objects.add_object(
                ua.NodeId(obj.name, idx), ua.QualifiedName(obj.name, idx)
            )
            for variable in obj.all_variables():
                key = f"{obj.name}.{variable.name}"
                var = await node.add_variable(
                    ua.NodeId(key, idx),
                    ua.QualifiedName(variable.name, idx),
                    ua.Variant(self.values[key], getattr(ua.VariantType, variable.type)),
                )
                if variable.writable:
                    await var.set_writable()
            for method in obj.methods:
                await node.add_method(
                    ua.NodeId(f"{obj.name}.{method.name}", idx),
                    ua.QualifiedName(method.name, idx),
                    self._method_callback(obj.name, method),
                    [getattr(ua.VariantType, t) for t in method.inputs],
                    [getattr(ua.VariantType, t) for t in method.outputs],
                )
        for key in self.status:
            await self._write(key, server)
        return server

    async def _secure(self, server: Server, uri: str) -> None:
        security = self.model.security
        server.set_security_policy(
            [getattr(ua.SecurityPolicyType, _policy(p)) for p in security.policies]
        )
        if security.policies == ("None",):
            return
        cert = security.certificate or Path("pki/sim-server-cert.der")
        key = security.private_key or Path("pki/sim-server-key.pem")
        cert.parent.mkdir(parents=True, exist_ok=True)
        key.parent.mkdir(parents=True, exist_ok=True)
        host = socket.gethostname()
        await setup_self_signed_certificate(
            key, cert, uri, host, [ExtendedKeyUsageOID.SERVER_AUTH], {"commonName": self.model.name}
        )
        key.chmod(0o600)  # asyncua writes it as the umask allows (0644): a private key is not
        self.certificate = cert
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        if security.trusted_clients:
            trusted = {_thumbprint(path.read_bytes()) for path in security.trusted_clients}

            async def validate(certificate: Any, description: Any) -> None:
                if _thumbprint(certificate.public_bytes(Encoding.DER)) not in trusted:
                    raise UaStatusCodeError(ua.StatusCodes.BadCertificateUntrusted)

            server.set_certificate_validator(validate)

    def _method_callback(self, obj: str, method: MethodModel) -> Any:
        async def call(parent: ua.NodeId, *args: Any) -> list[ua.Variant]:
            values = [a.Value if isinstance(a, ua.Variant) else a for a in args]
            outputs = [getattr(ua.VariantType, t) for t in method.outputs]
            if method.action == "fail":
                raise UaStatusCodeError(ua.StatusCodes.BadInvalidState)
            if method.action in ("reset", "set") and method.target is not None:
                await self.set(f"{obj}.{method.target}", values[0] if method.action == "set" else 0)
                return []
            result = [sum(values)] if method.action == "sum" else values
            return [ua.Variant(v, t) for v, t in zip(result, outputs, strict=False)]

        return call

    # -- values ----------------------------------------------------------------------------------

    async def _update_loop(self) -> None:
        moving = [k for k, v in self.variables.items() if v.behaviour != "constant"]
        interval = self.model.update_interval
        next_at = time.monotonic()
        while True:
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            t = time.monotonic() - self._t0
            for key in moving:
                variable = self.variables[key]
                value = value_at(variable, t, self.values[key], self._rng)
                self.values[key] = _typed(value, variable.type)
                if key not in self.status:
                    await self._write(key)

    async def _write(self, key: str, server: Server | None = None) -> None:
        server = server or self._server
        if server is None:
            return
        variable = self.variables[key]
        now = datetime.now(UTC)
        code = self.status.get(key, 0)
        value = ua.DataValue(
            ua.Variant(self.values[key], getattr(ua.VariantType, variable.type)),
            StatusCode=ua.StatusCode(code),
            SourceTimestamp=now,
            ServerTimestamp=now,
        )
        # Straight into the address space (no session, no access checks); datachange
        # callbacks (monitored items) fire as for any write.
        await server.iserver.aspace.write_attribute_value(
            ua.NodeId(key, self.namespace_index), ua.AttributeIds.Value, value
        )

    def _save_values(self, server: Server) -> None:
        """Keep what clients wrote, so a restart starts from the current values."""
        for key, variable in self.variables.items():
            if variable.writable:
                data = server.iserver.aspace.read_attribute_value(
                    ua.NodeId(key, self.namespace_index), ua.AttributeIds.Value
                )
                if data.Value is not None and data.Value.Value is not None:
                    self.values[key] = data.Value.Value


def _thumbprint(data: bytes) -> str:
    if b"-----BEGIN" in data:
        data = x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def _policy(name: str) -> str:
    return "NoSecurity" if name == "None" else name


def _typed(value: Any, type_name: str) -> Any:
    if type_name == "Boolean":
        return bool(value)
    if type_name in _INTEGERS:
        return round(value) if isinstance(value, float) else int(value)
    if type_name in ("Float", "Double"):
        return float(value)
    if type_name == "String":
        return str(value)
    if type_name == "DateTime":
        return (
            datetime.fromtimestamp(float(value), UTC) if not isinstance(value, datetime) else value
        )
    return value
