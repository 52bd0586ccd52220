"""The key set of one plantd installation: making, admitting, revoking and rotating keys.

Two directories (docs/security.md):

- the **keys directory** (``security.keys``, ``/etc/plantd/keys``): the allow-list, one public
  key file per admitted principal, and ``broker.key``; revoked keys are moved to ``revoked/``;
- the **secrets directory** (``security.secrets``, ``/var/lib/plantd/secrets``): the secret
  keys of the principals that run on this machine (the broker, its services, modules and
  sinks, and local users given one), mode 0600.

Every change is a file written beside its place and renamed over it, so the broker, which
re-reads the keys directory within a quarter of a second, never sees half a file. Revoking a
key never deletes it: a revoked key stays recognisable (the audit trail names whose it was),
and :meth:`KeySet.init` never admits a revoked principal again on its own.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from plantd.config import MODULES_DIR, PlantdConfig
from plantd.errors import SecurityError
from plantd.security._keyfile import (
    PUBLIC_SUFFIX,
    SECRET_SUFFIX,
    KeyFile,
    generate,
    read_key_file,
    write_key_file,
)
from plantd.security._keyring import REVOKED_DIR, load_keyring
from plantd.security._principal import BROKER, check_principal
from plantd.security._tls import init_device_certificate

__all__ = ["SERVICES", "KeySet", "Listed", "local_principals"]

# The plantd services, each with a key of its own (the module host reports with "modules").
SERVICES = ("state", "historian", "echo", "sim", "logger", "modules", "proxy", "control")
_FOLDERS = (("module", MODULES_DIR), ("sink", "sinks.d"))
_PROBLEM = re.compile(r"(?P<path>.*?\.key)(?::\d+)?: (?P<why>.*)", re.DOTALL)


def local_principals(config_dir: Path | None) -> list[str]:
    """The principals that run on a machine with this configuration: the plantd services,
    one per module file and one per sink file."""
    principals = [f"service.{name}" for name in SERVICES]
    if config_dir is not None:
        for kind, folder in _FOLDERS:
            for path in sorted((config_dir / folder).glob("*.yaml")):
                if not path.name.startswith(".") and check_principal(f"{kind}.{path.stem}") is None:
                    principals.append(f"{kind}.{path.stem}")
    return principals


@dataclass(frozen=True, slots=True)
class Listed:
    """One principal as ``plant keys list`` shows it."""

    principal: str
    public: str
    roles: tuple[str, ...]
    status: str  # "admitted", "revoked" or "broken: why"
    secret_here: bool  # its secret key is in this machine's secrets directory
    path: Path


class KeySet:
    """The keys and secrets directories of ``config``."""

    def __init__(self, config: PlantdConfig, *, owner: tuple[int, int] | None = None) -> None:
        self.config = config
        self.keys_dir = Path(os.path.normpath(config.security.keys_dir(config.source_dir)))
        self.secrets_dir = Path(os.path.normpath(config.security.secrets_dir(config.paths.data)))
        self.owner = owner  # (uid, gid) for service secrets, when run as root for a service user

    def public_path(self, principal: str) -> Path:
        return self.keys_dir / f"{principal}{PUBLIC_SUFFIX}"

    def secret_path(self, principal: str) -> Path:
        return self.secrets_dir / f"{principal}{SECRET_SUFFIX}"

    # -- making keys ----------------------------------------------------------------------

    def init(
        self, principals: Sequence[str], admins: Sequence[str] = (), *, certificate: bool = False
    ) -> list[str]:
        """Make every key this machine needs that is missing; returns what it did.

        The broker's key pair, then each of ``principals`` (services, modules, sinks) with its
        secret here, then each user of ``admins`` as ``user.NAME`` with the admin role and its
        secret here (for an administrator on this machine). Keys that exist are kept; a
        principal whose key was revoked is not admitted again (``add`` it on purpose). With
        ``certificate``, also the device's TLS certificate for the proxy (``_tls``).
        """
        done: list[str] = []
        self._prepare()
        self._ensure(BROKER, {}, done, owner=self.owner)
        for principal in principals:
            self._ensure(principal, {"principal": principal}, done, owner=self.owner)
        for name in admins:
            principal = f"user.{name}"
            self._ensure(principal, {"principal": principal, "roles": "admin"}, done, owner=None)
        if certificate:
            done += init_device_certificate(self.keys_dir, self.secrets_dir, self.owner)
        return done

    def _prepare(self) -> None:
        for directory, mode in ((self.keys_dir, 0o755), (self.secrets_dir, 0o700)):
            directory.mkdir(parents=True, exist_ok=True, mode=mode)
        os.chmod(self.secrets_dir, 0o700)
        if self.owner is not None and os.geteuid() == 0:
            os.chown(self.secrets_dir, *self.owner)

    def _ensure(
        self,
        principal: str,
        metadata: dict[str, str],
        done: list[str],
        *,
        owner: tuple[int, int] | None,
    ) -> None:
        if (problem := check_principal(principal)) is not None:
            raise SecurityError(problem)
        secret, public = self.secret_path(principal), self.public_path(principal)
        if secret.exists():
            mine = read_key_file(secret)
            if public.exists() or self._revoked(mine.public):
                return
            write_key_file(public, KeyFile(mine.public, None, mine.metadata), secret=False)
            done.append(f"{principal}: public key written again from its secret")
            return
        if public.exists():
            return  # admitted with a key whose secret lives elsewhere (a user's laptop)
        if principal in load_keyring(self.keys_dir).revoked.values():
            done.append(f"{principal}: revoked, not admitted again (`plant keys add` it)")
            return
        key = generate(metadata)
        self._write_secret(secret, key, principal, owner)
        write_key_file(public, key, secret=False, comment=f"plantd public key of {principal}")
        done.append(f"{principal}: new key pair")

    def _write_secret(
        self, path: Path, key: KeyFile, principal: str, owner: tuple[int, int] | None
    ) -> None:
        write_key_file(path, key, secret=True, comment=f"plantd SECRET key of {principal}")
        if owner is not None and os.geteuid() == 0:
            os.chown(path, *owner)

    def _revoked(self, public: bytes) -> bool:
        return public in load_keyring(self.keys_dir).revoked

    # -- admitting, revoking, rotating ----------------------------------------------------

    def add(
        self,
        principal: str,
        *,
        roles: tuple[str, ...] = (),
        public_file: Path | None = None,
        generate_secret: Path | None = None,
        serve: tuple[str, ...] = (),
        publish: tuple[str, ...] = (),
        replace: bool = False,
    ) -> Path:
        """Admit ``principal``: with the public key in ``public_file`` (made elsewhere), or a
        new pair whose secret is written to ``generate_secret``. Returns the public key file."""
        if (problem := check_principal(principal)) is not None or principal == BROKER:
            raise SecurityError(problem or "the broker's key is made by `plant keys init`")
        target = self.public_path(principal)
        if target.exists() and not replace:
            raise SecurityError(
                f"{principal} is admitted already ({target}); use --replace to change its key "
                "or roles, or `plant keys rotate`"
            )
        metadata = {"principal": principal}
        for name, values in (("roles", roles), ("serve", serve), ("publish", publish)):
            if values:
                metadata[name] = ",".join(values)
        if public_file is not None:
            key = KeyFile(read_key_file(public_file).public, None, metadata)
        elif generate_secret is not None:
            key = generate(metadata)
            self._write_secret(generate_secret, key, principal, None)
        else:
            raise SecurityError("give the principal's public key file, or ask for a new pair")
        self.keys_dir.mkdir(parents=True, exist_ok=True)
        write_key_file(target, key, secret=False, comment=f"plantd public key of {principal}")
        return target

    def revoke(self, principal: str) -> Path:
        """Take ``principal`` off the allow-list (its file moves to ``revoked/``)."""
        source = self.public_path(principal)
        if not source.exists():
            raise SecurityError(f"{principal} is not admitted (no {source})")
        stamp = time.strftime("%Y%m%dT%H%M%S")
        folder = self.keys_dir / REVOKED_DIR
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{principal}.{stamp}{PUBLIC_SUFFIX}"
        for n in itertools.count(1):  # twice within a second: keep both
            if not target.exists():
                break
            target = folder / f"{principal}.{stamp}.{n}{PUBLIC_SUFFIX}"
        os.replace(source, target)
        return target

    def rotate(self, principal: str) -> Path:
        """A new key pair for a principal whose secret is kept here; the old key is revoked
        (its connections are cut) and the new one admitted with the same roles."""
        secret = self.secret_path(principal)
        if not secret.exists():
            raise SecurityError(
                f"{principal}'s secret key is not on this machine ({secret}): the holder makes "
                "a new pair and an admin replaces the public key (`plant keys add --replace`)"
            )
        current = self.public_path(principal)
        if not current.exists():
            raise SecurityError(f"{principal} is not admitted (no {current}): `plant keys add` it")
        key = generate({"principal": principal, **read_key_file(current).metadata})
        stat = secret.stat()
        self.revoke(principal)
        self._write_secret(secret, key, principal, (stat.st_uid, stat.st_gid))
        write_key_file(current, key, secret=False, comment=f"plantd public key of {principal}")
        return current

    # -- listing ----------------------------------------------------------------------------

    def list(self) -> list[Listed]:
        ring = load_keyring(self.keys_dir)
        found: list[Listed] = []
        for entry in ring.by_principal.values():
            found.append(
                Listed(
                    entry.principal,
                    entry.public.decode(),
                    tuple(sorted(entry.grants.roles)),
                    "admitted",
                    self.secret_path(entry.principal).exists(),
                    entry.path,
                )
            )
        for public, principal in ring.revoked.items():
            path = self.keys_dir / REVOKED_DIR
            found.append(Listed(principal, public.decode(), (), "revoked", False, path))
        for problem in ring.problems:
            where = _PROBLEM.match(problem)
            path = Path(where["path"]) if where else self.keys_dir
            name = path.name.removesuffix(PUBLIC_SUFFIX)
            why = where["why"] if where else problem
            found.append(Listed(name, "", (), f"broken: {why}", False, path))
        return sorted(found, key=lambda item: (item.status != "admitted", item.principal))
