"""What the broker serves, as the proxy knows it: the services, their operations, their workers.

The REST routes and the OpenAPI document are derived from this, never written by hand: each
service lists its own operations (``operations``: name, doc, streaming, access). The proxy
asks as itself (its key may call ``operations`` on any service and ``mmi.*``; docs/security.md),
never for a person.

Theory of operation. :meth:`Catalogue.refresh` asks ``mmi.services``, ``mmi.workers`` and each
service's ``operations`` (all at once) and replaces what it knew in one assignment, so a
reader never sees half a refresh. It runs every :data:`REFRESH_INTERVAL` seconds in a task
started by a ``ctx.startup`` hook, and on demand: a request naming a service not known yet
asks the broker ``mmi.service`` (cheap, the broker answers it itself) and, if a worker serves
it, that service's ``operations``; a request naming an operation a known service did not list
fetches its ``operations`` again, at most every :data:`RELIST_INTERVAL` seconds per service (a
service restarted with a new version; a fuzzer naming random operations costs nothing more).
A service whose ``operations`` fails (an old or foreign MDP worker) is listed with
``operations = None`` and a ``note`` saying why; that never fails a refresh. The parsing of
the broker's and the services' answers is pure (``parse_*``) and tested on its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, cast

from plantd.client import AsyncClient
from plantd.clock import Clock
from plantd.config import ACCESS_LEVELS, Access
from plantd.errors import PlantdError, RemoteProtocolError, ServiceError
from plantd.mdp import is_valid_service_name
from plantd.service._codec import Json, decode_reply, encode_call

__all__ = [
    "REFRESH_INTERVAL",
    "RELIST_INTERVAL",
    "Catalogue",
    "CatalogueError",
    "OperationInfo",
    "ServiceInfo",
    "Workers",
    "parse_operations",
    "parse_services",
    "parse_workers",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

REFRESH_INTERVAL = 30.0  # seconds between two whole refreshes
RELIST_INTERVAL = 5.0  # at least this long between two on-demand ``operations`` of one service
LOOKUP_TIMEOUT = 5.0  # seconds the proxy waits for one catalogue question
_CONCURRENT_LISTINGS = 16  # ``operations`` requests in flight at once during a refresh


@dataclass(frozen=True, slots=True)
class OperationInfo:
    """One operation as its service lists it. ``access`` is what the service declares; the
    broker's policy (``security.operations``) decides, and the routes ask the policy."""

    name: str
    doc: str
    streaming: bool
    access: Access

    @property
    def summary(self) -> str:
        """The first line of the doc (OpenAPI's summary)."""
        return self.doc.strip().split("\n", 1)[0].strip()

    def to_json(self) -> dict[str, Json]:
        return {
            "name": self.name,
            "doc": self.doc,
            "streaming": self.streaming,
            "access": self.access,
        }


@dataclass(frozen=True, slots=True)
class Workers:
    idle: int = 0
    busy: int = 0
    queued: int = 0

    def to_json(self) -> dict[str, Json]:
        return {"idle": self.idle, "busy": self.busy, "queued": self.queued}


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """A service and what it offers; ``operations`` None: it did not say (``note``: why).
    ``listed_at``: the monotonic time its operations were asked for."""

    name: str
    operations: tuple[OperationInfo, ...] | None
    workers: Workers = field(default_factory=Workers)
    note: str | None = None
    listed_at: float = 0.0

    def operation(self, name: str) -> OperationInfo | None:
        for operation in self.operations or ():
            if operation.name == name:
                return operation
        return None

    def to_json(self) -> dict[str, Json]:
        entry: dict[str, Json] = {
            "name": self.name,
            "workers": self.workers.to_json(),
            "operations": [op.to_json() for op in self.operations or ()],
        }
        if self.note is not None:
            entry["note"] = self.note
        return entry


# -- parsing (pure) -------------------------------------------------------------------------


def _one_json_frame(frames: list[bytes], what: str) -> Any:
    if len(frames) != 1:
        raise ValueError(f"{what}: expected one JSON frame, got {len(frames)}")
    try:
        return json.loads(frames[0])
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{what}: not JSON ({exc})") from None


