"""Key files: ZeroMQ CURVE certificates in the ZPL text format that czmq and pyzmq use.

A public key file (``NAME.key``, safe to share) and its secret twin (``NAME.key_secret``,
readable by its owner only) look like this::

    #   plantd CURVE public key of user.alice
    metadata
        principal = "user.alice"
        roles = "operator"
    curve
        public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"

``zmq.auth.load_certificate`` reads them too. Keys are made by libzmq
(``zmq.curve_keypair``); nothing here does cryptography. Metadata values are text; lists
(``roles``, ``serve``, ``publish``) are written comma-separated.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from zmq.utils import z85

from plantd.errors import SecurityError

__all__ = [
    "PUBLIC_SUFFIX",
    "SECRET_SUFFIX",
    "KeyFile",
    "generate",
    "read_key_file",
    "write_key_file",
]

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
_LINE = re.compile(r'(?P<indent>\s*)(?P<name>[A-Za-z0-9_-]+)\s*=\s*"(?P<value>[^"]*)"\s*')
_SECTION = re.compile(r"(?P<name>[A-Za-z0-9_-]+)\s*")


@dataclass(frozen=True, slots=True)
class KeyFile:
    """What a key file holds: the public key, the secret one (secret files only), metadata."""

    public: bytes
    secret: bytes | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def listed(self, name: str) -> tuple[str, ...]:
        """A comma-separated metadata value as a tuple (empty if absent)."""
        return tuple(
            part.strip() for part in self.metadata.get(name, "").split(",") if part.strip()
        )


def generate(metadata: dict[str, str] | None = None) -> KeyFile:
    """A fresh key pair from libzmq."""
    public, secret = zmq.curve_keypair()
    return KeyFile(public, secret, dict(metadata or {}))


def _check_key(path: Path, what: str, text: str) -> bytes:
    try:
        key = text.encode("ascii")
        if len(key) != 40 or len(z85.decode(key)) != 32:
            raise ValueError
    except Exception:  # z85 raises KeyError, struct.error… on what is not Z85: all mean "not a key"
        raise SecurityError(
            f"{path}: {what} is not a Z85-encoded CURVE key (40 characters)"
        ) from None
    return key


def read_key_file(path: Path) -> KeyFile:
    """Parse ``path``; :class:`SecurityError` names the file and what is wrong with it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecurityError(f"{path}: cannot read the key file: {exc}") from exc
    section = ""
    values: dict[str, dict[str, str]] = {"metadata": {}, "curve": {}}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.rstrip()
        if not stripped or stripped.lstrip().startswith("#"):  # Z85 keys may hold a '#'
            continue
        if not line[0].isspace():
            match = _SECTION.fullmatch(stripped)
            if match is None:
                raise SecurityError(f"{path}:{number}: expected a section name, got {line!r}")
            section = match["name"]
            continue
        entry = _LINE.fullmatch(stripped)
        if entry is None:
            raise SecurityError(f'{path}:{number}: expected name = "value", got {line.strip()!r}')
        values.setdefault(section, {})[entry["name"]] = entry["value"]
    curve = values["curve"]
    if "public-key" not in curve:
        raise SecurityError(f"{path}: no public-key in its curve section")
    public = _check_key(path, "public-key", curve["public-key"])
    secret = None
    if "secret-key" in curve:
        secret = _check_key(path, "secret-key", curve["secret-key"])
        if zmq.curve_public(secret) != public:
            raise SecurityError(f"{path}: its secret-key does not belong to its public-key")
    return KeyFile(public, secret, values["metadata"])


def write_key_file(path: Path, key: KeyFile, *, secret: bool, comment: str = "") -> None:
    """Write ``key`` to ``path`` atomically: the public half, or both halves (mode 0600)."""
    if secret and key.secret is None:
        raise ValueError("this key has no secret half to write")
    lines = [f"#   {comment}" if comment else "#   plantd CURVE key", "metadata"]
    lines += [f'    {name} = "{value}"' for name, value in key.metadata.items()]
    lines += ["curve", f'    public-key = "{key.public.decode()}"']
    if secret:
        assert key.secret is not None
        lines.append(f'    secret-key = "{key.secret.decode()}"')
    temporary = path.with_name(f".{path.name}.new")
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    descriptor = os.open(temporary, flags, 0o600 if secret else 0o644)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600 if secret else 0o644)  # whatever the umask
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
