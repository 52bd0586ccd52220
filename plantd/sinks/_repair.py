"""Filling the holes in what a sink took from the bus: samples from the historian, alarm
records from the alarm history (the forwarder's **repair** task; rules I4 and E4 of
``plantd.sinks._intake``).

Every ``0.5`` s, each open gap gets one attempt. A samples gap asks ``org.plantd.Historian``
``samples`` for the point between the two samples taken; an ``event.alarm.*`` gap asks
``org.plantd.Alarms`` ``history`` for the alarm between the two records' times and keeps
the records whose ``seq`` lies in the hole. A gap is closed when every missing sample or
record is found, or after ``repair.timeout`` with the rest counted as lost (``lost``,
``events_missed``). While a service does not answer, the other gaps of its kind wait for
the next round (only those past their timeout are given up). A gap of another event topic
has no history to be filled from: it is counted as missed at once.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from typing import Any

from plantd.bus import Sample, decode_sample
from plantd.client import AsyncClient
from plantd.errors import RequestError
from plantd.runtime import set_within
from plantd.service import call_async
from plantd.sinks._config import RepairConfig
from plantd.sinks._intake import IntakeState
from plantd.sinks._queue import EventGap, Gap

__all__ = ["ALARMS", "HISTORIAN", "Repairer"]

log = logging.getLogger(__name__)

HISTORIAN = "org.plantd.Historian"
ALARMS = "org.plantd.Alarms"
_ALARM_TOPIC = "event.alarm."
_REPAIR_RETRY = 0.5


class Repairer:
    def __init__(
        self,
        name: str,
        intake: IntakeState,
        settings: RepairConfig,
        client: Callable[[], AsyncClient | None],
        stopping: asyncio.Event,
    ) -> None:
        self.name = name
        self.intake = intake
        self.settings = settings
        self._client = client
        self._stopping = stopping

    async def run(self) -> None:
        """Every 0.5 s, one attempt at every open gap, until the sink stops."""
        while not await set_within(self._stopping, _REPAIR_RETRY):
            settings = self.settings  # each round: a reload may change it
            reachable = settings.enabled
            for gap in list(self.intake.gaps.values()):
                if self._stopping.is_set():
                    return
                if reachable:
                    reachable = await self._repair(gap, settings.timeout)
                elif not settings.enabled or time.time() - gap.found >= settings.timeout:
                    # No historian this round: only give up on what is past its timeout.
                    self.intake.close_gap(gap, [], len(gap.known_missing()))
            reachable = settings.enabled
            for event_gap in list(self.intake.event_gaps.values()):
                if self._stopping.is_set():
                    return
                alarm = event_gap.topic.startswith(_ALARM_TOPIC)
                if reachable and alarm:
                    reachable = await self._repair_events(event_gap, settings.timeout)
                elif (
                    not settings.enabled
                    or not alarm  # nowhere to look it up
                    or time.time() - event_gap.found >= settings.timeout
                ):
                    self._give_up(event_gap, None, "no history to fill it from")

    async def _repair_events(self, gap: EventGap, timeout: float) -> bool:
        """One attempt at an alarm's ``gap`` from the alarm history; False if it did not
        answer."""
        records: list[dict[str, Any]] = []
        try:
            client = self._client()
            assert client is not None
            reply = await call_async(
                client,
                ALARMS,
                "history",
                {
                    "alarm": gap.topic[len(_ALARM_TOPIC) :],
                    "since": gap.since,
                    "until": gap.until + 1.0,  # ``until`` is exclusive; seqs say what is wanted
                    "limit": 10_000,
                },
                timeout=5.0,
                retries=0,
            )
            if isinstance(reply, list):
                records = [r for r in reply if isinstance(r, dict)]
        except RequestError as exc:
            reason, reachable = str(exc), False
        else:
            reason, reachable = "not in the alarm history", True
        wanted: dict[int, dict[str, Any]] = {}
        for fields in records:
            seq = fields.get("seq")
            if type(seq) is int and gap.last < seq < gap.seq:
                wanted[seq] = fields
        missing = gap.known_missing() - set(wanted)
        if missing and time.time() - gap.found < timeout:
            return reachable  # try again later
        self._give_up(gap, [wanted[seq] for seq in sorted(wanted)], reason)
        return reachable

    def _give_up(self, gap: EventGap, found: list[dict[str, Any]] | None, reason: str) -> None:
        """Close ``gap`` with the records ``found`` (None: none looked for); what is still
        missing counts in ``events_missed``."""
        seqs = {fields["seq"] for fields in found or ()}
        lost = len(gap.known_missing() - seqs)
        if lost:
            log.warning("sink %s: %d event(s) of %s lost (%s)", self.name, lost, gap.topic, reason)
        self.intake.close_event_gap(gap, found or [], lost)

    async def _repair(self, gap: Gap, timeout: float) -> bool:
        """One attempt at ``gap``; False if the historian did not answer."""
        _, point = gap.topic.split(".", 1)
        found: list[Sample] = []
        try:
            client = self._client()
            assert client is not None
            reply = await call_async(
                client,
                HISTORIAN,
                "samples",
                {"point": point, "since": gap.since, "until": gap.until},
                timeout=5.0,
                retries=0,
            )
            found = [decode_sample(base64.b64decode(item)) for item in reply]
        except RequestError as exc:
            reason, reachable = str(exc), False
        else:
            reason, reachable = "not in the historian", True
        wanted = sorted(
            {(s.epoch, s.seq): s for s in found if gap.wants(s)}.values(),
            key=lambda s: (s.timestamp, s.seq),
        )
        missing = gap.known_missing() - {s.seq for s in wanted if s.epoch == gap.new_epoch}
        if missing and time.time() - gap.found < timeout:
            return reachable  # try again later: the historian may not have them yet
        if missing:
            log.warning(
                "sink %s: %d sample(s) of %s lost (%s)", self.name, len(missing), gap.topic, reason
            )
        self.intake.close_gap(gap, wanted, len(missing))
        return reachable
