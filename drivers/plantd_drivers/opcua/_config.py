"""The OPC UA module file: connection, security, groups of points, methods.

    driver: opcua
    connection:
      endpoint: opc.tcp://10.0.0.5:4840
      namespaces: {line: "urn:acme:line"}      # aliases for node names and browse paths
      security:
        policy: Basic256Sha256                 # or None (tests and trusted networks only)
        mode: SignAndEncrypt                   # or Sign
        certificate: pki/client.der            # generated on first use when missing
        private_key: pki/client.pem
        trust: [pki/trusted]                   # server certificates (files or directories)
      username: operator
      password: secret
      reconnect_initial: 500ms                 # a lost server: backoff from this…
      reconnect_max: 30s                       # …doubling up to this, for ever
    groups:
      - name: line
        interval: 500ms                        # publishing interval (subscription) or poll
        sampling_interval: 100ms
        queue_size: 1
        server_deadband: 0.5                   # data-change filter, applied by the server
        points:
          - {name: speed, node: "ns=line;s=Line1.Speed", writable: true}
          - {name: temperature, path: "line:Line1/line:Temperature"}
    methods:
      - {name: reset_counter, method: "line:Line1/line:ResetCounter"}

Relative paths (certificates, trust list) are relative to the module file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Literal

from plantd.config import Check, Duration, Ge, Gt, KeyPath, Le
from plantd.module import GroupConfig, ModuleConfig, PointConfig
from plantd_drivers.opcua._nodes import looks_like_node_id, node_id_problem, path_problem

__all__ = [
    "OpcuaConnection",
    "OpcuaGroup",
    "OpcuaMethod",
    "OpcuaModule",
    "OpcuaPoint",
    "OpcuaSecurity",
]

_RESERVED_OPERATIONS = frozenset({"points", "read", "write", "status", "operations"})


def _endpoint_problem(text: str) -> str | None:
    if not text.startswith("opc.tcp://") or len(text) <= len("opc.tcp://"):
        return f"expected an endpoint such as 'opc.tcp://HOST:4840', got {text!r}"
    return None


def _reference_problem(text: str) -> str | None:
    return node_id_problem(text) if looks_like_node_id(text) else path_problem(text)


def _operation_problem(name: str) -> str | None:
    if name in _RESERVED_OPERATIONS:
        return f"{name!r} is one of the module's own operations; choose another name"
    if not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
        return f"expected letters, digits, '_', '-' and '.', got {name!r}"
    return None


@dataclass(frozen=True, kw_only=True)
class OpcuaSecurity:
    policy: Literal["None", "Basic256Sha256"] = "None"
    mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: Path | None = None
    """The client's certificate (DER or PEM). Default ``pki/<module>-cert.der`` beside the
    module file; generated (self-signed, with private key) when the file does not exist."""
    private_key: Path | None = None
    """Its private key (PEM). Default ``pki/<module>-key.pem``."""
    trust: tuple[Path, ...] = ()
    """Trusted server certificates: files, or directories of ``.der``/``.pem`` files."""
    application_uri: str | None = None
    """Default ``urn:plantd:<host name>:<module>`` (written into a generated certificate)."""

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if (self.policy == "None") != (self.mode == "None"):
            yield (
                ("mode",),
                f"policy {self.policy} goes with mode "
                + ("None" if self.policy == "None" else "Sign or SignAndEncrypt")
                + f", got {self.mode}",
            )
        if self.policy != "None" and not self.trust:
            yield (
                ("trust",),
                "a secure connection needs the server's certificate in the trust list "
                "(a file or a directory of certificates)",
            )


@dataclass(frozen=True, kw_only=True)
class OpcuaConnection:
    endpoint: Annotated[str, Check(_endpoint_problem)]
    security: OpcuaSecurity = field(default_factory=OpcuaSecurity)
    username: str | None = None
    password: str | None = None
    namespaces: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Aliases for namespace URIs, usable in NodeIds (``ns=line;s=X``) and browse paths."""
    timeout: Annotated[float, Duration, Gt(0)] = 4.0
    """How long one request may take before the server is taken for unreachable."""
    keepalive: Annotated[float, Duration, Gt(0)] = 1.0
    """How often the server's state is checked; a dead server is noticed within about this."""
    session_timeout: Annotated[float, Duration, Ge(1)] = 60.0
    """How long the server keeps a session whose client went silent (its leak guard)."""
    max_items_per_request: Annotated[int, Ge(1), Le(100_000)] = 1000
    reconnect_initial: Annotated[float, Duration, Gt(0)] = 0.5
    """The first wait before connecting again to a lost server; it doubles after each failure…"""
    reconnect_max: Annotated[float, Duration, Gt(0)] = 30.0
    """…up to this (each wait drawn from its upper half); the module never gives up."""

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if self.reconnect_initial > self.reconnect_max:
            yield (
                ("reconnect_initial",),
                f"must not exceed reconnect_max ({self.reconnect_max:g} s), "
                f"got {self.reconnect_initial:g} s",
            )
        if self.password is not None and self.username is None:
            yield ("password",), "a password needs a username"


@dataclass(frozen=True, kw_only=True)
class OpcuaPoint(PointConfig):
    node: Annotated[str, Check(node_id_problem)] | None = None
    """A NodeId: ``ns=2;s=Line1.Speed``, ``ns=ALIAS;i=1001``, ``nsu=URI;s=Tag``."""
    path: Annotated[str, Check(path_problem)] | None = None
    """A browse path below Objects: ``line:Line1/line:Speed`` (resolved at every connect)."""

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        yield from super().cross_check()
        if (self.node is None) == (self.path is None):
            yield ("node",), "give exactly one of node (a NodeId) or path (a browse path)"

    @property
    def reference(self) -> str:
        return self.node if self.node is not None else f"path {self.path}"


@dataclass(frozen=True, kw_only=True)
class OpcuaGroup(GroupConfig):
    mode: Literal["subscription", "poll"] = "subscription"
    """``subscription``: the server reports changes (``interval`` is its publishing interval);
    ``poll``: the group is read every ``interval``."""
    sampling_interval: Annotated[float, Duration, Ge(0)] | None = None
    """How often the server samples each item (default: ``interval``)."""
    queue_size: Annotated[int, Ge(1)] = 1
    server_deadband: Annotated[float, Ge(0)] = 0.0
    """The data-change filter's deadband (0: report every change)."""
    server_deadband_type: Literal["absolute", "percent"] = "absolute"
    points: tuple[OpcuaPoint, ...] = ()


@dataclass(frozen=True, kw_only=True)
class OpcuaMethod:
    name: Annotated[str, Check(_operation_problem)]
    """The module operation that calls the method."""
    method: Annotated[str, Check(_reference_problem)]
    """The method node: a NodeId or a browse path."""
    object: Annotated[str, Check(_reference_problem)] | None = None
    """The object it is called on (default: the parent in ``method``'s browse path)."""
    description: str = ""

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if self.object is None and looks_like_node_id(self.method):
            yield ("object",), "a method given by NodeId needs its object (NodeId or path)"


@dataclass(frozen=True, kw_only=True)
class OpcuaModule(ModuleConfig):
    connection: OpcuaConnection
    groups: tuple[OpcuaGroup, ...] = ()
    methods: tuple[OpcuaMethod, ...] = ()

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        yield from super().cross_check()
        seen: set[str] = set()
        for index, method in enumerate(self.methods):
            if method.name in seen:
                yield ("methods", index, "name"), f"method name {method.name!r} is used twice"
            seen.add(method.name)
