"""``security:``, who may connect and what each principal may do (``docs/security.md``).

It lives in the config package (not in ``plantd.security``) because :class:`PlantdConfig`
embeds it; the security package reads it. The rules of the built-in tables below are part of
the product's documented policy: ``docs/security.md`` lists them, and a test checks that every
operation of every service is classified as the service itself declares.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Literal

from plantd.config._location import KeyPath
from plantd.config._markers import Duration, Ge, Gt, Size

__all__ = [
    "ACCESS_LEVELS",
    "BUILTIN_OPERATIONS",
    "BUILTIN_ROLES",
    "Access",
    "AuditConfig",
    "OperationRule",
    "Role",
    "SecurityConfig",
]

Access = Literal["read", "operate", "configure", "admin"]
ACCESS_LEVELS: tuple[Access, ...] = ("read", "operate", "configure", "admin")

BUILTIN_ROLES: Mapping[str, tuple[Access, ...]] = MappingProxyType(
    {
        "viewer": ("read",),
        "operator": ("read", "operate"),
        "engineer": ("read", "operate", "configure"),
        "admin": ("read", "operate", "configure", "admin"),
    }
)


@dataclass(frozen=True, slots=True)
class Role:
    """A role (``name``) and the access levels it grants."""

    name: str
    access: tuple[Access, ...] = ()

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            yield ("name",), f"a role name has letters, digits, '-' and '_', got {self.name!r}"


@dataclass(frozen=True, slots=True)
class OperationRule:
    """Operations of the services matching ``service`` need ``access``.

    ``service`` and each of ``operations`` are names where ``*`` matches any run of characters.
    """

    service: str = "*"
    operations: tuple[str, ...] = ("*",)
    access: Access = "admin"


_READS = (
    "status",
    "health",
    "points",
    "read",
    "get",
    "list",
    "list-scopes",
    "snapshot",
    "query",
    "samples",
)

# First match wins; an operation no rule matches needs "admin" (deny unless granted). A module's
# service has its own rules ahead of the generic read names: a driver may add operations of its
# own (an OPC UA method called "get" is a command, not a read).
BUILTIN_OPERATIONS: tuple[OperationRule, ...] = (
    OperationRule("*", ("operations",), "read"),  # every service lists what it offers
    OperationRule("org.plantd.Audit", ("*",), "admin"),
    # Logs, metrics and health describe the appliance, not the plant: anyone who may look.
    OperationRule("org.plantd.Logger", ("*",), "read"),
    OperationRule("org.plantd.Health", ("*",), "read"),
    OperationRule("org.plantd.module.Echo", ("*",), "read"),  # the diagnostic echo service
    OperationRule("org.plantd.module.*", ("points", "read", "status"), "read"),
    OperationRule("org.plantd.module.*", ("*",), "operate"),  # writes, a driver's own commands
    # Alarms and control (plantd-control): operators acknowledge, shelve, change modes and
    # setpoints and reset interlocks, as they write to modules; anyone who may look reads.
    OperationRule("org.plantd.Alarms", ("list", "history"), "read"),
    OperationRule("org.plantd.Alarms", ("*",), "operate"),
    OperationRule("org.plantd.Control", ("list",), "read"),
    OperationRule("org.plantd.Control", ("*",), "operate"),
    OperationRule("*", _READS, "read"),
    OperationRule("org.plantd.State", ("*",), "configure"),
    OperationRule("org.plantd.sim.*", ("*",), "configure"),  # fault injection on a HIL rig
)


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """The audit trail the broker keeps (``security.audit_*``).

    ``database`` None means ``<paths.data>/audit.db``. Records older than ``max_age`` are
    pruned, and the oldest go first when the file grows past ``max_bytes``.
    """

    database: Path | None = None
    max_age: float = 365 * 86_400.0
    max_bytes: int = 64 * 1024 * 1024

    def database_path(self, data: Path) -> Path:
        return self.database if self.database is not None else data / "audit.db"


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """``security:``.

    ``mode``: ``curve`` (the default) authenticates and encrypts every ZeroMQ connection;
    ``none`` turns that off and is accepted only when every endpoint is on loopback.
    ``keys``: the allow-list, one public key file per principal (None: ``<config dir>/keys``).
    ``secrets``: this machine's secret keys (None: ``<paths.data>/secrets``).
    ``identity``: the secret key ``plant`` uses (None: looked up, see docs/security.md).
    ``roles`` adds roles or replaces built-in ones of the same name; ``operations`` rules are
    checked before the built-in ones. ``audit_*``: the audit trail (:class:`AuditConfig`).
    """

    mode: Literal["curve", "none"] = "curve"
    keys: Path | None = None
    secrets: Path | None = None
    identity: Path | None = None
    roles: tuple[Role, ...] = ()
    operations: tuple[OperationRule, ...] = ()
    audit_database: Path | None = None
    audit_max_age: Annotated[float, Duration, Gt(0)] = 365 * 86_400.0
    audit_max_bytes: Annotated[int, Size, Ge(65_536)] = 64 * 1024 * 1024

    @property
    def audit(self) -> AuditConfig:
        return AuditConfig(self.audit_database, self.audit_max_age, self.audit_max_bytes)

    @property
    def enabled(self) -> bool:
        return self.mode == "curve"

    def keys_dir(self, config_dir: Path | None) -> Path:
        """Where the public keys are: ``keys``, else ``keys/`` in the config directory."""
        if self.keys is not None:
            return self.keys
        return (config_dir if config_dir is not None else Path("/etc/plantd")) / "keys"

    def secrets_dir(self, data: Path) -> Path:
        return self.secrets if self.secrets is not None else data / "secrets"

    def all_roles(self) -> Mapping[str, tuple[Access, ...]]:
        """The built-in roles, with this file's added or replaced."""
        return MappingProxyType(
            {**BUILTIN_ROLES, **{role.name: role.access for role in self.roles}}
        )

    def all_operations(self) -> tuple[OperationRule, ...]:
        """This file's rules first, then the built-in ones."""
        return (*self.operations, *BUILTIN_OPERATIONS)
