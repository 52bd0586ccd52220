"""Authorization: may this principal serve that service, call that operation, publish that topic?

Theory of operation. Every decision starts from the principal's :class:`Grants` (its kind's,
merged with its key file's, see ``_principal``); a principal the key ring does not admit may do
nothing. Then:

- **serve**: the service name matches one of ``grants.serve``;
- **call**: ``mmi.*`` (the broker's own read-only answers) is open to every admitted principal;
  otherwise the operation's access level comes from the first ``security.operations`` rule
  that matches (``admin`` when none does), and the call is allowed when one of the
  principal's roles grants that level, or when ``grants.call`` names the pair outright;
- **publish**: the topic starts with one of ``grants.publish`` (its first 256 bytes are
  looked at), or is one of those ending in ``.`` without its dot (a module's batch topic);
- **act for**: a principal may call on behalf of another (then every decision about the call
  is the other's) when one of its ``grants.act_for`` globs matches that other principal and
  the other is admitted. Without enforcement anyone may (nobody is authenticated anyway).

The operation of a call is the first body frame (the service-call convention:
docs/architecture.md, "Service calls over MDP"); a body that is not a convention call is
judged by that frame all the same, so an unknown service with raw bodies needs ``admin``
unless a rule says otherwise. Decisions are cached per
(principal, service, operation or topic): the broker asks for every message, and the cache is
thrown away with the policy whenever keys or configuration change. The cache is bounded, since
the names in it come from peers.

With ``enforce`` False (``security.mode: none``) every decision allows; the access levels are
still worked out, because the audit trail records every call above ``read``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from plantd.config import ACCESS_LEVELS, Access, SecurityConfig
from plantd.security._keyring import KeyRing
from plantd.security._principal import BROKER, Grants

__all__ = ["CallDecision", "Policy", "pattern"]

_CACHE_LIMIT = 65_536
# Only so much of a name decides anything (operation names are at most 64 characters by the
# service-call convention; topic prefixes are short), and caches keep no more than that.
_NAME_LIMIT = 64
_TOPIC_LIMIT = 256


def pattern(glob: str) -> re.Pattern[str]:
    """``*`` matches any run of characters; everything else matches itself."""
    return re.compile(".*".join(re.escape(part) for part in glob.split("*")), re.DOTALL)


@dataclass(frozen=True, slots=True)
class CallDecision:
    """``audited``: the call must be recorded in the audit trail when it ends — a call above
    ``read`` that a role allows. Calls a principal makes by its kind's own grants (a module
    keeping its state, every second) are routine and are not; refusals always are."""

    allowed: bool
    access: Access
    reason: str = ""  # why not, for the error reply and the audit record
    audited: bool = False


class Policy:
    """Decisions for one key ring and one configuration (build a new one when either changes)."""

    def __init__(self, config: SecurityConfig, keyring: KeyRing, *, enforce: bool = True) -> None:
        self.config = config
        self.keyring = keyring
        self.enforce = enforce
        self._roles = {name: frozenset(levels) for name, levels in config.all_roles().items()}
        self._rules = [
            (pattern(rule.service), [pattern(op) for op in rule.operations], rule.access)
            for rule in config.all_operations()
        ]
        self._calls: dict[tuple[str | None, bytes, bytes], CallDecision] = {}
        self._serve: dict[tuple[str | None, bytes], bool] = {}
        self._publish: dict[tuple[str | None, bytes], bool] = {}
        self._act_for: dict[tuple[str | None, str], str | None] = {}

    def admitted(self, principal: str) -> bool:
        """Whether ``principal`` holds an admitted key (the broker always does)."""
        return principal in self.keyring.by_principal or principal == BROKER

    # -- classification ---------------------------------------------------------------------

    def access_of(self, service: str, operation: str) -> Access:
        """The access level ``operation`` of ``service`` needs (first matching rule)."""
        for service_rule, operation_rules, access in self._rules:
            if service_rule.fullmatch(service) and any(
                rule.fullmatch(operation) for rule in operation_rules
            ):
                return access
        return "admin"

    def levels(self, grants: Grants) -> frozenset[Access]:
        """The access levels a principal's roles grant."""
        granted: set[Access] = set()
        for role in grants.roles:
            granted |= self._roles.get(role, frozenset())
        return frozenset(level for level in ACCESS_LEVELS if level in granted)

    # -- decisions ----------------------------------------------------------------------------

    def check_call(self, principal: str | None, service: bytes, operation: bytes) -> CallDecision:
        operation = operation[:_NAME_LIMIT]  # the cache must not keep a peer's megabytes
        key = (principal, service, operation)
        decision = self._calls.get(key)
        if decision is None:
            decision = self._decide_call(principal, service, operation)
            if len(self._calls) >= _CACHE_LIMIT:
                self._calls.clear()
            self._calls[key] = decision
        return decision

    def _decide_call(
        self, principal: str | None, service_bytes: bytes, operation_bytes: bytes
    ) -> CallDecision:
        service = service_bytes.decode("ascii", "replace")
        operation = operation_bytes.decode("ascii", "replace")
        access = self.access_of(service, operation)
        if not self.enforce:
            return CallDecision(True, access)
        grants = None if principal is None else self.keyring.grants(principal)
        if grants is None:
            return CallDecision(False, access, f"{principal or 'an unknown peer'} is not admitted")
        if service.startswith("mmi.") or principal == BROKER:
            return CallDecision(True, "read" if service.startswith("mmi.") else access)
        if access in self.levels(grants):
            return CallDecision(True, access, audited=access != "read")
        if any(
            pattern(s).fullmatch(service) and pattern(o).fullmatch(operation)
            for s, o in grants.call
        ):
            return CallDecision(True, access)
        roles = ", ".join(sorted(grants.roles)) or "none"
        return CallDecision(
            False,
            access,
            f"{principal} may not call {operation!r} on {service} (it needs {access!r} access; "
            f"roles: {roles})",
        )

    def check_act_for(self, principal: str | None, other: str) -> str | None:
        """None if ``principal`` may call on behalf of ``other``, else why not (cached, as
        every decision: the proxy asks for each call it makes)."""
        other = other[: _NAME_LIMIT * 2]  # a principal name is at most KIND. + 64
        key = (principal, other)
        if key in self._act_for:
            return self._act_for[key]
        refusal = self._decide_act_for(principal, other)
        if len(self._act_for) >= _CACHE_LIMIT:
            self._act_for.clear()
        self._act_for[key] = refusal
        return refusal

    def _decide_act_for(self, principal: str | None, other: str) -> str | None:
        if not self.enforce:
            return None
        grants = None if principal is None else self.keyring.grants(principal)
        if grants is None:
            return f"{principal or 'an unknown peer'} is not admitted"
        if not any(pattern(glob).fullmatch(other) for glob in grants.act_for):
            return f"{principal} may not act on behalf of {other[:_NAME_LIMIT]!r}"
        if self.keyring.grants(other) is None:
            return f"{other[:_NAME_LIMIT]} (on whose behalf {principal} calls) is not admitted"
        return None

    def may_serve(self, principal: str | None, service: bytes) -> bool:
        key = (principal, service)
        allowed = self._serve.get(key)
        if allowed is None:
            allowed = not self.enforce or self._serves(principal, service)
            if len(self._serve) >= _CACHE_LIMIT:
                self._serve.clear()
            self._serve[key] = allowed
        return allowed

    def may_publish(self, principal: str | None, topic: bytes) -> bool:
        topic = topic[:_TOPIC_LIMIT]  # the cache must not keep a peer's megabytes
        key = (principal, topic)
        allowed = self._publish.get(key)
        if allowed is None:
            allowed = not self.enforce or self._prefixed(principal, topic)
            if len(self._publish) >= _CACHE_LIMIT:
                self._publish.clear()
            self._publish[key] = allowed
        return allowed

    def _serves(self, principal: str | None, service: bytes) -> bool:
        grants = None if principal is None else self.keyring.grants(principal)
        if grants is None:
            return False
        name = service.decode("ascii", "replace")
        return any(pattern(glob).fullmatch(name) for glob in grants.serve)

    def _prefixed(self, principal: str | None, topic: bytes) -> bool:
        grants = None if principal is None else self.keyring.grants(principal)
        if grants is None:
            return False
        prefixes = tuple(prefix.encode() for prefix in grants.publish)
        # A grant "data.pump1." also covers "data.pump1" itself: the topic of the module's
        # batches, whose samples are all on data.pump1.<point>.
        return topic.startswith(prefixes) or (topic + b".") in prefixes
