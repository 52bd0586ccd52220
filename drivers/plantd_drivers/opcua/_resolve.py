"""Browse paths → NodeIds, in one TranslateBrowsePathsToNodeIds request per batch.

Paths start below the ``Objects`` folder and follow hierarchical references (and their
subtypes), as OPC UA browse paths do. A path that does not resolve is not a connection
problem: its point reads ``bad`` with the server's reason until the next connect resolves it.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

from asyncua import ua

from plantd_drivers.opcua._errors import code_name
from plantd_drivers.opcua._nodes import NamespaceTable
from plantd_drivers.opcua._ua import Client, ObjectIds

__all__ = ["relative_path", "resolve_paths"]

_BATCH = 500
K = TypeVar("K", bound=Hashable)


def relative_path(elements: list[tuple[int, str]]) -> ua.RelativePath:
    path = ua.RelativePath()
    hierarchical = ua.NodeId(ua.Int32(ObjectIds.HierarchicalReferences))
    for index, name in elements:
        element = ua.RelativePathElement()
        element.ReferenceTypeId = hierarchical
        element.IsInverse = False  # type: ignore[assignment]  # asyncua's Boolean is a bool
        element.IncludeSubtypes = True  # type: ignore[assignment]
        element.TargetName = ua.QualifiedName(name, index)
        path.Elements.append(element)
    return path


async def resolve_paths(
    client: Client, namespaces: NamespaceTable, paths: Mapping[K, str]
) -> tuple[dict[K, ua.NodeId], dict[K, str]]:
    """``{key: path}`` → (``{key: NodeId}`` for those found, ``{key: problem}`` for the rest)."""
    found: dict[K, ua.NodeId] = {}
    problems: dict[K, str] = {}
    requests: list[tuple[K, ua.BrowsePath]] = []
    for key, text in paths.items():
        try:
            elements = namespaces.path(text)
        except ValueError as exc:
            problems[key] = f"path {text}: {exc}"
            continue
        browse_path = ua.BrowsePath()
        browse_path.StartingNode = ua.NodeId(ua.Int32(ObjectIds.ObjectsFolder))
        browse_path.RelativePath = relative_path(elements)
        requests.append((key, browse_path))
    for start in range(0, len(requests), _BATCH):
        batch = requests[start : start + _BATCH]
        results = await client.uaclient.translate_browsepaths_to_nodeids([bp for _, bp in batch])
        for (key, _), result in zip(batch, results, strict=True):
            code = int(result.StatusCode.value)
            if code & 0xC0000000 or not result.Targets:
                problems[key] = (
                    f"path {paths[key]} not found on the server ({code_name(code)}); "
                    "it is looked up again at the next connect"
                )
            else:
                target = result.Targets[0].TargetId
                found[key] = ua.NodeId(target.Identifier, target.NamespaceIndex, target.NodeIdType)
    return found, problems
