"""Authorization (plantd.security._policy): serve, call and publish decisions per principal."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantd.config import OperationRule, Role, SecurityConfig
from plantd.security import BROKER, CallDecision, KeyRing, Policy, load_keyring
from plantd.security._policy import _CACHE_LIMIT, pattern
from tests.unit.security._keys import admit

STATE = b"org.plantd.State"
HISTORIAN = b"org.plantd.Historian"
AUDIT = b"org.plantd.Audit"
ECHO = b"org.plantd.module.Echo"
PUMP = b"org.plantd.module.pump1"


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    keys = tmp_path / "keys"
    keys.mkdir()
    for role in ("viewer", "operator", "engineer", "admin"):
        admit(keys, f"user.{role}", roles=role)
    admit(keys, "user.nobody")  # admitted, no roles
    admit(keys, "user.both", roles="viewer,engineer")
    admit(keys, "user.odd", roles="superuser")  # a role no configuration defines
    admit(keys, "user.auditor", roles="auditor")
    admit(keys, "module.pump1")
    admit(keys, "module.tank")
    admit(keys, "sink.cloud")
    admit(keys, "service.state")
    admit(keys, "service.historian")
    admit(keys, "service.echo")
    admit(keys, "service.sim")
    admit(keys, "service.custom", serve="org.acme.*", publish="event.acme.")
    keyring = load_keyring(keys)
    assert keyring.problems == ()
    return keyring


@pytest.fixture
def policy(ring: KeyRing) -> Policy:
    return Policy(SecurityConfig(), ring)


def allowed(policy: Policy, principal: str | None, service: bytes, operation: bytes) -> bool:
    return policy.check_call(principal, service, operation).allowed


# -- pattern --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("glob", "name", "matches"),
    [
        ("org.plantd.module.*", "org.plantd.module.pump1", True),
        ("org.plantd.module.*", "org.plantd.moduleX", False),
        ("org.plantd.State", "org_plantd_State", False),  # '.' is a dot, not any character
        ("*", "", True),
        ("get", "get-all", False),
        ("set-*", "set-\nx", True),
        ("a*b*c", "aXXbYYc", True),
    ],
)
def test_pattern(glob: str, name: str, matches: bool) -> None:
    assert (pattern(glob).fullmatch(name) is not None) is matches


# -- calls by role --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "operation", "access"),
    [
        (STATE, b"get", "read"),
        (STATE, b"set", "configure"),
        (PUMP, b"read", "read"),
        (PUMP, b"write", "operate"),
        (ECHO, b"echo", "read"),
        (AUDIT, b"query", "admin"),
        (b"org.plantd.sim.rig", b"inject", "configure"),
        (b"org.acme.Thing", b"frobnicate", "admin"),  # no rule: admin
    ],
)
@pytest.mark.parametrize(
    ("principal", "levels"),
    [
        ("user.viewer", {"read"}),
        ("user.operator", {"read", "operate"}),
        ("user.engineer", {"read", "operate", "configure"}),
        ("user.admin", {"read", "operate", "configure", "admin"}),
        ("user.both", {"read", "operate", "configure"}),  # roles add up
        ("user.nobody", set()),
        ("user.odd", set()),  # an undefined role grants nothing
    ],
)
def test_a_call_is_allowed_when_a_role_grants_its_access(
    policy: Policy,
    *,
    principal: str,
    levels: set[str],
    service: bytes,
    operation: bytes,
    access: str,
) -> None:
    decision = policy.check_call(principal, service, operation)
    assert decision.access == access
    assert decision.allowed is (access in levels)
    assert (decision.reason == "") is decision.allowed


def test_levels_lists_what_roles_grant_in_order(policy: Policy, ring: KeyRing) -> None:
    grants = ring.grants("user.both")
    assert grants is not None
    assert policy.levels(grants) == frozenset({"read", "operate", "configure"})


def test_the_reason_names_principal_operation_service_access_and_roles(policy: Policy) -> None:
    decision = policy.check_call("user.both", AUDIT, b"verify")
    assert decision == CallDecision(
        False,
        "admin",
        "user.both may not call 'verify' on org.plantd.Audit (it needs 'admin' access; "
        "roles: engineer, viewer)",
    )
    assert policy.check_call("user.nobody", STATE, b"get").reason.endswith("roles: none)")


# -- mmi and strangers ----------------------------------------------------------------------------


@pytest.mark.parametrize("principal", ["user.nobody", "module.pump1", "service.state", "user.odd"])
def test_mmi_is_open_to_every_admitted_principal(policy: Policy, principal: str) -> None:
    for service in (b"mmi.service", b"mmi.workers", b"mmi.anything"):
        assert policy.check_call(principal, service, b"x") == CallDecision(True, "read")


@pytest.mark.parametrize("principal", [None, "user.stranger", "module.ghost", "not a principal"])
def test_a_principal_not_admitted_may_do_nothing(policy: Policy, principal: str | None) -> None:
    decision = policy.check_call(principal, b"mmi.service", b"org.plantd.State")
    assert not decision.allowed
    assert decision.reason == f"{principal or 'an unknown peer'} is not admitted"
    assert not allowed(policy, principal, ECHO, b"echo")
    assert not policy.may_serve(principal, ECHO)
    assert not policy.may_serve(principal, b"org.plantd.module.ghost")
    assert not policy.may_publish(principal, b"data.ghost.x")
    assert not policy.may_publish(principal, b"")


def test_the_broker_may_do_everything_without_a_key_file(policy: Policy) -> None:
    assert policy.check_call(BROKER, AUDIT, b"verify") == CallDecision(True, "admin")
    assert policy.check_call(BROKER, b"org.acme.X", b"y").allowed
    assert policy.may_serve(BROKER, b"org.acme.X")
    assert policy.may_publish(BROKER, b"anything.at.all")


# -- the other kinds ------------------------------------------------------------------------------


def test_a_module_serves_its_own_service_and_publishes_its_own_data(policy: Policy) -> None:
    assert policy.may_serve("module.pump1", PUMP)
    assert not policy.may_serve("module.pump1", b"org.plantd.module.tank")
    assert not policy.may_serve("module.pump1", b"org.plantd.module.pump10")
    assert not policy.may_serve("module.pump1", STATE)
    assert not policy.may_serve("module.pump1", ECHO)
    assert policy.may_publish("module.pump1", b"data.pump1.temperature")
    assert not policy.may_publish("module.pump1", b"data.pump10.temperature")
    assert not policy.may_publish("module.pump1", b"data.tank.level")
    assert not policy.may_publish("module.pump1", b"state.org.plantd.module.pump1")
    # Its batches go on data.pump1 itself; data.pump10, another module's, does not.
    assert policy.may_publish("module.pump1", b"data.pump1")
    assert not policy.may_publish("module.pump1", b"data.pump10")
    assert not policy.may_publish("module.pump1", b"data.pump")


def test_a_module_calls_the_state_service_and_nothing_of_another_module(policy: Policy) -> None:
    for operation in (b"get", b"set", b"delete-scope", b"whatever"):
        decision = policy.check_call("module.pump1", STATE, operation)
        assert decision.allowed, decision
    for operation in (b"read", b"write", b"points", b"status"):
        assert not allowed(policy, "module.pump1", b"org.plantd.module.tank", operation)
    assert not allowed(policy, "module.pump1", HISTORIAN, b"query")


def test_a_sink_reads_the_historian_and_writes_to_modules(policy: Policy) -> None:
    assert allowed(policy, "sink.cloud", HISTORIAN, b"query")
    assert allowed(policy, "sink.cloud", HISTORIAN, b"samples")
    assert allowed(policy, "sink.cloud", PUMP, b"write")
    assert not allowed(policy, "sink.cloud", STATE, b"set")
    assert not allowed(policy, "sink.cloud", AUDIT, b"query")
    assert policy.may_serve("sink.cloud", b"org.plantd.sink.cloud")
    assert not policy.may_serve("sink.cloud", b"org.plantd.sink.other")
    assert policy.may_publish("sink.cloud", b"event.sink.cloud.connected")
    assert not policy.may_publish("sink.cloud", b"data.pump1.x")


@pytest.mark.parametrize(
    ("principal", "serves", "publishes"),
    [
        ("service.state", [STATE], [b"state.org.plantd.module.pump1"]),
        ("service.historian", [HISTORIAN], [b"event.historian.pruned"]),
        ("service.echo", [ECHO], []),
        ("service.sim", [b"org.plantd.sim.rig", b"org.plantd.sim.other"], [b"event.sim.fault"]),
        ("service.custom", [b"org.acme.Thing"], [b"event.acme.x"]),
    ],
)
def test_services_serve_and_publish_what_their_kind_and_key_say(
    policy: Policy, principal: str, serves: list[bytes], publishes: list[bytes]
) -> None:
    for service in serves:
        assert policy.may_serve(principal, service)
    for topic in publishes:
        assert policy.may_publish(principal, topic)
    others = [s for s in (STATE, HISTORIAN, ECHO, PUMP, b"org.plantd.sim.rig") if s not in serves]
    for service in others:
        assert not policy.may_serve(principal, service)
    assert not policy.may_publish(principal, b"data.pump1.x")
    assert not allowed(policy, principal, STATE, b"get")  # services hold no roles


def test_a_user_serves_and_publishes_nothing(policy: Policy) -> None:
    for principal in ("user.admin", "user.viewer"):
        assert not policy.may_serve(principal, ECHO)
        assert not policy.may_publish(principal, b"data.pump1.x")


# -- configuration --------------------------------------------------------------------------------


def test_user_rules_are_checked_before_the_builtin_ones(ring: KeyRing) -> None:
    config = SecurityConfig(
        operations=(
            OperationRule("org.plantd.State", ("set", "delete"), "operate"),
            OperationRule("org.plantd.module.*", ("read",), "admin"),
            OperationRule("org.acme.*", ("*",), "read"),
        )
    )
    policy = Policy(config, ring)
    assert policy.access_of("org.plantd.State", "set") == "operate"
    assert policy.access_of("org.plantd.State", "create-scope") == "configure"  # built-in
    assert allowed(policy, "user.operator", STATE, b"set")
    assert not allowed(policy, "user.operator", STATE, b"create-scope")
    assert not allowed(policy, "user.engineer", PUMP, b"read")
    assert allowed(policy, "user.viewer", b"org.acme.Thing", b"frobnicate")


def test_a_role_added_through_the_configuration(ring: KeyRing) -> None:
    policy = Policy(SecurityConfig(roles=(Role("auditor", ("read", "admin")),)), ring)
    assert allowed(policy, "user.auditor", AUDIT, b"query")
    assert allowed(policy, "user.auditor", STATE, b"get")
    assert not allowed(policy, "user.auditor", PUMP, b"write")
    assert not allowed(policy, "user.auditor", STATE, b"set")
    # without the role in the configuration, "auditor" grants nothing
    assert not allowed(Policy(SecurityConfig(), ring), "user.auditor", STATE, b"get")


def test_a_builtin_role_replaced_through_the_configuration(ring: KeyRing) -> None:
    policy = Policy(SecurityConfig(roles=(Role("viewer", ("read", "operate")),)), ring)
    assert allowed(policy, "user.viewer", PUMP, b"write")
    assert not allowed(policy, "user.viewer", STATE, b"set")
    emptied = Policy(SecurityConfig(roles=(Role("admin", ()),)), ring)
    assert not allowed(emptied, "user.admin", STATE, b"get")
    assert allowed(emptied, "user.engineer", STATE, b"set")


def test_a_long_operation_is_judged_by_its_first_64_bytes(ring: KeyRing) -> None:
    config = SecurityConfig(operations=(OperationRule("org.acme.X", ("peek*",), "read"),))
    policy = Policy(config, ring)
    long = b"peek" + b"x" * 1000
    assert policy.check_call("user.viewer", b"org.acme.X", long) == CallDecision(True, "read")
    reason = policy.check_call("user.viewer", b"org.acme.Y", long).reason
    assert "x" * 60 + "'" in reason
    assert "x" * 61 not in reason


def test_names_that_are_not_ascii_are_judged_without_failing(policy: Policy) -> None:
    decision = policy.check_call("user.admin", b"org.\xffacme", b"\xfe\xff")
    assert decision == CallDecision(True, "admin", audited=True)
    assert not policy.may_serve("module.pump1", b"org.plantd.module.pump1\xff")


# -- enforce=False --------------------------------------------------------------------------------


def test_without_enforcement_everything_is_allowed_and_still_classified(ring: KeyRing) -> None:
    policy = Policy(SecurityConfig(mode="none"), ring, enforce=False)
    assert policy.check_call(None, STATE, b"set") == CallDecision(True, "configure")
    assert policy.check_call("user.stranger", PUMP, b"write") == CallDecision(True, "operate")
    assert policy.check_call("user.viewer", AUDIT, b"query") == CallDecision(True, "admin")
    assert policy.check_call(None, HISTORIAN, b"query") == CallDecision(True, "read")
    assert policy.may_serve(None, STATE)
    assert policy.may_serve("user.viewer", STATE)
    assert policy.may_publish(None, b"state.x")


# -- the caches -----------------------------------------------------------------------------------


def test_decisions_are_cached_per_principal(policy: Policy) -> None:
    first = policy.check_call("user.viewer", STATE, b"set")
    assert policy.check_call("user.viewer", STATE, b"set") is first
    assert policy.check_call("user.engineer", STATE, b"set").allowed
    assert not first.allowed


def test_the_call_cache_is_bounded(policy: Policy) -> None:
    for index in range(_CACHE_LIMIT + 1000):
        policy.check_call("user.viewer", b"org.acme.X", b"op%d" % index)
        assert len(policy._calls) <= _CACHE_LIMIT
    assert len(policy._calls) < _CACHE_LIMIT
    # decisions stay right after the cache was emptied
    assert policy.check_call("user.viewer", STATE, b"get").allowed
    assert not policy.check_call("user.viewer", STATE, b"set").allowed


def test_the_serve_and_publish_caches_are_bounded(policy: Policy) -> None:
    for index in range(_CACHE_LIMIT + 1000):
        policy.may_serve("module.pump1", b"org.acme.S%d" % index)
        policy.may_publish("module.pump1", b"data.pump1.p%d" % index)
    assert 0 < len(policy._serve) <= _CACHE_LIMIT
    assert 0 < len(policy._publish) <= _CACHE_LIMIT
    assert policy.may_serve("module.pump1", PUMP)
    assert not policy.may_publish("module.pump1", b"data.tank.x")
