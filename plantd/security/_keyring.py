"""The allow-list: the public key files in the keys directory, read into one immutable value.

``<keys>/NAME.key`` admits the holder of that key's secret as principal NAME; ``broker.key``
is the broker's own public key, which every peer needs to reach it (it admits nobody).
Revoked keys are moved to ``<keys>/revoked/`` and admit nobody either.

A file that cannot be used (unreadable, not a CURVE key, a name that is not a principal, a key
that another file holds too) is left out and reported in ``problems``: one bad file must not
take the broker down, nor let anybody in. :func:`fingerprint` is a cheap summary of the
directory (names, sizes, modification times) that the broker polls to notice any change.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from plantd.errors import SecurityError
from plantd.security._keyfile import PUBLIC_SUFFIX, KeyFile, read_key_file
from plantd.security._principal import BROKER, Grants, check_principal, kind_grants

__all__ = ["REVOKED_DIR", "Entry", "KeyRing", "changes", "fingerprint", "load_keyring"]

REVOKED_DIR = "revoked"
_REVOKED_NAME = re.compile(r"(?P<principal>.+?)\.\d{8}T\d{6}(?:\.\d+)?\.key")


@dataclass(frozen=True, slots=True)
class Entry:
    """One admitted principal: its public key (Z85), its grants and its file."""

    principal: str
    public: bytes
    grants: Grants
    path: Path


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Who is admitted: by public key (for ZAP) and by principal (for the policy)."""

    by_key: Mapping[bytes, Entry] = field(default_factory=dict)
    by_principal: Mapping[str, Entry] = field(default_factory=dict)
    broker_key: bytes | None = None
    problems: tuple[str, ...] = ()
    revoked: Mapping[bytes, str] = field(default_factory=dict)  # key -> whose it was

    def grants(self, principal: str) -> Grants | None:
        """The grants of an admitted principal (the broker always is); None for anybody else."""
        if principal == BROKER:
            return kind_grants(BROKER)
        entry = self.by_principal.get(principal)
        return None if entry is None else entry.grants


def _grants(principal: str, key: KeyFile) -> Grants:
    roles = key.listed("roles")
    return kind_grants(principal).merged(
        roles=frozenset(roles) if "roles" in key.metadata else None,
        serve=key.listed("serve"),
        publish=key.listed("publish"),
    )


def load_keyring(directory: Path) -> KeyRing:
    """Read every ``*.key`` in ``directory`` (a missing directory admits nobody)."""
    problems: list[str] = []
    entries: list[Entry] = []
    broker_key: bytes | None = None
    try:
        paths = sorted(directory.glob(f"*{PUBLIC_SUFFIX}"))
    except OSError as exc:
        return KeyRing(problems=(f"{directory}: {exc}",))
    for path in paths:
        principal = path.name[: -len(PUBLIC_SUFFIX)]
        if principal.startswith("."):
            continue  # a file being written (keys are renamed into place)
        try:
            key = read_key_file(path)
        except SecurityError as exc:
            problems.append(str(exc))
            continue
        if principal == BROKER:
            broker_key = key.public
            continue
        if (problem := check_principal(principal)) is not None:
            problems.append(f"{path}: not a principal's key file: {problem}")
            continue
        declared = key.metadata.get("principal")
        if declared is not None and declared != principal:
            problems.append(f"{path}: the file says it is {declared!r}; its name says otherwise")
            continue
        entries.append(Entry(principal, key.public, _grants(principal, key), path))
    by_key: dict[bytes, Entry] = {}
    shared: set[bytes] = set()
    for entry in entries:
        if entry.public in by_key:
            other = by_key[entry.public].path
            problems.append(f"{entry.path}: the same key as {other}; neither is admitted")
            shared.add(entry.public)
        by_key[entry.public] = entry
    for public in shared:
        del by_key[public]
    by_principal = {entry.principal: entry for entry in by_key.values()}
    return KeyRing(
        MappingProxyType(by_key),
        MappingProxyType(by_principal),
        broker_key,
        tuple(problems),
        MappingProxyType(_revoked(directory / REVOKED_DIR)),
    )


def _revoked(directory: Path) -> dict[bytes, str]:
    """Revoked keys, to say so when one is tried (``revoked/PRINCIPAL.STAMP.key``)."""
    found: dict[bytes, str] = {}
    try:
        paths = list(directory.glob(f"*{PUBLIC_SUFFIX}"))
    except OSError:
        return found
    for path in paths:
        try:
            key = read_key_file(path)
        except SecurityError:
            continue
        stamped = _REVOKED_NAME.fullmatch(path.name)
        name = stamped["principal"] if stamped else path.name.removesuffix(PUBLIC_SUFFIX)
        found[key.public] = key.metadata.get("principal") or name
    return found


def fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times of the key files: changes when any file does."""
    try:
        with os.scandir(directory) as entries:
            found = []
            for entry in entries:
                if entry.name.endswith(PUBLIC_SUFFIX) and entry.is_file():
                    stat = entry.stat()
                    found.append((entry.name, stat.st_size, stat.st_mtime_ns))
    except OSError:
        return ()
    return tuple(sorted(found))


def changes(old: KeyRing, new: KeyRing) -> tuple[frozenset[str], list[str]]:
    """Principals whose connections must be cut (revoked, or their key replaced), and one line
    per change for the log and the audit trail."""
    cut: set[str] = set()
    lines: list[str] = []
    for principal, entry in old.by_principal.items():
        now = new.by_principal.get(principal)
        if now is None:
            cut.add(principal)
            lines.append(f"{principal}: revoked")
        elif now.public != entry.public:
            cut.add(principal)
            lines.append(f"{principal}: key rotated")
        elif now.grants != entry.grants:
            lines.append(f"{principal}: grants changed (roles: {_roles(now)})")
    for principal, entry in new.by_principal.items():
        if principal not in old.by_principal:
            lines.append(f"{principal}: added (roles: {_roles(entry)})")
    if old.broker_key != new.broker_key and old.broker_key is not None:
        lines.append("broker: public key file changed (the broker keeps the key it started with)")
    return frozenset(cut), lines


def _roles(entry: Entry) -> str:
    return ", ".join(sorted(entry.grants.roles)) or "none"
