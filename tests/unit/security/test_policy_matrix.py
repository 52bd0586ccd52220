"""The role × operation matrix, generated from every plantd service's own operations.

Each operation declares its access level where it is written (``@definition.operation(name,
access=...)``); the policy grades operations by the rules of ``security.operations`` and the
built-in table. This test builds the ``ServiceDefinition`` of every plantd service and checks,
cell by cell, that a user of each built-in role may call exactly the operations whose declared
access the role grants: what keeps the policy table and the code in step.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plantd.config import Access, SecurityConfig, check_module_file
from plantd.config._security import BUILTIN_ROLES
from plantd.security import KeyRing, Policy, load_keyring
from plantd.service import ServiceDefinition
from tests.unit.security._catalogue import DEFINITIONS, declared, module_definition
from tests.unit.security._keys import admit

ROLES = tuple(BUILTIN_ROLES)


def _by_name(service: str) -> ServiceDefinition:
    return next(d for d in DEFINITIONS if d.name == service)


OPERATION_CELLS = [
    pytest.param(d.name, name, access, id=f"{d.name}:{name}")
    for d in DEFINITIONS
    for name, access in declared(d)
]
ROLE_CELLS = [
    pytest.param(role, d.name, name, access, id=f"{role}:{d.name}:{name}")
    for role in ROLES
    for d in DEFINITIONS
    for name, access in declared(d)
]


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> KeyRing:
    keys = tmp_path_factory.mktemp("keys")
    for role in ROLES:
        admit(keys, f"user.{role}", roles=role)
    admit(keys, "module.m1")
    admit(keys, "sink.cloud")
    ring = load_keyring(keys)
    assert ring.problems == ()
    return ring


@pytest.fixture(scope="module")
def policy(keyring: KeyRing) -> Policy:
    return Policy(SecurityConfig(), keyring)


def test_every_plantd_service_is_in_the_matrix() -> None:
    assert [definition.name for definition in DEFINITIONS] == [
        "org.plantd.State",
        "org.plantd.Historian",
        "org.plantd.module.m1",
        "org.plantd.sink.cloud",
        "org.plantd.module.Echo",
        "org.plantd.sim.rig",
        "org.plantd.Audit",
        "org.plantd.Logger",
        "org.plantd.Health",
        "org.plantd.Alarms",
        "org.plantd.Control",
    ]
    assert "start-pump" in DEFINITIONS[2].operations
    assert sum(len(declared(d)) for d in DEFINITIONS) == len(OPERATION_CELLS)


@pytest.mark.parametrize(("service", "operation", "declared"), OPERATION_CELLS)
def test_the_policy_grades_every_operation_as_it_declares(
    policy: Policy, service: str, operation: str, declared: Access
) -> None:
    assert policy.access_of(service, operation) == declared


@pytest.mark.parametrize(("role", "service", "operation", "declared"), ROLE_CELLS)
def test_a_role_may_call_exactly_the_operations_its_access_levels_cover(
    keyring: KeyRing, role: str, service: str, operation: str, declared: Access
) -> None:
    policy = Policy(SecurityConfig(), keyring)
    decision = policy.check_call(f"user.{role}", service.encode(), operation.encode())
    assert decision.allowed is (declared in BUILTIN_ROLES[role]), decision.reason


# -- the other kinds ------------------------------------------------------------------------------


def test_a_module_may_call_every_state_operation(policy: Policy) -> None:
    state = DEFINITIONS[0]
    for name, _ in declared(state):
        assert policy.check_call("module.m1", state.name.encode(), name.encode()).allowed, name


def test_a_module_may_call_nothing_on_anothermodule_definition(policy: Policy) -> None:
    other = module_definition("m2")
    for name, _ in declared(other):
        decision = policy.check_call("module.m1", other.name.encode(), name.encode())
        assert not decision.allowed, name


def test_a_sink_may_read_the_historian_and_write_to_modules(policy: Policy) -> None:
    historian, module = DEFINITIONS[1], DEFINITIONS[2]
    for name, _ in declared(historian):
        assert policy.check_call("sink.cloud", historian.name.encode(), name.encode()).allowed
    for name in ("write", "start-pump", "read", "points"):
        assert policy.check_call("sink.cloud", module.name.encode(), name.encode()).allowed
    for name, access in declared(DEFINITIONS[0]):
        decision = policy.check_call("sink.cloud", b"org.plantd.State", name.encode())
        assert decision.allowed is (access == "read"), name


# -- services whose names meet a broader rule -----------------------------------------------------

_READ_NAMES_BUG = (
    "BUG: a driver operation (declared 'operate') named like one of the '*' read rule's "
    "operations is graded 'read' by BUILTIN_OPERATIONS, so a viewer may call it; the OPC UA "
    "driver reserves only points/read/write/status/operations"
)


@pytest.mark.parametrize(
    "name", ["get", "list", "query", "snapshot", "samples", "health", "list-scopes"]
)
def test_a_driver_operation_named_like_a_read_needs_operate(keyring: KeyRing, name: str) -> None:
    module = module_definition("m1", driver_operations=(name,))
    assert module.operations[name].access == "operate"
    policy = Policy(SecurityConfig(), keyring)
    assert policy.access_of(module.name, name) == "operate"
    assert not policy.check_call("user.viewer", module.name.encode(), name.encode()).allowed


def test_a_module_may_not_be_named_echo(tmp_path: Path) -> None:
    """org.plantd.module.Echo is the diagnostic Echo service, graded ``read`` throughout: a
    module of that name would hand its writes to viewers, so the name is refused."""
    path = tmp_path / "Echo.yaml"
    path.write_text("driver: fake\n")
    assert check_module_file(path) == [
        f"{path}: module name 'Echo' is taken by plantd's Echo service; rename the file"
    ]
