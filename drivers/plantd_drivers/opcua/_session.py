"""One session with one OPC UA server: connect, resolve, read, write, subscribe, call, close.

Theory of operation. A :class:`Session` is made by :meth:`Session.open` and lives until
:meth:`close` or until the server is lost; it is never reconnected. The module runtime does
that: a lost session raises DeviceUnavailable, the driver closes it and, after backoff, opens a
new one — new asyncua ``Client``, new secure channel, new session, namespaces and browse paths
resolved again, subscriptions created again. One supervision story, the runtime's, with its
backoff that never gives up (asyncua's own auto-reconnect is off).

Detecting a dead server: asyncua's supervisor task checks the server's state every
``connection.keepalive`` seconds and notices a closed socket at once; either calls
:meth:`_on_lost`, which marks the session lost and fails every subscription's stream.

No leaked sessions: :meth:`close` deletes the subscriptions and closes the session on the
server (CloseSession, within ``timeout``) before dropping the socket; an ``open`` that fails
half-way closes what it made. A server that vanished without a goodbye forgets the session
after ``session_timeout`` (its own guard); a restarted server never had it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asyncua import ua
from asyncua.common.ua_utils import data_type_to_variant_type
from asyncua.crypto import security_policies

from plantd.bus import SampleValue
from plantd.errors import DeviceFault, DeviceUnavailable
from plantd.module import Reading
from plantd_drivers.opcua._config import OpcuaGroup, OpcuaModule, OpcuaPoint
from plantd_drivers.opcua._errors import (
    ChannelWitness,
    code_name,
    refuses_certificate,
    status_error,
    to_device_error,
)
from plantd_drivers.opcua._methods import BoundMethod, bind_methods
from plantd_drivers.opcua._nodes import NamespaceTable
from plantd_drivers.opcua._resolve import resolve_paths
from plantd_drivers.opcua._security import (
    ClientIdentity,
    ClientNotTrusted,
    check_trusted,
    client_identity,
)
from plantd_drivers.opcua._subscription import (
    GroupSubscription,
    data_value_reading,
    monitored_item_request,
)
from plantd_drivers.opcua._ua import AttributeIds, Client, UaStatusCodeError
from plantd_drivers.opcua._values import coerce

__all__ = ["Session"]

log = logging.getLogger(__name__)

_MODES = {
    "Sign": ua.MessageSecurityMode.Sign,
    "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt,
}


class Session:
    def __init__(self, module: OpcuaModule, client: Client) -> None:
        self.module = module
        self.connection = module.connection
        self.client = client
        self.node_ids: dict[str, ua.NodeId] = {}
        self.problems: dict[str, str] = {}  # point → why it could not be resolved
        self.methods: dict[str, BoundMethod] = {}
        self.subscriptions: dict[int, GroupSubscription] = {}
        self.lost_reason: str | None = None
        self.identity: ClientIdentity | None = None  # ours, on a secure connection
        self._variant_types: dict[str, ua.VariantType] = {}
        self._handles = 0

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    async def open(cls, module: OpcuaModule) -> Session:
        connection = module.connection
        client = Client(
            connection.endpoint, timeout=connection.timeout, watchdog_intervall=connection.keepalive
        )
        client.name = client.description = f"plantd module {module.name}"
        client.session_timeout = round(connection.session_timeout * 1000)
        session = cls(module, client)
        witness = ChannelWitness()
        try:
            async with asyncio.timeout(connection.timeout * 4):
                await session._secure()
                if connection.username is not None:
                    client.set_user(connection.username)
                    client.set_password(connection.password or "")
                client.connection_lost_callback = session._on_lost
                with witness.watching():
                    await client.connect()
        except BaseException as exc:
            await session.close()
            raise session._connect_error(exc, witness.code) from exc
        try:
            async with asyncio.timeout(connection.timeout * 4):
                await session._resolve()
        except BaseException as exc:
            await session.close()
            raise to_device_error(exc, "resolving the module's nodes") from exc
        return session

    def _connect_error(self, exc: BaseException, logged_code: int | None) -> Exception:
        """What went wrong in :meth:`open`, saying so when the server refused our certificate."""
        endpoint = self.connection.endpoint
        what = f"connecting to {endpoint}"
        if self.identity is None:  # no secure channel, no certificate of ours
            return to_device_error(exc, what)
        code = int(exc.code) if isinstance(exc, UaStatusCodeError) else None
        if isinstance(exc, AssertionError):  # asyncua lost the code (see ChannelWitness)
            if logged_code is None:
                return DeviceUnavailable(
                    f"{what}: the server refused to open a secure channel and gave no reason; "
                    f"if it does not trust our certificate, trust {self.identity.certificate} "
                    "on the server"
                )
            code = logged_code
        if code is not None and refuses_certificate(code):
            return ClientNotTrusted(endpoint, code_name(code), self.identity.certificate)
        if code is not None:
            return status_error(code, what)
        return to_device_error(exc, what)

    async def _secure(self) -> None:
        security = self.connection.security
        if security.policy == "None":
            return
        identity = self.identity = await client_identity(self.module)
        self.client.application_uri = identity.application_uri
        policy = security_policies.SecurityPolicyBasic256Sha256
        mode = _MODES[security.mode]
        endpoints = await self.client.connect_and_get_server_endpoints()
        matching = [
            e for e in endpoints if e.SecurityMode == mode and e.SecurityPolicyUri == policy.URI
        ]
        if not matching:
            offered = sorted(
                {f"{e.SecurityPolicyUri.rsplit('#')[-1]}/{e.SecurityMode.name}" for e in endpoints}
            )
            raise DeviceUnavailable(
                f"{self.connection.endpoint} offers no Basic256Sha256/{security.mode} endpoint "
                f"(it offers {', '.join(offered)})"
            )
        server_der = bytes(matching[0].ServerCertificate or b"")
        check_trusted(server_der, security.trust, self.connection.endpoint)
        await self.client.set_security(
            policy,
            str(identity.certificate),
            str(identity.private_key),
            server_certificate=server_der,
            mode=mode,
        )

    async def _resolve(self) -> None:
        """NodeIds of every point and method, from this server's namespaces, paths and types."""
        namespaces = NamespaceTable(
            await self.client.get_namespace_array(), self.connection.namespaces
        )
        by_path: dict[str, str] = {}
        for _, point in self.module.points():
            assert isinstance(point, OpcuaPoint)
            try:
                if point.node is not None:
                    self.node_ids[point.name] = ua.NodeId.from_string(
                        namespaces.node_id(point.node)
                    )
                else:
                    assert point.path is not None
                    by_path[point.name] = point.path
            except ValueError as exc:
                self.problems[point.name] = f"{point.reference}: {exc}"
        found, problems = await resolve_paths(self.client, namespaces, by_path)
        self.node_ids.update(found)
        self.problems.update(problems)
        await self._writable_types()
        self.methods = await bind_methods(self.client, namespaces, self.module.methods)

    async def _writable_types(self) -> None:
        names = [p.name for _, p in self.module.points() if p.writable and p.name in self.node_ids]
        if not names:
            return
        data_types = await self.client.uaclient.read_attributes(
            [self.node_ids[n] for n in names], AttributeIds.DataType
        )
        for name, value in zip(names, data_types, strict=True):
            node_id = value.Value.Value if value.Value is not None else None
            if not isinstance(node_id, ua.NodeId):
                self.problems[name] = "the server does not say the node's data type"
                continue
            self._variant_types[name] = await data_type_to_variant_type(
                self.client.get_node(node_id)
            )

    # -- supervision -----------------------------------------------------------------------------

    async def _on_lost(self, exc: Exception) -> None:
        reason = f"connection to {self.connection.endpoint} lost: {exc or type(exc).__name__}"
        self.lost(reason)

    def lost(self, reason: str) -> None:
        if self.lost_reason is None:
            self.lost_reason = reason
            for subscription in self.subscriptions.values():
                subscription.fail(reason)

    def check(self) -> None:
        if self.lost_reason is not None:
            raise DeviceUnavailable(self.lost_reason)

    async def close(self) -> None:
        """Close the session on the server (never leak one), then the socket."""
        self.lost("the session was closed")
        try:
            async with asyncio.timeout(self.connection.timeout):
                await self.client.disconnect()
        except Exception:  # the server is gone: nothing left to close there
            log.debug("closing the session failed", exc_info=True)
            self.client.disconnect_socket()

    # -- reading and writing ---------------------------------------------------------------------

    async def read(self, group: OpcuaGroup) -> dict[str, Reading]:
        self.check()
        readings = {name: Reading.bad(self.problems[name]) for name in self._unresolved(group)}
        names = [p.name for p in group.points if p.name in self.node_ids]
        chunk = self.connection.max_items_per_request
        for start in range(0, len(names), chunk):
            part = names[start : start + chunk]
            parameters = ua.ReadParameters()
            parameters.TimestampsToReturn = ua.TimestampsToReturn.Both
            parameters.NodesToRead = [
                ua.ReadValueId(NodeId=self.node_ids[n], AttributeId=AttributeIds.Value)
                for n in part
            ]
            try:
                values = await self.client.uaclient.read(parameters)
            except Exception as exc:
                raise to_device_error(exc, f"reading group {group.name}") from exc
            for name, value in zip(part, values, strict=True):
                readings[name] = data_value_reading(value)
        return readings

    async def write(self, point: OpcuaPoint, value: Any) -> SampleValue:
        self.check()
        if point.name in self.problems:
            raise DeviceFault(self.problems[point.name])
        variant_type = self._variant_types[point.name]
        typed = coerce(value, variant_type.name)
        data_value = ua.DataValue(ua.Variant(typed, variant_type))
        try:
            results = await self.client.uaclient.write_attributes(
                [self.node_ids[point.name]], [data_value], AttributeIds.Value
            )
        except Exception as exc:
            raise to_device_error(exc, f"writing {point.name}") from exc
        code = int(results[0].value)
        if code & 0xC0000000:
            raise DeviceFault(f"the server refused the write to {point.name}: {code_name(code)}")
        return value  # type: ignore[no-any-return]

    def _unresolved(self, group: OpcuaGroup) -> list[str]:
        return [p.name for p in group.points if p.name in self.problems]

    # -- subscriptions ---------------------------------------------------------------------------

    async def subscribe(self, group: OpcuaGroup) -> GroupSubscription:
        self.check()
        handles: dict[int, str] = {}
        requests = []
        for point in group.points:
            if point.name in self.node_ids:
                self._handles += 1
                handles[self._handles] = point.name
                requests.append(
                    monitored_item_request(self.node_ids[point.name], self._handles, group)
                )
        subscription = GroupSubscription(group, handles)
        unresolved = {name: Reading.bad(self.problems[name]) for name in self._unresolved(group)}
        if unresolved:
            subscription.put(unresolved)
        try:
            await self._create(subscription, requests)
        except Exception as exc:
            await self.unsubscribe(subscription)
            raise to_device_error(exc, f"subscribing group {group.name}") from exc
        return subscription

    async def _create(self, subscription: GroupSubscription, requests: list[Any]) -> None:
        group = subscription.group
        parameters = ua.CreateSubscriptionParameters()
        parameters.RequestedPublishingInterval = group.interval * 1000.0
        # Keep-alives at least every `keepalive` seconds while nothing changes; the server
        # drops the subscription after 3 missed keep-alive periods without a Publish.
        keepalive = max(1, round(self.connection.keepalive / group.interval))
        parameters.RequestedMaxKeepAliveCount = keepalive
        parameters.RequestedLifetimeCount = max(3 * keepalive, 100)
        parameters.MaxNotificationsPerPublish = 0  # no limit: a whole change set per message
        parameters.PublishingEnabled = True
        result = await self.client.uaclient.create_subscription(parameters, subscription.on_publish)
        subscription.subscription_id = int(result.SubscriptionId)
        self.subscriptions[subscription.subscription_id] = subscription
        chunk = self.connection.max_items_per_request
        bad: dict[str, Reading] = {}
        for start in range(0, len(requests), chunk):
            items = ua.CreateMonitoredItemsParameters()
            items.SubscriptionId = subscription.subscription_id
            items.TimestampsToReturn = ua.TimestampsToReturn.Both
            items.ItemsToCreate = requests[start : start + chunk]
            results = await self.client.uaclient.create_monitored_items(items)
            for request, created in zip(items.ItemsToCreate, results, strict=True):
                code = int(created.StatusCode.value)
                if code & 0xC0000000:
                    handle = request.RequestedParameters.ClientHandle
                    name = subscription.handles.pop(handle)
                    bad[name] = Reading.bad(f"cannot monitor this node: {code_name(code)}")
        if bad:
            subscription.put(bad)

    async def unsubscribe(self, subscription: GroupSubscription) -> None:
        """Delete the subscription on the server, if the session still lives."""
        if subscription.subscription_id is None:
            return
        self.subscriptions.pop(subscription.subscription_id, None)
        if self.lost_reason is not None:
            return
        try:
            async with asyncio.timeout(self.connection.timeout):
                await self.client.uaclient.delete_subscriptions([subscription.subscription_id])
        except Exception:  # the session is going anyway; the server drops it with the session
            log.debug("deleting subscription %s failed", subscription.subscription_id)