def parse_services(frames: list[bytes]) -> list[str]:
    """The names ``mmi.services`` answered (only the names a service may have)."""
    names = _one_json_frame(frames, "mmi.services")
    if not isinstance(names, list):
        raise ValueError(f"mmi.services: expected a list, got {type(names).__name__}")
    return sorted({n for n in names if isinstance(n, str) and is_service_name(n)})


def parse_workers(frames: list[bytes]) -> dict[str, Workers]:
    """``mmi.workers``' table; entries that are not ``{idle, busy, queued}`` counts are skipped."""
    table = _one_json_frame(frames, "mmi.workers")
    if not isinstance(table, dict):
        raise ValueError(f"mmi.workers: expected an object, got {type(table).__name__}")
    found: dict[str, Workers] = {}
    for name, counts in table.items():
        if not isinstance(counts, dict):
            continue
        values = [counts.get(key, 0) for key in ("idle", "busy", "queued")]
        if all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
            found[name] = Workers(*values)
    return found


def parse_operations(result: Json, service: str = "") -> tuple[OperationInfo, ...]:
    """What an ``operations`` call answered, as :class:`OperationInfo`s sorted by name.

    Raises ValueError naming what is wrong when the answer is not a list of operations; a
    single malformed entry is skipped (with a log line), the others kept."""
    if not isinstance(result, list):
        raise ValueError(f"'operations' answered a {type(result).__name__}, not a list")
    operations: dict[str, OperationInfo] = {}
    for entry in result:
        info = _operation(entry)
        if info is None:
            log.warning("%s lists a malformed operation: %.200r", service or "a service", entry)
        else:
            operations.setdefault(info.name, info)
    return tuple(operations[name] for name in sorted(operations))


def _operation(entry: object) -> OperationInfo | None:
    if not isinstance(entry, dict):
        return None
    name, doc, streaming = entry.get("name"), entry.get("doc", ""), entry.get("streaming", False)
    access = entry.get("access", "admin")  # an undeclared access is the policy's default
    if not (isinstance(name, str) and is_operation_name(name)):
        return None
    if not isinstance(doc, str) or not isinstance(streaming, bool):
        return None
    if access not in ACCESS_LEVELS:
        return None
    return OperationInfo(name, doc, streaming, cast(Access, access))


def is_service_name(name: str) -> bool:
    """A name the broker would accept for a service (printable ASCII, 1–255, no spaces)."""
    return name.isascii() and is_valid_service_name(name.encode("ascii"))


def is_operation_name(name: str) -> bool:
    try:
        encode_call(name)
    except ValueError:
        return False
    return True


# -- the catalogue --------------------------------------------------------------------------


class CatalogueError(PlantdError):
    """The broker did not answer a catalogue question (or answered nonsense)."""


