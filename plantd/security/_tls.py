"""The device's TLS certificate, for the web proxy's HTTPS (``proxy.tls_certificate``).

An appliance has no name a public CA would certify, so it makes its own: a self-signed EC
P-256 certificate for the names it answers to — its hostname, ``hostname.local`` (mDNS),
``localhost``, ``127.0.0.1`` and ``::1`` — valid for ten years. Browsers warn about it once;
a client that should not have to trust on first use can pin it (``device.crt`` is public).

Where, beside the CURVE keys (docs/security.md):

- ``<keys>/tls/device.crt``: the certificate (public, mode 0644);
- ``<secrets>/device.tls_key``: its private key (PEM PKCS#8, mode 0600, given to the service
  user like the services' secret keys when ``plant keys init --owner`` runs as root).

:func:`ensure_device_certificate` is idempotent, as ``plant keys init`` is: a certificate that
exists with its key is kept (so a client that pinned it keeps working), unless it has expired
or cannot be read, when a new one is made. A Raspberry Pi has no clock battery, so the first
boot may run before NTP has set the time: the certificate is valid from the day before "now"
whatever that is, and for ten years from a date no earlier than :data:`SANE_EPOCH`.

The ``cryptography`` package comes with the proxy extra (``plantd[proxy]``); without it
:func:`init_device_certificate` says that it skipped the certificate, and the rest of
``plant keys init`` goes on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CERTIFICATE_FILE",
    "KEY_FILE",
    "DeviceCertificate",
    "device_names",
    "ensure_device_certificate",
    "init_device_certificate",
]

CERTIFICATE_FILE = Path("tls") / "device.crt"  # under the keys directory
KEY_FILE = "device.tls_key"  # in the secrets directory
VALIDITY = dt.timedelta(days=3652)
SANE_EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)  # no certificate ends before 2035
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class DeviceCertificate:
    """Where the certificate and its key are, the names it is for, and whether it was made
    now (False: it was there already)."""

    certificate: Path
    key: Path
    names: tuple[str, ...]
    made: bool


def device_names(hostname: str | None = None) -> list[str]:
    """The names this machine answers to: its hostname, its mDNS name, and loopback."""
    host = (hostname if hostname is not None else socket.gethostname()).strip().rstrip(".")
    names: list[str] = []
    if host and host != "localhost":
        names.append(host)
        short = host.split(".")[0]
        if not _is_address(host) and f"{short}.local" not in names:
            names.append(f"{short}.local")
    names += [name for name in _LOOPBACK_NAMES if name not in names]
    return names


def ensure_device_certificate(
    keys_dir: Path,
    secrets_dir: Path,
    names: Sequence[str] = (),
    *,
    owner: tuple[int, int] | None = None,
    now: dt.datetime | None = None,
) -> DeviceCertificate:
    """The device certificate, made if missing, expired or unreadable. ``names``: the DNS
    names and addresses it is for besides loopback (default: :func:`device_names`).
    ``owner`` (uid, gid) gets the key file when running as root. Raises ImportError without
    the ``cryptography`` package."""
    from cryptography import x509

    certificate_path = keys_dir / CERTIFICATE_FILE
    key_path = secrets_dir / KEY_FILE
    moment = now if now is not None else dt.datetime.now(dt.UTC)
    existing = _usable(certificate_path, key_path, moment)
    if existing is not None:
        return DeviceCertificate(certificate_path, key_path, existing, made=False)
    wanted = list(names) if names else device_names()
    wanted += [name for name in _LOOPBACK_NAMES if name not in wanted]
    certificate_pem, key_pem = _make(wanted, moment)
    _write(key_path, key_pem, 0o600, owner)
    # The certificate is public, and its folder too: under plantd-keys' UMask=0077 a plain
    # mkdir would leave it 0700 root, and the proxy (user plantd) could not read it.
    certificate_path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(certificate_path.parent, 0o755)
    _write(certificate_path, certificate_pem, 0o644, None)
    x509.load_pem_x509_certificate(certificate_pem)  # what was written reads back
    return DeviceCertificate(certificate_path, key_path, tuple(wanted), made=True)


def init_device_certificate(
    keys_dir: Path, secrets_dir: Path, owner: tuple[int, int] | None = None
) -> list[str]:
    """``plant keys init``'s step: what it did, as lines (none when the certificate is there)."""
    try:
        made = ensure_device_certificate(keys_dir, secrets_dir, owner=owner)
    except ImportError:
        return [
            "tls: no device certificate made (the cryptography package is missing: "
            "install plantd[proxy])"
        ]
    if not made.made:
        return []
    return [f"tls: new device certificate for {', '.join(made.names)} ({made.certificate})"]


def _usable(certificate: Path, key: Path, now: dt.datetime) -> tuple[str, ...] | None:
    """The names of the certificate at ``certificate`` if it and its key are usable now."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(certificate.read_bytes())
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if cert.not_valid_after_utc <= now:
        return None
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if cert.public_key().public_bytes(*spki) != private.public_key().public_bytes(*spki):
        return None  # a key from another certificate
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(str(name.value) for name in san)


def _make(names: Sequence[str], now: dt.datetime) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "plantd device"),
        ]
    )
    alternatives: list[x509.GeneralName] = []
    for name in names:
        if _is_address(name):
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        else:
            alternatives.append(x509.DNSName(name))
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(max(now, SANE_EPOCH) + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _write(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    """``data`` to ``path`` atomically with ``mode`` (whatever the umask), then ``owner``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        if owner is not None and os.geteuid() == 0:
            os.chown(temporary, *owner)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
