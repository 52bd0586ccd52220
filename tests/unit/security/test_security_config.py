"""``security:`` in plantd.yaml (plantd.config._security), parsed as PlantdConfig parses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plantd.config import (
    ACCESS_LEVELS,
    AuditConfig,
    OperationRule,
    PlantdConfig,
    Role,
    SecurityConfig,
    parse_dataclass,
)
from plantd.config._security import BUILTIN_OPERATIONS, BUILTIN_ROLES
from plantd.errors import ConfigError


def parse(security: dict[str, Any]) -> SecurityConfig:
    config = parse_dataclass(PlantdConfig, {"security": security}, source="plantd.yaml")
    return config.security


def problems(security: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(security)
    return caught.value.problems


def test_defaults() -> None:
    security = parse({})
    assert security == SecurityConfig()
    assert security.mode == "curve"
    assert security.enabled
    assert (security.keys, security.secrets, security.identity) == (None, None, None)
    assert (security.roles, security.operations) == ((), ())
    assert security.audit == AuditConfig(None, 365 * 86_400.0, 64 * 1024 * 1024)


def test_mode_none_is_not_enabled() -> None:
    assert not parse({"mode": "none"}).enabled


def test_roles_and_operations_are_parsed() -> None:
    security = parse(
        {
            "roles": [
                {"name": "auditor", "access": ["read", "admin"]},
                {"name": "viewer", "access": ["read", "operate"]},
                {"name": "nobody"},
            ],
            "operations": [
                {"service": "org.acme.*", "operations": ["peek", "look-*"], "access": "read"},
                {"operations": ["reboot"]},
                {},
            ],
        }
    )
    assert security.roles == (
        Role("auditor", ("read", "admin")),
        Role("viewer", ("read", "operate")),
        Role("nobody", ()),
    )
    assert security.operations == (
        OperationRule("org.acme.*", ("peek", "look-*"), "read"),
        OperationRule("*", ("reboot",), "admin"),
        OperationRule("*", ("*",), "admin"),
    )


def test_audit_settings_take_units() -> None:
    security = parse(
        {
            "audit_database": "/var/log/plantd/audit.db",
            "audit_max_age": "30d",
            "audit_max_bytes": "1MiB",
        }
    )
    assert security.audit == AuditConfig(Path("/var/log/plantd/audit.db"), 30 * 86_400.0, 1 << 20)
    assert security.audit.database_path(Path("/data")) == Path("/var/log/plantd/audit.db")
    assert SecurityConfig().audit.database_path(Path("/data")) == Path("/data/audit.db")


@pytest.mark.parametrize(
    ("security", "problem"),
    [
        (
            {"operations": [{"service": "x"}, {"access": "superuser"}]},
            "plantd.yaml: security.operations[1].access: expected one of 'read', 'operate', "
            "'configure', 'admin', got 'superuser'",
        ),
        (
            {"roles": [{"name": "r", "access": ["read", "root"]}]},
            "plantd.yaml: security.roles[0].access[1]: expected one of 'read', 'operate', "
            "'configure', 'admin', got 'root'",
        ),
        (
            {"roles": [{"name": "two words"}]},
            "plantd.yaml: security.roles[0].name: a role name has letters, digits, '-' and '_', "
            "got 'two words'",
        ),
        (
            {"roles": [{"name": ""}]},
            "plantd.yaml: security.roles[0].name: a role name has letters, digits, '-' and '_', "
            "got ''",
        ),
        ({"mode": "off"}, "plantd.yaml: security.mode: expected one of 'curve', 'none', got 'off'"),
        (
            {"audit_max_bytes": 1000},
            "plantd.yaml: security.audit_max_bytes: expected a size >= 65536, got 1000",
        ),
        (
            {"audit_max_age": 0},
            "plantd.yaml: security.audit_max_age: expected a duration > 0, got 0",
        ),
    ],
    ids=["operation-access", "role-access", "role-name", "empty-role-name", "mode", "bytes", "age"],
)
def test_a_bad_value_is_named_by_its_key_path(security: dict[str, Any], problem: str) -> None:
    assert problems(security) == [problem]


def test_an_unknown_key_is_named() -> None:
    (problem,) = problems({"operations": [{"service": "x", "acess": "read"}]})
    assert problem.startswith("plantd.yaml: security.operations[0].acess: ")


def test_every_problem_is_reported() -> None:
    found = problems(
        {
            "roles": [{"name": "a b"}, {"name": "r", "access": ["x"]}],
            "operations": [{"access": "y"}],
        }
    )
    assert [problem.split(":")[1].strip() for problem in found] == [
        "security.roles[0].name",
        "security.roles[1].access[0]",
        "security.operations[0].access",
    ]


def test_all_roles_adds_and_replaces_builtin_ones() -> None:
    assert dict(SecurityConfig().all_roles()) == dict(BUILTIN_ROLES)
    security = SecurityConfig(
        roles=(Role("auditor", ("read", "admin")), Role("viewer", ("read", "operate")))
    )
    assert dict(security.all_roles()) == {
        "viewer": ("read", "operate"),
        "operator": ("read", "operate"),
        "engineer": ("read", "operate", "configure"),
        "admin": ("read", "operate", "configure", "admin"),
        "auditor": ("read", "admin"),
    }
    assert list(security.all_roles())[:4] == ["viewer", "operator", "engineer", "admin"]
    with pytest.raises(TypeError):
        security.all_roles()["x"] = ()  # type: ignore[index]


def test_builtin_roles_grant_growing_access() -> None:
    assert dict(BUILTIN_ROLES) == {
        "viewer": ("read",),
        "operator": ("read", "operate"),
        "engineer": ("read", "operate", "configure"),
        "admin": ACCESS_LEVELS,
    }


def test_all_operations_puts_this_files_rules_first() -> None:
    rules = (OperationRule("org.acme.*", ("*",), "read"), OperationRule("*", ("x",), "operate"))
    assert SecurityConfig().all_operations() == BUILTIN_OPERATIONS
    assert SecurityConfig(operations=rules).all_operations() == (*rules, *BUILTIN_OPERATIONS)


def test_keys_dir_defaults_to_keys_in_the_config_directory() -> None:
    assert SecurityConfig().keys_dir(Path("/srv/etc")) == Path("/srv/etc/keys")
    assert SecurityConfig().keys_dir(None) == Path("/etc/plantd/keys")
    assert SecurityConfig(keys=Path("/k")).keys_dir(Path("/srv/etc")) == Path("/k")


def test_secrets_dir_defaults_to_secrets_in_the_data_directory() -> None:
    assert SecurityConfig().secrets_dir(Path("/var/lib/plantd")) == Path("/var/lib/plantd/secrets")
    assert SecurityConfig(secrets=Path("/s")).secrets_dir(Path("/data")) == Path("/s")


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    config = parse_dataclass(
        PlantdConfig,
        {"security": {"keys": "keys2", "secrets": "/abs", "identity": "me.key_secret"}},
        source="plantd.yaml",
        base_dir=tmp_path,
    )
    assert config.security.keys == tmp_path / "keys2"
    assert config.security.secrets == Path("/abs")
    assert config.security.identity == tmp_path / "me.key_secret"