class Catalogue:
    """The services the broker serves, refreshed in the background and on demand."""

    def __init__(self, client: AsyncClient, clock: Clock, *, timeout: float = LOOKUP_TIMEOUT):
        self._client = client
        self._clock = clock
        self._timeout = timeout
        self._services: dict[str, ServiceInfo] = {}
        self._refreshed: float | None = None  # monotonic time of the last whole refresh
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # -- reading ---------------------------------------------------------------------------

    @property
    def services(self) -> Mapping[str, ServiceInfo]:
        """What the last refresh (and on-demand lookups since) found, by name."""
        return self._services

    async def current(self) -> list[ServiceInfo]:
        """Every service, with its workers as the broker counts them now (operations as last
        listed; a service not seen before is listed now). Raises :class:`CatalogueError`."""
        if self._refreshed is None:
            await self.refresh()
            return sorted(self._services.values(), key=lambda s: s.name)
        names = parse_or_fail(parse_services, await self._ask("mmi.services", b""))
        workers = parse_or_fail(parse_workers, await self._ask("mmi.workers", b""))
        known = self._services
        fresh = [n for n in names if n not in known]
        listed = await self._list_all(fresh)
        services = {
            name: replace(known.get(name) or listed[name], workers=workers.get(name, Workers()))
            for name in names
        }
        self._services = services
        return [services[name] for name in names]

    async def lookup(self, name: str) -> ServiceInfo | None:
        """``name``'s entry; asked of the broker when not known yet (None: nobody serves it,
        or it is not a name a service may have, or an ``mmi.*`` name)."""
        if name.startswith("mmi.") or not is_service_name(name):
            return None
        known = self._services.get(name)
        if known is not None:
            return known
        if (await self._ask("mmi.service", name.encode())) != [b"200"]:
            return None
        info = (await self._list_all([name]))[name]
        self._services = {**self._services, name: info}
        return info

    async def relist(self, info: ServiceInfo) -> ServiceInfo:
        """``info`` with its operations asked for again, unless that was done lately."""
        if self._clock.monotonic() - info.listed_at < RELIST_INTERVAL:
            return info
        fresh = replace((await self._list_all([info.name]))[info.name], workers=info.workers)
        self._services = {**self._services, info.name: fresh}
        return fresh

    async def broker(self) -> Json:
        """What ``mmi.broker`` says (version, uptime, counters …)."""
        frames = await self._ask("mmi.broker", b"")
        result: Json = parse_or_fail(lambda f: _one_json_frame(f, "mmi.broker"), frames)
        return result

    # -- refreshing ------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Ask the broker for everything again (one refresh at a time)."""
        async with self._lock:
            names = parse_or_fail(parse_services, await self._ask("mmi.services", b""))
            workers = parse_or_fail(parse_workers, await self._ask("mmi.workers", b""))
            listed = await self._list_all(names)
            self._services = {
                name: replace(listed[name], workers=workers.get(name, Workers())) for name in names
            }
            self._refreshed = self._clock.monotonic()

    async def run(self, interval: float = REFRESH_INTERVAL) -> None:
        """Refresh every ``interval`` seconds until cancelled; a failed refresh is logged (once
        per change of reason) and the last catalogue kept."""
        last_problem: str | None = None
        while True:
            try:
                await self.refresh()
                if last_problem is not None:
                    log.info("the service catalogue is refreshed again")
                last_problem = None
            except CatalogueError as exc:
                if str(exc) != last_problem:
                    log.warning("cannot refresh the service catalogue: %s", exc)
                last_problem = str(exc)
            await self._clock.sleep(interval)

    async def start(self) -> None:
        """The ``ctx.startup`` hook: the refresh task."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="plantd-proxy-catalogue")

    async def stop(self) -> None:
        """The ``ctx.shutdown`` hook."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # -- asking ------------------------------------------------------------------------------

    async def _ask(self, service: str, *body: bytes) -> list[bytes]:
        try:
            return await self._client.request(service, *body, timeout=self._timeout, retries=0)
        except PlantdError as exc:  # RequestTimeout, a protocol error, a refused connection
            raise CatalogueError(f"the broker did not answer {service}: {exc}") from None

    async def _list_all(self, names: list[str]) -> dict[str, ServiceInfo]:
        limit = asyncio.Semaphore(_CONCURRENT_LISTINGS)

        async def one(name: str) -> ServiceInfo:
            async with limit:
                return await self._list(name)

        found = await asyncio.gather(*(one(name) for name in names))
        return {info.name: info for info in found}

    async def _list(self, name: str) -> ServiceInfo:
        """``name`` with its operations, or with none and a note saying why. A service that
        did not answer in time (every worker busy, say) keeps the operations it listed before:
        only an answer can change them."""
        now = self._clock.monotonic()
        try:
            reply = await self._client.request(
                name, *encode_call("operations"), timeout=self._timeout, retries=0
            )
            return ServiceInfo(
                name, parse_operations(decode_reply(reply, name), name), listed_at=now
            )
        except ServiceError as exc:
            note = f"it does not list its operations ({exc.code}: {exc.message})"
        except (ValueError, RemoteProtocolError) as exc:
            note = f"its operations could not be read: {exc}"
        except PlantdError as exc:  # no answer in time (RequestTimeout), or no way to ask
            note = f"its operations could not be listed: {exc}"
            before = self._services.get(name)
            if before is not None and before.operations is not None:
                log.info("%s: %s (keeping those listed before)", name, note)
                return replace(before, listed_at=now)
        log.info("%s: %s", name, note)
        return ServiceInfo(name, None, note=note, listed_at=now)


def parse_or_fail(parse: Callable[[list[bytes]], _T], frames: list[bytes]) -> _T:
    """``parse(frames)``, a ValueError becoming a :class:`CatalogueError`."""
    try:
        return parse(frames)
    except ValueError as exc:
        raise CatalogueError(str(exc)) from None
