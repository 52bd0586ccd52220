"""The OPC UA driver: the module door (:mod:`plantd.module._driver`) over a :class:`Session`.

Groups in ``subscription`` mode (the default) are pushed: :meth:`OpcuaDriver.stream` creates a
subscription with one monitored item per point and yields what the server reports — first the
current value of every item, then changes. Groups in ``poll`` mode are read every interval with
one Read request (per ``max_items_per_request`` items). ``read`` works for both (a fresh read).
Methods in the module file become operations of the module's service (``operations()``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from plantd.bus import SampleValue
from plantd.errors import DeviceUnavailable
from plantd.module import DriverOperation, ModuleConfig, Reading
from plantd_drivers.opcua._config import OpcuaGroup, OpcuaModule, OpcuaPoint
from plantd_drivers.opcua._session import Session

__all__ = ["OpcuaDriver"]


class OpcuaDriver:
    """The ``opcua`` driver: variables of an OPC UA server as points, its methods as the
    module's operations.

    Config (:class:`OpcuaModule`): ``connection`` is the server (``endpoint``, ``security``,
    user name, ``keepalive``, ``timeout``…); each group is ``mode: subscription`` (pushed, the
    default) or ``poll``, and its points name a node by NodeId or browse path; ``methods`` lists
    the methods offered as operations (see :mod:`plantd_drivers.opcua._config`).

    - read: one Read request per ``max_items_per_request`` points, values with the server's
      status as quality and its source timestamp; a point whose node could not be resolved is
      bad with the reason.
    - write: writable points only, coerced to the node's data type; DeviceFault if the
      server refuses.
    - stream (``subscription`` groups): one subscription per call, the current value of every
      point first, then what the server reports; raises DeviceUnavailable when the session or
      the subscription is lost.
    """

    config_type: ClassVar[type[ModuleConfig]] = OpcuaModule

    def __init__(self, config: OpcuaModule) -> None:
        self.config = config
        self.session: Session | None = None
        self.connects = 0
        self.last_lost: str | None = None

    # -- the door --------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open a new session (secure channel, session, names resolved); any earlier one is
        closed first. DeviceUnavailable if the server cannot be reached."""
        await self.close()
        self.session = await Session.open(self.config)
        self.connects += 1

    async def close(self) -> None:
        """Close the session on the server, then the socket; streams end. Idempotent."""
        session, self.session = self.session, None
        if session is not None:
            self.last_lost = session.lost_reason
            await session.close()

    async def read(self, group: OpcuaGroup) -> dict[str, Reading]:
        """A fresh Read of every point of ``group`` (for subscription groups too)."""
        return await self._session().read(group)

    async def write(self, point: OpcuaPoint, value: Any) -> SampleValue:
        """Write ``value`` as the node's data type; ValueError if ``point`` is not writable
        or the value does not fit the type, DeviceFault if the server refuses."""
        if not point.writable:
            raise ValueError(f"point {point.name!r} is not writable (set writable: true)")
        return await self._session().write(point, value)

    def pushes(self, group: OpcuaGroup) -> bool:
        """``subscription`` groups are streamed; ``poll`` groups are read every interval."""
        return group.mode == "subscription"

    async def stream(self, group: OpcuaGroup) -> AsyncIterator[dict[str, Reading]]:
        """Subscribe ``group`` and yield each PublishResult's values as one mapping; the
        subscription is deleted on the server when the iteration ends."""
        session = self._session()
        subscription = await session.subscribe(group)
        try:
            async for batch in subscription.batches():
                yield batch
        finally:
            await session.unsubscribe(subscription)

    def status(self) -> dict[str, Any]:
        """The endpoint and security, how often a session was opened and, for the current
        one, why it was lost, the unresolved points, and each subscription's figures."""
        session = self.session
        status: dict[str, Any] = {
            "endpoint": self.config.connection.endpoint,
            "security": f"{self.config.connection.security.policy}/"
            f"{self.config.connection.security.mode}",
            "connects": self.connects,
            "session": None,
        }
        if session is not None:
            status["session"] = {
                "lost": session.lost_reason,
                "unresolved": dict(session.problems),
                "subscriptions": {
                    sub.group.name: {
                        "id": sid,
                        "items": len(sub.handles),
                        "values": sub.notifications,
                    }
                    for sid, sub in session.subscriptions.items()
                },
            }
        return status

    def operations(self) -> dict[str, DriverOperation]:
        """One operation per configured method: params ``{"args": [...]}``, answers
        ``{"outputs": [...]}``."""
        return {
            method.name: DriverOperation(
                method.description
                or f"Call the OPC UA method {method.method}: "
                'params {"args": [...]}, answers {"outputs": [...]}.',
                self._caller(method.name),
            )
            for method in self.config.methods
        }

    # -- helpers ---------------------------------------------------------------------------------

    def _caller(self, name: str) -> Any:
        async def call(params: dict[str, Any]) -> Any:
            args = params.get("args", [])
            if not isinstance(args, list):
                raise ValueError("params.args must be a list of the method's input arguments")
            session = self._session()
            outputs = await session.methods[name].call(session.client, args)
            return {"outputs": outputs}

        return call

    def _session(self) -> Session:
        session = self.session
        if session is None:
            raise DeviceUnavailable("not connected to the OPC UA server")
        session.check()
        return session
