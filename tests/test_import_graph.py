"""The direction of the tree's imports: the product never imports the HIL rig, and no two parts
of the tree import each other.

Every ``.py`` file under ``plantd/``, ``drivers/plantd_drivers/`` and ``hil/`` is parsed with
:mod:`ast` (nothing is imported), and every ``import`` and ``from … import`` is read wherever it
stands: at module level, inside a function (the lazy imports that keep ``plant`` quick to start),
under ``if TYPE_CHECKING:``; and ``importlib.import_module("a.b")`` or ``__import__("a.b")``
with a literal name. A lazy import is an edge like any other: it runs sooner or later.
Imports of modules outside these three packages are ignored; so are entry points (strings in
``pyproject.toml``), which are how the core reaches the drivers' and the rig's code without
importing it.

Granularity: each module is counted as part of its *unit*, the top-level package plus its
first subpackage or module — ``plantd.cli._common`` is part of ``plantd.cli``,
``plantd_drivers.modbus._codec`` of ``plantd_drivers.modbus``, ``hil.sim._schema`` of
``hil.sim``, ``plantd.errors`` is a unit of its own. Inside a unit, modules may import each other
in any order (a package and its private modules are one piece of work); between units the graph
must be acyclic, so that each part can be understood, tested and replaced with only what it
imports, and the dependency direction of ``docs/architecture.md`` (core ← drivers ← rig) holds.
This is finer than the three packages (where ``plantd`` ↔ ``plantd_drivers`` ↔ ``hil`` must not
loop either, which acyclic units imply) and coarser than modules (where a package's ``__init__``
and its private modules import each other by design).

Across the three packages only public names are used: the drivers and the rig import
``plantd.cli``, never ``plantd.cli._common``; the rig imports ``plantd_drivers.modbus``, never
its ``_types``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "plantd": ROOT / "plantd",
    "plantd_drivers": ROOT / "drivers" / "plantd_drivers",
    "hil": ROOT / "hil",
}
PRODUCT = ("plantd", "plantd_drivers")  # what ships to the appliance, and must not need the rig
RIG = "hil"

# Edges known to be wrong and being removed, each with the reason it is tolerated for now.
# (importer unit, imported unit). Keep this empty: an entry here is a debt, not a rule.
KNOWN_EDGES: frozenset[tuple[str, str]] = frozenset()

Graph = Mapping[str, frozenset[str]]


def module_name(path: Path, roots: Mapping[str, Path]) -> str:
    """``hil/sim/_schema.py`` → ``hil.sim._schema``; a package's ``__init__.py`` is the package."""
    for top, root in roots.items():
        if path.is_relative_to(root):
            parts = [top, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join(parts)
    raise ValueError(f"{path} is in none of {sorted(roots)}")


def imported_modules(tree: ast.AST, importer: str, *, is_package: bool) -> Iterator[str]:
    """Every module an import statement anywhere in ``tree`` names, relative ones resolved.

    ``from a.b import c`` yields ``a.b.c`` as well as ``a.b``: ``c`` may be a submodule, and if
    it is not, ``a.b.c`` is simply not a module of the tree and is dropped by the caller.
    """
    package = importer if is_package else importer.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _is_import_call(node.func) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield first.value
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def _is_import_call(func: ast.expr) -> bool:
    """``importlib.import_module``, ``import_module`` or ``__import__``."""
    if isinstance(func, ast.Attribute):
        return func.attr == "import_module"
    return isinstance(func, ast.Name) and func.id in ("import_module", "__import__")


def module_edges(roots: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module → the modules of the tree it imports (itself excluded)."""
    sources = {
        path: module_name(path, roots)
        for root in roots.values()
        for path in sorted(root.rglob("*.py"))
        if "__pycache__" not in path.parts
    }
    known = set(sources.values())
    edges: dict[str, set[str]] = {}
    for path, name in sources.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = imported_modules(tree, name, is_package=path.name == "__init__.py")
        edges[name] = {target for target in targets if target in known and target != name}
    return edges


def unit_of(module: str) -> str:
    """The unit a module belongs to: its top-level package and first component below it."""
    return ".".join(module.split(".")[:2])


def unit_graph(edges: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    """The module graph collapsed to units; imports inside a unit are dropped."""
    units: dict[str, set[str]] = {}
    for importer, targets in edges.items():
        source = unit_of(importer)
        units.setdefault(source, set()).update(
            unit_of(target) for target in targets if unit_of(target) != source
        )
    return {unit: frozenset(targets) for unit, targets in units.items()}


def without_known(graph: Graph) -> dict[str, frozenset[str]]:
    return {
        unit: frozenset(t for t in targets if (unit, t) not in KNOWN_EDGES)
        for unit, targets in graph.items()
    }


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one unit (Tarjan's algorithm,
    iterative), each sorted: every one of them is at least one import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def product_to_rig(graph: Graph) -> list[tuple[str, str]]:
    """Edges from a unit of plantd or plantd_drivers to a unit of hil."""
    return sorted(
        (unit, target)
        for unit, targets in graph.items()
        if unit.split(".")[0] in PRODUCT
        for target in targets
        if target.split(".")[0] == RIG
    )


def private_imports_across_packages(edges: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    """(importer, module) where the module is private (a ``_name`` in its path) and belongs to
    another of the three packages than its importer."""
    return sorted(
        (importer, target)
        for importer, targets in edges.items()
        for target in targets
        if target.split(".")[0] != importer.split(".")[0]
        and any(part.startswith("_") for part in target.split(".")[1:])
    )


def describe(graph: Graph, component: list[str]) -> str:
    """One shortest loop of a strongly connected component, ``a → b → a``, and its size."""
    members = set(component)
    best: list[str] = []
    for start in component:  # breadth-first from each member back to itself
        paths = {start: [start]}
        queue = [start]
        while queue:
            node = queue.pop(0)
            nexts = sorted(graph.get(node, frozenset()) & members)
            if start in nexts:
                loop = [*paths[node], start]
                if not best or len(loop) < len(best):
                    best = loop
                break
            for child in nexts:
                if child not in paths:
                    paths[child] = [*paths[node], child]
                    queue.append(child)
    return f"{' → '.join(best)} (a knot of {len(component)} units: {', '.join(component)})"


@pytest.fixture(scope="module")
def edges() -> dict[str, set[str]]:
    return module_edges(PACKAGES)


@pytest.fixture(scope="module")
def graph(edges: Mapping[str, set[str]]) -> dict[str, frozenset[str]]:
    return unit_graph(edges)


def test_the_product_does_not_import_the_rig(graph: Graph) -> None:
    assert product_to_rig(without_known(graph)) == []


def test_no_import_cycle_between_units(graph: Graph) -> None:
    pruned = without_known(graph)
    assert [describe(pruned, c) for c in cycles(pruned)] == []


def test_packages_use_each_others_public_names_only(edges: Mapping[str, set[str]]) -> None:
    assert private_imports_across_packages(edges) == []


def test_known_edges_are_still_there(graph: Graph) -> None:
    """An allowed edge that has gone must leave the list too, so that it cannot come back."""
    gone = sorted((a, b) for a, b in KNOWN_EDGES if b not in graph.get(a, frozenset()))
    assert gone == []


def test_every_kind_of_import_is_an_edge(tmp_path: Path) -> None:
    """A planted tree: lazy, relative, TYPE_CHECKING and from-imports are all seen."""
    (tmp_path / "plantd" / "cli").mkdir(parents=True)
    (tmp_path / "plantd" / "module").mkdir()
    (tmp_path / "hil" / "sim").mkdir(parents=True)
    files = {
        "plantd/__init__.py": "",
        "plantd/cli/__init__.py": "from . import _common\n",
        "plantd/cli/_common.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from plantd.module import _host\n"
        ),
        "plantd/module/__init__.py": "",
        "plantd/module/_host.py": "def run():\n    from ..cli import _common\n",
        "plantd/module/_chip.py": "import importlib\nimportlib.import_module('hil.sim._run')\n",
        "hil/__init__.py": "",
        "hil/sim/__init__.py": "import plantd.cli\n",
        "hil/sim/_run.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    edges = module_edges({"plantd": tmp_path / "plantd", "hil": tmp_path / "hil"})
    assert edges["plantd.cli"] == {"plantd.cli._common"}
    assert edges["plantd.cli._common"] == {"plantd.module", "plantd.module._host"}
    assert edges["plantd.module._host"] == {"plantd.cli", "plantd.cli._common"}
    units = unit_graph(edges)
    # plantd.cli ↔ plantd.module directly, and hil.sim → plantd.cli → plantd.module → hil.sim
    assert cycles(units) == [["hil.sim", "plantd.cli", "plantd.module"]]
    assert edges["plantd.module._chip"] == {"hil.sim._run"}
    assert private_imports_across_packages(edges) == [("plantd.module._chip", "hil.sim._run")]
    assert product_to_rig(units) == [("plantd.module", "hil.sim")]
    assert units["hil.sim"] == {"plantd.cli"}


def test_a_planted_edge_to_the_rig_is_caught(graph: Graph) -> None:
    planted = {**graph, "plantd.cli": graph["plantd.cli"] | {"hil.sim"}}
    assert product_to_rig(without_known(planted)) == [("plantd.cli", "hil.sim")]


def test_a_planted_cycle_is_caught(graph: Graph) -> None:
    """The config does not know the command line; if it imported it, the two would loop."""
    assert "plantd.config" in graph["plantd.cli"]
    planted = {**graph, "plantd.config": graph["plantd.config"] | {"plantd.cli"}}
    assert any({"plantd.cli", "plantd.config"} <= set(c) for c in cycles(without_known(planted)))
