"""Naming nodes in config: NodeIds and browse paths, with namespaces by URI or alias (sans-IO).

A namespace *index* belongs to one server run: a server may number its namespaces differently
after a restart or an upgrade. Config may therefore name a namespace three ways, and every name
is turned into an index at each connect, from the server's ``NamespaceArray``:

- by index: ``ns=2;s=Line1.Speed``, path element ``2:Speed``;
- by URI: ``nsu=urn:acme:line;s=Line1.Speed`` (a NodeId only; a URI contains ``:``);
- by alias, declared in ``connection.namespaces`` (``line: urn:acme:line``):
  ``ns=line;s=Line1.Speed``, path element ``line:Speed``.

A browse path is a ``/``-separated list of browse names starting below the ``Objects`` folder
(``line:Line1/line:Speed``); an element without a prefix is in namespace 0. Every function here
takes text and a namespace table and returns text asyncua understands, or raises ValueError
naming what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

__all__ = ["NamespaceTable", "looks_like_node_id", "node_id_problem", "path_problem", "split_path"]

_NODE_ID = re.compile(r"(?:(?P<ns>ns|nsu)=(?P<space>[^;]+);)?(?P<kind>[isgb])=(?P<ident>.+)", re.S)
_ELEMENT = re.compile(r"(?:(?P<space>[A-Za-z0-9_.-]+):)?(?P<name>[^/]+)")


def looks_like_node_id(text: str) -> bool:
    """``ns=2;s=X``, ``nsu=URI;i=5``, ``i=85`` are NodeIds; anything else is a browse path."""
    return _NODE_ID.fullmatch(text) is not None


def node_id_problem(text: str) -> str | None:
    if _NODE_ID.fullmatch(text) is None:
        return (
            "expected a NodeId such as 'ns=2;s=Line1.Speed', 'ns=ALIAS;i=1001' or "
            f"'nsu=urn:…;s=Tag', got {text!r}"
        )
    return None


def split_path(text: str) -> list[tuple[str | None, str]]:
    """``"line:Line1/Speed"`` → ``[("line", "Line1"), (None, "Speed")]``."""
    elements: list[tuple[str | None, str]] = []
    for part in text.strip("/").split("/"):
        match = _ELEMENT.fullmatch(part)
        if match is None:
            raise ValueError(f"browse path {text!r}: empty element")
        elements.append((match["space"], match["name"]))
    return elements


def path_problem(text: str) -> str | None:
    try:
        split_path(text)
    except ValueError as exc:
        return f"expected a browse path such as 'line:Line1/line:Speed': {exc}"
    return None


class NamespaceTable:
    """Namespace names (index text, alias, URI) → the connected server's indexes."""

    def __init__(self, namespace_array: Sequence[str], aliases: Mapping[str, str]) -> None:
        self.uris = list(namespace_array)
        self.aliases = dict(aliases)

    def index(self, space: str | None) -> int:
        if space is None:
            return 0
        if space.isdigit():
            return int(space)
        uri = self.aliases.get(space, space)
        try:
            return self.uris.index(uri)
        except ValueError:
            known = ", ".join(f"{i}: {u}" for i, u in enumerate(self.uris))
            hint = f" (alias {space!r} → {uri!r})" if space in self.aliases else ""
            raise ValueError(
                f"namespace {space!r}{hint} is not on the server (it has {known})"
            ) from None

    def node_id(self, text: str) -> str:
        """The NodeId ``text`` with its namespace as an index: ``ns=3;s=Line1.Speed``."""
        match = _NODE_ID.fullmatch(text)
        if match is None:
            raise ValueError(node_id_problem(text))
        if match["ns"] is None:
            return text
        return f"ns={self.index(match['space'])};{match['kind']}={match['ident']}"

    def path(self, text: str) -> list[tuple[int, str]]:
        """The browse path ``text`` as (namespace index, name) elements."""
        return [(self.index(space), name) for space, name in split_path(text)]
