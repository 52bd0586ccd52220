"""This process's identity: the key it proves itself with to the broker.

Every plantd process is one principal. The entry point says which (``plantd-state`` is
``service.state``, ``plant module run pump1`` is ``module.pump1``, ``plant`` is its user) with
:func:`use_identity`, once, like the process's one ZeroMQ context; every socket plantd then
creates towards the broker (clients, workers, bus publishers and subscribers) is made a CURVE
client with :func:`secure`. With ``security.mode: none`` there is no identity and sockets stay
plain.

The secret key file is read again when it changes, so the next connection after
``plant keys rotate`` uses the new key without a restart (the broker cuts the old one).

Where keys are (docs/security.md): services' secret keys in ``<security.secrets>``
(``/var/lib/plantd/secrets``), the broker's public key in ``<keys>/broker.key``; a person's
secret key, for ``plant``: ``--identity FILE``, ``$PLANTD_IDENTITY``, ``security.identity``,
``~/.config/plantd/identity.key_secret``, then ``<secrets>/user.<login>.key_secret``.
"""

from __future__ import annotations

import logging
import os
import pwd
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plantd.config import PlantdConfig
from plantd.errors import SecurityError
from plantd.security._keyfile import PUBLIC_SUFFIX, SECRET_SUFFIX, read_key_file
from plantd.security._principal import BROKER

__all__ = [
    "Credentials",
    "Identity",
    "assume_identity",
    "current_identity",
    "secret_key_path",
    "secure",
    "service_identity",
    "use_identity",
    "user_identity",
]

log = logging.getLogger(__name__)

_HINT = "make keys with `plant keys init` (docs/security.md)"
NONE_WARNING = (
    "security.mode is 'none': nothing is authenticated or encrypted, and any process on this "
    "machine may command plantd (docs/security.md)"
)


@dataclass(frozen=True, slots=True)
class Credentials:
    """A principal's key pair and the broker's public key, all Z85."""

    principal: str
    public: bytes
    secret: bytes
    server: bytes

    def apply(self, sock: Any) -> None:
        """Make ``sock`` a CURVE client of the broker (before it connects)."""
        sock.curve_serverkey = self.server
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret


class Identity:
    """Credentials read from a secret key file and the broker's public key file, read again
    whenever either file changes."""

    def __init__(self, secret_path: Path, server_path: Path) -> None:
        self.secret_path = secret_path
        self.server_path = server_path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._credentials: Credentials | None = None

    @property
    def principal(self) -> str:
        return self.credentials().principal

    def credentials(self) -> Credentials:
        stamp = (_mtime(self.secret_path), _mtime(self.server_path))
        with self._lock:
            if self._credentials is None or stamp != self._stamp:
                self._credentials = self._read()
                self._stamp = stamp
            return self._credentials

    def _read(self) -> Credentials:
        if not self.server_path.exists():
            raise SecurityError(f"{self.server_path}: the broker's public key is missing; {_HINT}")
        if not self.secret_path.exists():
            raise SecurityError(f"{self.secret_path}: no secret key there; {_HINT}")
        mine = read_key_file(self.secret_path)
        if mine.secret is None:
            raise SecurityError(f"{self.secret_path}: holds no secret-key (a public key file?)")
        name = self.secret_path.name
        principal = mine.metadata.get("principal") or name.removesuffix(SECRET_SUFFIX)
        return Credentials(
            principal, mine.public, mine.secret, read_key_file(self.server_path).public
        )


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


def secret_key_path(config: PlantdConfig, principal: str) -> Path:
    return config.security.secrets_dir(config.paths.data) / f"{principal}{SECRET_SUFFIX}"


def _broker_public(config: PlantdConfig) -> Path:
    return config.security.keys_dir(config.source_dir) / f"{BROKER}{PUBLIC_SUFFIX}"


def service_identity(config: PlantdConfig, principal: str) -> Identity | None:
    """The identity of a plantd service process (None with ``security.mode: none``).

    Raises :class:`SecurityError` at once if its keys are missing or unusable, so that a
    service fails at start with a clear message rather than retrying forever.
    """
    if not config.security.enabled:
        return None
    identity = Identity(secret_key_path(config, principal), _broker_public(config))
    identity.credentials()
    return identity


def user_identity(
    config: PlantdConfig, environ: Mapping[str, str], explicit: Path | None = None
) -> Identity | None:
    """The identity ``plant`` uses for its user, found as the module docstring says (None
    with ``security.mode: none``). Nothing is read until a socket needs it."""
    if not config.security.enabled:
        return None
    server = _broker_public(config)
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(explicit)
    elif environ.get("PLANTD_IDENTITY"):
        candidates.append(Path(environ["PLANTD_IDENTITY"]))
    elif config.security.identity is not None:
        candidates.append(config.security.identity)
    else:
        home = environ.get("XDG_CONFIG_HOME") or os.path.join(environ.get("HOME", "~"), ".config")
        candidates.append(Path(home).expanduser() / "plantd" / f"identity{SECRET_SUFFIX}")
        candidates.append(secret_key_path(config, f"user.{_login()}"))
    for path in candidates:
        if os.access(path, os.R_OK):
            return Identity(path, server)
    tried = ", ".join(str(path) for path in candidates)
    return _Missing(tried, server)


class _Missing(Identity):
    """No key was found: fail, saying where we looked, when a socket needs one."""

    def __init__(self, tried: str, server: Path) -> None:
        super().__init__(Path(tried), server)
        self._tried = tried

    def credentials(self) -> Credentials:
        raise SecurityError(
            f"no identity for this user (looked for a secret key at {self._tried}); pass "
            "--identity FILE, or ask an admin for a key (`plant keys add user.NAME "
            "--role ROLE --generate`)"
        )


def _login() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


_process_identity: Identity | None = None


def assume_identity(config: PlantdConfig, principal: str | None) -> Identity | None:
    """At a service's start: prove ourselves as ``principal`` from now on (None: the broker,
    which has keys of its own). Warns, every start, when security is off."""
    if not config.security.enabled:
        log.warning(NONE_WARNING)
        use_identity(None)
        return None
    identity = None if principal is None else service_identity(config, principal)
    use_identity(identity)
    return identity


def use_identity(identity: Identity | None) -> None:
    """Set the identity every plantd socket of this process uses (None: plain sockets)."""
    global _process_identity
    _process_identity = identity


def current_identity() -> Identity | None:
    return _process_identity


def secure(sock: Any, credentials: Credentials | None = None) -> bool:
    """Make ``sock`` a CURVE client with ``credentials``, else with the process's identity.

    Returns True if it did; False when neither exists (``security.mode: none``).
    """
    if credentials is None:
        if _process_identity is None:
            return False
        credentials = _process_identity.credentials()
    credentials.apply(sock)
    return True
