"""One group's subscription: monitored items in, batches of Readings out.

asyncua's publish loop calls :meth:`GroupSubscription.on_publish` with each PublishResult (the
low-level callback, not asyncua's per-item handler, which would start a task per value). One
PublishResult becomes one ``{point: Reading}`` batch on a queue that :meth:`batches` yields
from. A StatusChangeNotification (the subscription timed out on the server, or asyncua saw the
connection die and told every subscription ``BadShutdown``) puts an error on the queue, which
:meth:`batches` raises as :class:`DeviceUnavailable` so that the runtime rebuilds the session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from asyncua import ua

from plantd.errors import DeviceUnavailable
from plantd.module import Reading
from plantd.streams import Feed
from plantd_drivers.opcua._config import OpcuaGroup
from plantd_drivers.opcua._errors import code_name
from plantd_drivers.opcua._quality import reading_of
from plantd_drivers.opcua._ua import AttributeIds

__all__ = ["GroupSubscription", "data_value_reading", "monitored_item_request"]

_DEADBAND_TYPE = {"absolute": 1, "percent": 2}


def monitored_item_request(
    node_id: ua.NodeId, handle: int, group: OpcuaGroup
) -> ua.MonitoredItemCreateRequest:
    sampling = group.sampling_interval if group.sampling_interval is not None else group.interval
    parameters = ua.MonitoringParameters()
    parameters.ClientHandle = handle
    parameters.SamplingInterval = sampling * 1000.0
    parameters.QueueSize = group.queue_size
    parameters.DiscardOldest = True
    if group.server_deadband > 0:
        parameters.Filter = ua.DataChangeFilter(
            Trigger=ua.DataChangeTrigger.StatusValue,
            DeadbandType=_DEADBAND_TYPE[group.server_deadband_type],
            DeadbandValue=group.server_deadband,
        )
    request = ua.MonitoredItemCreateRequest()
    request.ItemToMonitor = ua.ReadValueId(NodeId=node_id, AttributeId=AttributeIds.Value)
    request.MonitoringMode = ua.MonitoringMode.Reporting
    request.RequestedParameters = parameters
    return request


class GroupSubscription:
    def __init__(self, group: OpcuaGroup, handles: dict[int, str]) -> None:
        self.group = group
        self.handles = handles  # client handle → point name
        self.subscription_id: int | None = None
        self.notifications = 0
        # Unbounded: one consumer (the group's stream) that takes a PublishResult as it comes;
        # the server's own queue_size bounds what it sends per monitored item.
        self._feed: Feed[dict[str, Reading]] = Feed()

    def on_publish(self, result: ua.PublishResult) -> None:
        batch: dict[str, Reading] = {}
        handles = self.handles
        for notification in result.NotificationMessage.NotificationData:
            if isinstance(notification, ua.DataChangeNotification):
                for item in notification.MonitoredItems:
                    name = handles.get(item.ClientHandle)
                    if name is not None:
                        batch[name] = data_value_reading(item.Value)
            elif isinstance(notification, ua.StatusChangeNotification):
                code = int(notification.Status.value)
                self.fail(f"subscription of group {self.group.name}: {code_name(code)}")
        if batch:
            self.notifications += len(batch)
            self._feed.put(batch)

    def fail(self, reason: str) -> None:
        """End :meth:`batches` with DeviceUnavailable(``reason``) after what is queued; the
        first failure is the one raised."""
        self._feed.end(DeviceUnavailable(reason))

    def put(self, batch: dict[str, Reading]) -> None:
        """Queue a batch the driver made itself (points that could not be monitored)."""
        self._feed.put(batch)

    async def batches(self) -> AsyncIterator[dict[str, Reading]]:
        """The batches in order, until the subscription fails (raised: DeviceUnavailable)."""
        async for batch in self._feed:
            yield batch


def data_value_reading(value: ua.DataValue | None) -> Reading:
    if value is None:
        return Reading.bad("the server sent no value")
    status = value.StatusCode
    code = int(status.value) if status is not None else 0
    variant: Any = value.Value
    python_value = variant.Value if variant is not None else None
    return reading_of(python_value, code, value.SourceTimestamp, value.ServerTimestamp, code_name)
