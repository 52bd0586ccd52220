"""Priming: the last value of every point the plan reads, asked of its module at start.

Modules publish by exception (a deadband, a quiet point) and a process that has just started
has seen none of it: without priming, a calculation, an alarm or a loop would wait for each
point's next change — and a loop could not start bumplessly from its output's value. So once
its bus subscription is up, ``plantd-control`` calls ``org.plantd.module.NAME read`` for the
points it needs of each module, and feeds the answers to the engines as samples (with their
own timestamps and qualities), except for points whose first bus sample came first: the bus
is always newer.

A module that is not up yet (plantd-control may start before the module host) is asked again
every ``RETRY`` seconds for ``GIVE_UP`` seconds; after that its points simply wait for the bus.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from plantd.bus import Quality, Sample
from plantd.client import AsyncClient
from plantd.errors import NoBroker, NoWorker, PlantdError, RequestTimeout
from plantd.service import call_async

__all__ = ["GIVE_UP", "RETRY", "prime", "sample_of"]

log = logging.getLogger(__name__)

RETRY = 2.0
GIVE_UP = 60.0
_QUALITIES = {quality.label: quality for quality in Quality}


def sample_of(reading: Any) -> Sample | None:
    """A module's ``read`` answer for one point (``{"value", "quality", "timestamp"}``) as a
    sample; None for anything else. Non-finite numbers come back as text ("nan")."""
    if not isinstance(reading, dict) or "value" not in reading:
        return None
    quality = _QUALITIES.get(str(reading.get("quality")))
    timestamp = reading.get("timestamp")
    if quality is None or not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
        return None
    value = reading["value"]
    if value in ("nan", "inf", "-inf"):
        value = float(value)
    return Sample(value, float(timestamp), quality)


async def prime(
    client: AsyncClient,
    points: Iterable[str],
    take: Callable[[str, Sample], None],
    seen: Callable[[str], bool],
    *,
    timeout: float,
    clock: Callable[[], float],
) -> int:
    """Ask each module for its points' last values and ``take`` those not ``seen`` on the bus
    yet; returns how many were taken."""
    by_module: dict[str, list[str]] = {}
    for point in sorted(set(points)):
        module, _, name = point.partition(".")
        by_module.setdefault(module, []).append(name)
    answers = await asyncio.gather(
        *(_read(client, module, names, timeout, clock) for module, names in by_module.items())
    )
    taken = 0
    for module, answer in zip(by_module, answers, strict=True):
        for name, reading in answer.items():
            point = f"{module}.{name}"
            sample = sample_of(reading)
            if sample is not None and not seen(point):
                take(point, sample)
                taken += 1
    return taken


async def _read(
    client: AsyncClient, module: str, names: list[str], timeout: float, clock: Callable[[], float]
) -> dict[str, Any]:
    service = f"org.plantd.module.{module}"
    give_up = clock() + GIVE_UP
    while True:
        try:
            answer = await call_async(
                client, service, "read", {"points": list(names)}, timeout=timeout, retries=0
            )
            return answer if isinstance(answer, dict) else {}
        except (NoWorker, NoBroker, RequestTimeout) as exc:  # not up yet: ask again
            if clock() >= give_up:
                log.info("control: no start values from %s (%s); waiting for the bus", module, exc)
                return {}
        except PlantdError as exc:  # it answered no: asking again would not change that
            log.warning("control: no start values from %s: %s", module, exc)
            return {}
        await asyncio.sleep(RETRY)
