"""The implementation of ``plant opcua browse`` (imported only when it runs: asyncua is heavy,
and ``plant`` starts without it).

Servers differ in what they let pass: a Read of no nodes is BadNothingToDo on most (asyncua's
own server lets it through), so a folder without variables is never asked for values. Any
refusal of the server ends the command with its status code, never with a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any, Literal

from asyncua import ua

from plantd.cli import emit
from plantd.errors import DeviceError, UsageError
from plantd_drivers.opcua._config import OpcuaConnection, OpcuaModule, OpcuaSecurity
from plantd_drivers.opcua._errors import to_device_error
from plantd_drivers.opcua._nodes import NamespaceTable
from plantd_drivers.opcua._resolve import resolve_paths
from plantd_drivers.opcua._session import Session
from plantd_drivers.opcua._ua import AttributeIds, ObjectIds
from plantd_drivers.opcua._values import to_sample_value

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    mode: Literal["None", "Sign", "SignAndEncrypt"] = args.mode or (
        "None" if args.policy == "None" else "SignAndEncrypt"
    )
    security = OpcuaSecurity(
        policy=args.policy,
        mode=mode,
        certificate=args.certificate or Path("plant-browse-cert.der"),
        private_key=args.private_key or Path("plant-browse-key.pem"),
        trust=tuple(args.trust),
    )
    problems = [message for _, message in security.cross_check()]
    if problems:
        raise UsageError("; ".join(problems))
    module = OpcuaModule(
        driver="opcua",
        name="browse",
        connection=OpcuaConnection(
            endpoint=args.endpoint,
            security=security,
            username=args.user,
            password=args.password,
            timeout=args.timeout,
        ),
    )
    try:
        namespaces, rows = asyncio.run(_browse(module, args.path, max(1, args.depth)))
    except DeviceError as exc:
        raise UsageError(f"browsing {args.endpoint}: {exc}") from exc
    lines = [f"namespace {i}: {uri}" for i, uri in enumerate(namespaces)]
    if not rows:
        lines.append(f"(no nodes below {args.path or 'Objects'})")
    for row in rows:
        indent = "  " * (row["depth"] - 1)
        lines.append(
            f"{indent}{row['path']}  [{row['class']}]  {row['node']}"
            + (f"  {row['type']} = {row['value']!r}" if row["class"] == "Variable" else "")
        )
    emit(args, {"namespaces": namespaces, "nodes": rows}, "\n".join(lines))
    return 0


async def _browse(
    module: OpcuaModule, path: str, depth: int
) -> tuple[list[str], list[dict[str, Any]]]:
    session = await Session.open(module)
    try:
        return await _list(session, path, depth)
    except (DeviceError, UsageError):
        raise
    except Exception as exc:  # the server refused something: say what, not a traceback
        raise to_device_error(exc, f"listing the nodes below {path or 'Objects'}") from exc
    finally:
        await session.close()


async def _list(session: Session, path: str, depth: int) -> tuple[list[str], list[dict[str, Any]]]:
    client = session.client
    namespaces = list(await client.get_namespace_array())
    start = ua.NodeId(ua.Int32(ObjectIds.ObjectsFolder))
    if path:
        found, problems = await resolve_paths(client, NamespaceTable(namespaces, {}), {0: path})
        if problems:
            raise UsageError(problems[0])
        start = found[0]
    rows: list[dict[str, Any]] = []
    await _walk(session, start, path.strip("/"), level=1, depth=depth, rows=rows)
    return namespaces, rows


async def _walk(
    session: Session, node_id: ua.NodeId, prefix: str, *, level: int, depth: int,
    rows: list[dict[str, Any]],
) -> None:  # fmt: skip
    node = session.client.get_node(node_id)
    children = await node.get_children_descriptions()
    variables = [c for c in children if c.NodeClass == ua.NodeClass.Variable]
    values = (
        await session.client.uaclient.read_attributes(
            [c.NodeId for c in variables], AttributeIds.Value
        )
        if variables
        else []
    )
    details = {c.NodeId.to_string(): v for c, v in zip(variables, values, strict=True)}
    for child in children:
        name = f"{child.BrowseName.NamespaceIndex}:{child.BrowseName.Name}"
        child_path = f"{prefix}/{name}" if prefix else name
        row: dict[str, Any] = {
            "depth": level,
            "path": child_path,
            "class": child.NodeClass.name,
            "node": child.NodeId.to_string(),
        }
        value = details.get(child.NodeId.to_string())
        if value is not None:
            variant = value.Value
            row["type"] = variant.VariantType.name if variant is not None else "Null"
            try:
                row["value"] = to_sample_value(variant.Value if variant is not None else None)
            except ValueError:
                row["value"] = str(variant)
        rows.append(row)
        if level < depth and child.NodeClass == ua.NodeClass.Object:
            await _walk(session, child.NodeId, child_path, level=level + 1, depth=depth, rows=rows)
