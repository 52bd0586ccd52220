"""Who may log in to the proxy, and with which roles: the admitted ``user.*`` principals.

The people of the web app are the people of the security model (docs/security.md): a person
is a ``user.NAME`` principal with a key file in ``security.keys`` naming their roles. A web
password or an API token (``_accounts``) only proves that someone is that principal; what
they may do is always read from the key ring, which is re-read when its files change, so
revoking a key or changing roles takes effect on the next request, sessions included.
"""

from __future__ import annotations

from pathlib import Path

from plantd.clock import Clock
from plantd.config import Access, PlantdConfig
from plantd.security import KeyRing, Policy, fingerprint, load_keyring

__all__ = ["RELOAD_INTERVAL", "People"]

RELOAD_INTERVAL = 0.25  # seconds between looks at the keys directory, as the broker does


class People:
    """The current key ring and the policy built on it, for the proxy's own checks."""

    def __init__(self, config: PlantdConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._directory: Path = config.security.keys_dir(config.source_dir)
        self._fingerprint: tuple[tuple[str, int, int], ...] | None = None
        self._checked = -RELOAD_INTERVAL
        self._policy = self._load()

    def policy(self) -> Policy:
        """The policy for the key ring as it is now (re-read at most every 0.25 s)."""
        now = self._clock.monotonic()
        if now - self._checked >= RELOAD_INTERVAL:
            self._checked = now
            if fingerprint(self._directory) != self._fingerprint:
                self._policy = self._load()
        return self._policy

    def roles(self, principal: str) -> frozenset[str] | None:
        """The roles of an admitted person; None if ``principal`` is not one (unknown, revoked,
        or not a ``user.*``)."""
        if not principal.startswith("user."):
            return None
        grants = self.policy().keyring.grants(principal)
        return None if grants is None else grants.roles

    def levels(self, principal: str) -> frozenset[Access]:
        """The access levels ``principal``'s roles grant (empty if not admitted)."""
        policy = self.policy()
        grants = policy.keyring.grants(principal)
        return frozenset() if grants is None else policy.levels(grants)

    def access_of(self, service: str, operation: str) -> Access:
        """The access level an operation needs (``security.operations``, first match)."""
        return self.policy().access_of(service, operation)

    def _load(self) -> Policy:
        self._fingerprint = fingerprint(self._directory)
        keyring: KeyRing = load_keyring(self._directory)
        return Policy(self._config.security, keyring, enforce=True)
