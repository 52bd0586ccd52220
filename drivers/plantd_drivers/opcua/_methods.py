"""Method calls as module operations: config names a method, the module's service calls it.

At each connect the method and its object are resolved (NodeIds or browse paths, as points),
and the method's ``InputArguments`` property read, so that the arguments a caller sends as JSON
are converted to the data types the method declares. A call answers the output arguments as
sample values. A method that does not resolve makes its operation refuse with the reason
(``module.device-fault``) until the next connect finds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asyncua import ua
from asyncua.common.ua_utils import data_type_to_variant_type

from plantd.errors import DeviceFault
from plantd_drivers.opcua._config import OpcuaMethod
from plantd_drivers.opcua._errors import code_name, to_device_error
from plantd_drivers.opcua._nodes import NamespaceTable, looks_like_node_id, split_path
from plantd_drivers.opcua._resolve import resolve_paths
from plantd_drivers.opcua._ua import Client, ObjectIds, UaStatusCodeError
from plantd_drivers.opcua._values import coerce, to_sample_value

__all__ = ["BoundMethod", "bind_methods"]


@dataclass
class BoundMethod:
    config: OpcuaMethod
    object_id: ua.NodeId | None = None
    method_id: ua.NodeId | None = None
    argument_types: list[ua.VariantType] | None = None
    problem: str | None = None

    async def call(self, client: Client, args: Sequence[Any]) -> list[Any]:
        if self.problem is not None:
            raise DeviceFault(f"method {self.config.name}: {self.problem}")
        assert self.argument_types is not None
        if len(args) != len(self.argument_types):
            raise ValueError(
                f"method {self.config.name} takes {len(self.argument_types)} argument(s) "
                f"({', '.join(t.name for t in self.argument_types) or 'none'}), got {len(args)}"
            )
        request = ua.CallMethodRequest()
        request.ObjectId = self.object_id
        request.MethodId = self.method_id
        request.InputArguments = [
            ua.Variant(coerce(arg, kind.name), kind)
            for arg, kind in zip(args, self.argument_types, strict=True)
        ]
        try:
            results = await client.uaclient.call([request])
        except Exception as exc:
            raise to_device_error(exc, f"calling {self.config.name}") from exc
        code = int(results[0].StatusCode.value)
        if code & 0xC0000000:
            raise DeviceFault(f"the server refused {self.config.name}: {code_name(code)}")
        return [to_sample_value(v.Value) for v in results[0].OutputArguments or []]


async def bind_methods(
    client: Client, namespaces: NamespaceTable, methods: Sequence[OpcuaMethod]
) -> dict[str, BoundMethod]:
    bound = {m.name: BoundMethod(m) for m in methods}
    paths: dict[tuple[str, str], str] = {}
    for m in methods:
        for role, text in (("method", m.method), ("object", _object_of(m))):
            if looks_like_node_id(text):
                try:
                    node_id = ua.NodeId.from_string(namespaces.node_id(text))
                except ValueError as exc:
                    bound[m.name].problem = f"{role} {text}: {exc}"
                    continue
                setattr(bound[m.name], f"{role}_id", node_id)
            else:
                paths[(m.name, role)] = text
    found, problems = await resolve_paths(client, namespaces, paths)
    for (name, _role), problem in problems.items():
        bound[name].problem = problem
    for (name, role), node_id in found.items():
        setattr(bound[name], f"{role}_id", node_id)
    for method in bound.values():
        if method.problem is None and method.method_id is not None:
            method.argument_types = await _argument_types(client, method.method_id)
    return bound


def _object_of(method: OpcuaMethod) -> str:
    if method.object is not None:
        return method.object
    elements = split_path(method.method)[:-1]
    parent = "/".join(f"{space}:{name}" if space else name for space, name in elements)
    return parent or f"i={ObjectIds.ObjectsFolder}"


async def _argument_types(client: Client, method_id: ua.NodeId) -> list[ua.VariantType]:
    node = client.get_node(method_id)
    try:
        arguments_node = await node.get_child("0:InputArguments")
    except UaStatusCodeError:
        return []  # no InputArguments property: the method takes none
    arguments = await arguments_node.read_value()
    return [await data_type_to_variant_type(client.get_node(a.DataType)) for a in arguments or []]
