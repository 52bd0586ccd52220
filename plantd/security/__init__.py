"""Identity and authorization: CURVE keys, principals, the ZAP handler and the policy.

docs/security.md is the user's guide (threat model, key operations). In short:

- every ZeroMQ connection to the broker is CURVE (``security.mode: curve``, the default);
  libzmq does the cryptography, :class:`Gatekeeper` answers its ZAP requests from the public
  key files in the keys directory (:func:`load_keyring`), each file one principal;
- the broker decides from the authenticated principal, with a :class:`Policy`, which services
  it may serve, which operations it may call and which bus topics it may publish;
- every process proves itself with its own key (:func:`use_identity` at the entry point,
  :func:`secure` on every socket).
"""

from __future__ import annotations

from plantd.security._audit_event import ACTIONS, UNKNOWN_PRINCIPAL, AuditAction, AuditEvent
from plantd.security._connections import Connections
from plantd.security._identity import (
    Credentials,
    Identity,
    assume_identity,
    current_identity,
    secret_key_path,
    secure,
    service_identity,
    use_identity,
    user_identity,
)
from plantd.security._keyfile import (
    PUBLIC_SUFFIX,
    SECRET_SUFFIX,
    KeyFile,
    generate,
    read_key_file,
    write_key_file,
)
from plantd.security._keyring import REVOKED_DIR, Entry, KeyRing, fingerprint, load_keyring
from plantd.security._keyset import SERVICES, KeySet, Listed, local_principals
from plantd.security._policy import CallDecision, Policy
from plantd.security._principal import (
    BROKER,
    KINDS,
    Grants,
    check_principal,
    kind_grants,
    principal_kind,
)
from plantd.security._tls import DeviceCertificate, ensure_device_certificate
from plantd.security._zap import ZAP_ENDPOINT, Gatekeeper, answer

__all__ = [
    "ACTIONS",
    "BROKER",
    "KINDS",
    "PUBLIC_SUFFIX",
    "REVOKED_DIR",
    "SECRET_SUFFIX",
    "SERVICES",
    "UNKNOWN_PRINCIPAL",
    "ZAP_ENDPOINT",
    "AuditAction",
    "AuditEvent",
    "CallDecision",
    "Connections",
    "Credentials",
    "DeviceCertificate",
    "Entry",
    "Gatekeeper",
    "Grants",
    "Identity",
    "KeyFile",
    "KeyRing",
    "KeySet",
    "Listed",
    "Policy",
    "answer",
    "assume_identity",
    "check_principal",
    "current_identity",
    "ensure_device_certificate",
    "fingerprint",
    "generate",
    "kind_grants",
    "load_keyring",
    "local_principals",
    "principal_kind",
    "read_key_file",
    "secret_key_path",
    "secure",
    "service_identity",
    "use_identity",
    "user_identity",
    "write_key_file",
]
