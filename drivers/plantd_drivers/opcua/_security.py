"""Certificates: the client's own (generated on first use), and the trust list for the server's.

The trust list pins server certificates: ``connection.security.trust`` names certificate files
(DER or PEM) or directories of them, read again at every connect, so that adding a server's
certificate to a trusted directory takes effect without a restart. A server whose certificate is
not in the list is refused before any secure channel is opened (:class:`ServerNotTrusted`), with
its thumbprint and subject in the message so that an operator can check it and add it.

The other way round, a server that does not trust *our* certificate refuses the secure channel
or the session (BadSecurityChecksFailed, BadCertificate…): :class:`ClientNotTrusted` names our
certificate file, the one to give to the server's administrator.

The private key is created mode 0600 whatever the umask, and a key found readable by others
is made 0600 again, with a warning: anyone who reads it can pose as this module.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID

from plantd.errors import DeviceUnavailable
from plantd_drivers.opcua._config import OpcuaModule

__all__ = [
    "ClientIdentity",
    "ClientNotTrusted",
    "ServerNotTrusted",
    "check_trusted",
    "client_identity",
    "thumbprint",
]

log = logging.getLogger(__name__)

_CERT_SUFFIXES = (".der", ".pem", ".crt", ".cer")


class ServerNotTrusted(DeviceUnavailable):
    """The server's certificate is not in the trust list: the connection is refused.

    A subclass of DeviceUnavailable so that the module keeps retrying (with backoff): once the
    certificate is added to a trusted directory, the next attempt connects.
    """


class ClientNotTrusted(DeviceUnavailable):
    """The server refused our certificate. Retried with backoff, as :class:`ServerNotTrusted`:
    once the server's administrator trusts the certificate, the next attempt connects."""

    def __init__(self, endpoint: str, code: str | None, certificate: Path) -> None:
        why = f" ({code})" if code else ""
        super().__init__(
            f"connecting to {endpoint}: the server refused our certificate{why}: "
            f"trust {certificate} on the server"
        )


@dataclass(frozen=True)
class ClientIdentity:
    certificate: Path
    private_key: Path
    application_uri: str


def thumbprint(der: bytes) -> str:
    """The SHA-1 thumbprint OPC UA tools show, as colon-separated hex."""
    digest = hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _load_der(path: Path) -> bytes:
    data = path.read_bytes()
    if b"-----BEGIN CERTIFICATE-----" in data:
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return x509.load_der_x509_certificate(data).public_bytes(Encoding.DER)


def _maybe_certificate(file: Path) -> bool:
    """In a trusted directory: certificate files, not the keys that may sit beside them."""
    if file.suffix.lower() not in _CERT_SUFFIXES:
        return False
    return file.suffix.lower() != ".pem" or b"-----BEGIN CERTIFICATE-----" in file.read_bytes()


def trusted_thumbprints(paths: tuple[Path, ...]) -> dict[str, Path]:
    """Every certificate in the trust list: thumbprint → the file it came from."""
    trusted: dict[str, Path] = {}
    for path in paths:
        files = sorted(path.iterdir()) if path.is_dir() else [path]
        for file in files:
            if file.is_dir() or (path.is_dir() and not _maybe_certificate(file)):
                continue
            try:
                trusted[thumbprint(_load_der(file))] = file
            except (OSError, ValueError) as exc:
                raise DeviceUnavailable(
                    f"trust list: cannot read certificate {file}: {exc}"
                ) from exc
    return trusted


def check_trusted(der: bytes, trust: tuple[Path, ...], endpoint: str) -> None:
    """Raise :class:`ServerNotTrusted` unless ``der`` is in the trust list."""
    if not der:
        raise ServerNotTrusted(f"{endpoint} offers no certificate for a secure connection")
    print_ = thumbprint(der)
    if print_ in trusted_thumbprints(trust):
        return
    try:
        subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    except ValueError:
        subject = "(unreadable)"
    where = ", ".join(str(p) for p in trust)
    raise ServerNotTrusted(
        f"the server certificate of {endpoint} is not trusted (subject {subject}, SHA-1 "
        f"thumbprint {print_}); if this is the right server, add its certificate to the "
        f"trust list ({where})"
    )


async def client_identity(module: OpcuaModule) -> ClientIdentity:
    """The client certificate and key to use, generated (self-signed) if the files are missing."""
    from asyncua.crypto.cert_gen import setup_self_signed_certificate

    security = module.connection.security
    host = socket.gethostname()
    uri = security.application_uri or f"urn:plantd:{host}:{module.name or 'module'}"
    certificate, private_key = security.certificate, security.private_key
    if certificate is None or private_key is None:
        if module.source is None:
            raise DeviceUnavailable(
                "connection.security: no certificate/private_key configured and no module "
                "file to keep a generated one beside"
            )
        pki = module.source.parent / "pki"
        certificate = certificate or pki / f"{module.name}-cert.der"
        private_key = private_key or pki / f"{module.name}-key.pem"
    if private_key.is_file():
        _keep_private(private_key)
    else:
        private_key.parent.mkdir(parents=True, exist_ok=True)
        _create_private_key(private_key)
        certificate.unlink(missing_ok=True)  # it belonged to another key
    if not certificate.is_file():
        certificate.parent.mkdir(parents=True, exist_ok=True)
        # asyncua loads the key made above and makes the certificate that goes with it.
        await setup_self_signed_certificate(
            private_key,
            certificate,
            uri,
            host,
            [ExtendedKeyUsageOID.CLIENT_AUTH],
            {"commonName": f"plantd {module.name or 'module'}", "organizationName": "plantd"},
        )
    return ClientIdentity(
        certificate, private_key, security.application_uri or _uri_of(certificate) or uri
    )


def _create_private_key(path: Path) -> None:
    """A new RSA key in ``path``, readable by its owner only from the first byte on."""
    from asyncua.crypto.cert_gen import generate_private_key

    pem = generate_private_key().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    # os.open's mode is narrowed by the umask, never widened; fchmod makes it exactly 0600.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, 0o600)
        file.write(pem)


def _keep_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(mode & 0o700 | 0o600)
        log.warning(
            "%s was readable by others (mode %o); made it %o",
            path, mode, stat.S_IMODE(path.stat().st_mode),
        )  # fmt: skip


def _uri_of(certificate: Path) -> str | None:
    """The application URI in a certificate's subject alternative names (servers check it)."""
    try:
        cert = x509.load_der_x509_certificate(_load_der(certificate))
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return None
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None
