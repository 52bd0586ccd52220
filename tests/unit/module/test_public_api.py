"""The public API of ``plantd.module`` is pinned: what it exports (a change here is a change for
driver authors, and deliberate), and a docstring on every export and every public method."""

from __future__ import annotations

import ast
import inspect
import itertools
import sys
from typing import Any

import pytest

import plantd.module

EXPORTS = [
    "ENTRY_POINT_GROUP",
    "Driver",
    "DriverClass",
    "DriverOperation",
    "GroupConfig",
    "HostedModule",
    "ModuleConfig",
    "ModuleHost",
    "PointConfig",
    "PointDefaults",
    "PushDriver",
    "Reading",
    "available_drivers",
    "is_isolated",
    "load_driver",
    "load_host",
    "module_files",
    "parse_module_file",
    "pushes",
    "read_driver_name",
]


def test_the_exports_are_pinned() -> None:
    # sorted as ruff sorts __all__ (RUF022): constants, then classes, then functions
    ruff_order = sorted(EXPORTS, key=lambda name: (not name.isupper(), name[0].islower(), name))
    assert ruff_order == EXPORTS
    assert plantd.module.__all__ == EXPORTS


@pytest.mark.parametrize("name", EXPORTS)
def test_every_export_resolves_and_has_a_docstring(name: str) -> None:
    exported = getattr(plantd.module, name)
    if inspect.isclass(exported) or callable(exported):
        assert own_docstring(exported), f"{name} has no docstring"
    else:
        assert attribute_docstring(name, exported), f"{name} has no docstring after it"


@pytest.mark.parametrize("name", [name for name in EXPORTS if name[0].isupper()])
def test_every_public_method_of_an_exported_class_has_a_docstring(name: str) -> None:
    exported = getattr(plantd.module, name)
    if not inspect.isclass(exported):
        return
    missing = [
        member
        for member, value in vars(exported).items()
        if not member.startswith("_")
        and (function := unwrap(value)) is not None
        and not own_docstring(function)
    ]
    assert not missing, f"{name}: no docstring on {', '.join(missing)}"


def own_docstring(thing: Any) -> bool:
    doc = thing.__doc__
    if not doc or not doc.strip():
        return False
    # A dataclass without a docstring is given its signature as one: that does not count.
    return not (inspect.isclass(thing) and doc.startswith(f"{thing.__name__}("))


def unwrap(value: Any) -> Any:
    """The function behind a class attribute, or None if it is not a method or property."""
    if isinstance(value, property):
        return value.fget
    if isinstance(value, classmethod | staticmethod):
        return value.__func__
    return value if inspect.isfunction(value) else None


def attribute_docstring(name: str, value: object) -> bool:
    """Whether the module that assigns ``name`` follows the assignment with a string."""
    for module_name, module in list(sys.modules.items()):
        if not module_name.startswith("plantd.module") or getattr(module, name, None) is not value:
            continue
        body = ast.parse(inspect.getsource(module)).body
        for statement, following in itertools.pairwise(body):
            targets = statement.targets if isinstance(statement, ast.Assign) else []
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return (
                    isinstance(following, ast.Expr)
                    and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)
                )
    return False
