"""Running asyncio services in a process: one root task, orderly stop on SIGTERM/SIGINT, and
systemd told the truth (READY once every service can serve, WATCHDOG from the event loop)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from plantd.clock import SYSTEM_CLOCK, Clock
from plantd.systemd import Notifier, Watchdog

__all__ = ["Stoppable", "run_until_signal", "set_within"]

log = logging.getLogger(__name__)


class Stoppable(Protocol):
    async def run(self) -> None: ...

    def stop(self) -> None: ...


async def run_until_signal(
    services: Sequence[Stoppable],
    *,
    environ: Mapping[str, str] | None = None,
    description: str = "",
    announce: Callable[[], None] | None = None,
    reload: Callable[[], None] | None = None,
) -> None:
    """Run every service as a child task until SIGTERM/SIGINT, then stop them in order.

    ``reload`` is called on SIGHUP (``systemctl reload``), on the event loop: it re-reads what
    the process can take without a restart and must not block (start a task for slow work).
    Without it SIGHUP is ignored, rather than ending the process (the signal's default).

    ``announce`` is called once the signal handlers are in place: whatever tells another
    program that this one is up (lines it reads, then SIGTERM) goes there, or a signal sent
    at once could find the default action and end the process with nothing cleaned up.

    ``stop()`` asks each service to finish what it has in hand (a worker sends DISCONNECT);
    an exception in any child cancels the others and propagates, as TaskGroup does.

    Under systemd (``NOTIFY_SOCKET`` in ``environ``): READY=1 with ``description`` as STATUS
    once every service with a ``connected`` event (its MDP worker registered) has it set,
    WATCHDOG=1 from the event loop when the unit has ``WatchdogSec=``, STOPPING=1 at the end.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    notifier = Notifier.from_environ(environ or {})
    watchdog = Watchdog(notifier, environ or {})
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reloader(reload))
    try:
        if announce is not None:
            announce()
        async with asyncio.TaskGroup() as group:
            for service in services:
                group.create_task(service.run())
            helpers = [
                group.create_task(_announce_ready(services, notifier, description)),
                group.create_task(watchdog_task(watchdog)),
            ]
            await stop.wait()
            log.info("stopping")
            notifier.stopping()
            for service in services:
                service.stop()
            for helper in helpers:
                helper.cancel()  # a cancelled child does not fail the group
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        notifier.close()


def _reloader(reload: Callable[[], None] | None) -> Callable[[], None]:
    """The SIGHUP handler: ``reload``, logged; a failure is logged, never the process's end."""

    def on_sighup() -> None:
        if reload is None:
            log.info("SIGHUP: nothing here to reload (restart to apply changes)")
            return
        log.info("SIGHUP: reloading the configuration")
        try:
            reload()
        except Exception:  # a reload that fails leaves the running configuration as it was
            log.exception("reload failed; running on with the configuration as it was")

    return on_sighup


async def _announce_ready(
    services: Sequence[Stoppable], notifier: Notifier, description: str
) -> None:
    events = [
        ev for s in services if isinstance(ev := getattr(s, "connected", None), asyncio.Event)
    ]
    for event in events:
        await event.wait()
    notifier.ready(status=description or "serving")
    log.info("ready%s", f": {description}" if description else "")


async def watchdog_task(watchdog: Watchdog) -> None:
    """Ping from the event loop itself, so that a blocked loop goes silent."""
    if not watchdog.enabled:
        return
    while True:
        watchdog.ping()
        await asyncio.sleep(watchdog.interval)


async def set_within(
    event: asyncio.Event, seconds: float | None, clock: Clock = SYSTEM_CLOCK
) -> bool:
    """Wait for ``event`` at most ``seconds`` on ``clock``; True if it is set (a stop flag:
    "sleep unless stopped first"). A test passes a :class:`plantd.testing.ManualClock` and
    advances it instead of waiting."""
    return await clock.wait(event, seconds)
