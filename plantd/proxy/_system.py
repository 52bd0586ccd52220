"""The device's own system in the app: its A/B slots, and updates sent over HTTP.

Theory of operation. The proxy has no privilege and gets none for this: it cannot write a
slot, read the boot partition or reboot. It only drops a file into the update directory
(``<paths.data>/update``; on the appliance ``/var/lib/plantd/update``, which its sandbox may
write: ``StateDirectory=plantd``), and root does the rest (:mod:`plantd.system._incoming`:
``plantd-update.path`` sees the bundle, ``plantd-update.service`` installs it with RAUC, which
checks its signature, writes ``status.json`` and ``slots.json`` back and reboots).

- ``GET /api/v1/system`` (``read``): the last update's status and the slots' states, as those
  two files say (``{"state": "idle"}`` and null when they are not there), and whether a
  bundle waits to be installed.
- ``POST /api/v1/system/update`` (``admin``): the request body is the bundle itself
  (``Content-Type: application/octet-stream``; the one route whose body is not JSON of at most
  1 MiB). It is streamed to ``incoming.raucb.part`` in chunks, never held whole, with its
  SHA-256; fsynced; ``incoming.json`` says who sent it; the rename to ``incoming.raucb`` hands
  it over. 202 with the status URL. Refused: an empty body (400), one larger than
  :data:`MAX_BUNDLE_BYTES` (413), a bundle while another is uploaded, waits or is being
  installed since this boot (409 ``proxy.update-in-progress``; an install a power cut
  ended refuses nothing after it), and one the disk has no room for (507
  ``proxy.insufficient-storage``, also when the disk fills up while writing). A refused or
  broken upload leaves nothing behind but the status as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Final

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from plantd.proxy._auth import require
from plantd.proxy._context import ProxyContext, User
from plantd.proxy._openapi import problems as problem_responses
from plantd.proxy._problems import Problem
from plantd.system._incoming import (
    INCOMING,
    INCOMING_INFO,
    INSTALLING,
    PART,
    SLOTS_FILE,
    STATUS_FILE,
    read_json,
    read_status,
    timestamp,
)

__all__ = ["MAX_BUNDLE_BYTES", "OPENAPI_PATHS", "routes", "system_values", "update_dir"]

log = logging.getLogger("plantd.proxy.system")

MAX_BUNDLE_BYTES: Final = 1 << 30  # a plantd bundle (a compressed root file system) is ~300 MiB
SPARE_BYTES: Final = 64 << 20  # left free beside a bundle: the services keep writing
WRITE_BATCH: Final = 1 << 20  # bytes gathered before one write (on a worker thread)
BUSY_STATES: Final = frozenset({"installing", "rebooting"})
STATUS_URL: Final = "/api/v1/system"
OCTET_STREAM: Final = "application/octet-stream"
_NAME = re.compile(r"[^A-Za-z0-9._+-]+")


def update_dir(ctx: ProxyContext) -> Path:
    return ctx.config.paths.data / "update"


def system_values(request: Request, user: User) -> dict[str, Any]:
    """The System page's values: may this person send a bundle (admin)."""
    return {"may_update": user.may("admin"), "max_bytes": MAX_BUNDLE_BYTES}


def system_status(directory: Path) -> dict[str, Any]:
    """What ``GET /api/v1/system`` answers (files read as they are; none is an error)."""
    return {
        "update": read_status(directory),
        "slots": read_json(directory / SLOTS_FILE),
        "pending": (directory / INCOMING).exists() or (directory / INSTALLING).exists(),
        "max_bundle_bytes": MAX_BUNDLE_BYTES,
    }


def _this_boot(path: Path) -> bool:
    """Whether ``path`` was last written since this boot. An install a power cut ended, or a
    ``rebooting`` no boot check settled, must not refuse every bundle after it."""
    booted_at = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    try:
        return path.stat().st_mtime >= booted_at
    except OSError:
        return False


def _busy(directory: Path) -> str | None:
    """Why a new bundle cannot be taken now, or None."""
    if (directory / INCOMING).exists():
        return "a bundle waits to be installed"
    if _this_boot(directory / INSTALLING):
        return "a bundle is being installed"
    state = read_status(directory).get("state")
    if state in BUSY_STATES and _this_boot(directory / STATUS_FILE):
        return f"the last update is {state}"
    return None


def _in_progress(why: str) -> Problem:
    return Problem(
        409,
        f"{why}: wait for it to end ({STATUS_URL})",
        code="proxy.update-in-progress",
        title="Update in progress",
    )


def _no_room(need: int, free: int, directory: Path) -> Problem:
    return Problem(
        507,
        f"{directory} has {free >> 20} MiB free; the bundle needs {need >> 20} MiB "
        f"(and {SPARE_BYTES >> 20} MiB stay free for the services)",
        code="proxy.insufficient-storage",
        title="Insufficient Storage",
    )


def _too_large() -> Problem:
    return Problem(413, f"a bundle has at most {MAX_BUNDLE_BYTES >> 20} MiB")


def _bundle_name(raw: str | None) -> str:
    """The name the sender gives (``?name=``), shown only: plain characters, at most 128."""
    name = _NAME.sub("_", (raw or "").rsplit("/", 1)[-1])[:128].strip("._")
    return name or "bundle.raucb"


class _Upload:
    """One bundle being written to ``incoming.raucb.part`` (blocking calls: run in a thread)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / PART
        self.file = self.path.open("wb")  # truncates a .part an earlier crash left
        self.size = 0
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.digest.update(data)
        self.size += len(data)

    def finish(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def discard(self) -> None:
        self.file.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


def _hand_over(directory: Path, upload: _Upload, info: dict[str, Any]) -> None:
    """``incoming.json``, then the rename the path unit waits for, then the directory synced."""
    upload.finish()
    info_path = directory / INCOMING_INFO
    info_path.write_text(json.dumps(info) + "\n")
    os.replace(upload.path, directory / INCOMING)
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def routes(ctx: ProxyContext) -> list[BaseRoute]:
    directory = update_dir(ctx)
    uploading = asyncio.Lock()

    async def status(request: Request) -> JSONResponse:
        require(request, "read")
        return JSONResponse(await asyncio.to_thread(system_status, directory))

    async def update(request: Request) -> JSONResponse:
        user = require(request, "admin")
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != OCTET_STREAM:
            raise Problem(
                415,
                f"send the bundle itself as {OCTET_STREAM}, not {media_type[:100] or 'nothing'}",
            )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BUNDLE_BYTES:
            raise _too_large()
        if declared == "0":
            raise Problem(400, "the request body is empty: send the bundle (.raucb)")
        if uploading.locked():
            raise _in_progress("another bundle is being uploaded")
        async with uploading:
            await asyncio.to_thread(directory.mkdir, mode=0o750, exist_ok=True)
            why = await asyncio.to_thread(_busy, directory)
            if why is not None:
                raise _in_progress(why)
            free = (await asyncio.to_thread(shutil.disk_usage, directory)).free
            if declared.isdigit() and int(declared) + SPARE_BYTES > free:
                raise _no_room(int(declared) + SPARE_BYTES, free, directory)
            name = _bundle_name(request.query_params.get("name"))
            info = await _receive(request, directory, user, name)
        log.warning(
            "system update: %s sent %s (%d bytes, sha256 %s): handed to plantd-update",
            user.principal,
            name,
            info["bytes"],
            info["sha256"],
            extra={"principal": user.principal},
        )
        return JSONResponse(
            {**info, "status": STATUS_URL}, status_code=202, headers={"Location": STATUS_URL}
        )

    return [
        Route(STATUS_URL, status, methods=["GET"]),
        Route("/api/v1/system/update", update, methods=["POST"]),
    ]


async def _receive(request: Request, directory: Path, user: User, name: str) -> dict[str, Any]:
    """The body streamed to ``incoming.raucb.part`` and handed over; what ``incoming.json``
    says. Any refusal or failure removes the part file."""
    upload = await asyncio.to_thread(_Upload, directory)
    handed = False
    try:
        batch = bytearray()
        async for chunk in request.stream():
            if upload.size + len(batch) + len(chunk) > MAX_BUNDLE_BYTES:
                raise _too_large()
            batch += chunk
            if len(batch) >= WRITE_BATCH:
                await asyncio.to_thread(upload.write, bytes(batch))
                batch.clear()
        if batch:
            await asyncio.to_thread(upload.write, bytes(batch))
        if upload.size == 0:
            raise Problem(400, "the request body is empty: send the bundle (.raucb)")
        info = {
            "name": name,
            "bytes": upload.size,
            "sha256": upload.digest.hexdigest(),
            "by": user.principal,
            "uploaded": timestamp(time.time()),
        }
        await asyncio.to_thread(_hand_over, directory, upload, info)
        handed = True
        return info
    except ClientDisconnect:
        raise Problem(400, "the request body ended before it was complete") from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(directory).free
            raise _no_room(upload.size + SPARE_BYTES, free, directory) from None
        raise
    finally:
        if not handed:
            await asyncio.to_thread(upload.discard)


# --- OpenAPI (merged into /api/v1/openapi.json by _openapi) ------------------------------------

_TEXT = {"type": ["string", "null"]}
_STATUS_SCHEMA = {
    "type": "object",
    "required": ["update", "slots", "pending"],
    "properties": {
        "update": {
            "type": "object",
            "required": ["state"],
            "description": "The last update from the web app or the API (status.json)",
            "properties": {
                "state": {"enum": ["idle", "installing", "installed", "failed", "rebooting"]},
                "bundle": {"type": "string"},
                "bytes": {"type": "integer"},
                "sha256": {"type": "string"},
                "by": {"type": "string", "description": "who sent it"},
                "uploaded": _TEXT,
                "slot": _TEXT,
                "message": {**_TEXT, "description": "RAUC's words when it failed"},
                "started": _TEXT,
                "finished": _TEXT,
            },
        },
        "slots": {
            "type": ["object", "null"],
            "description": "`plant system status --json` (slots.json); null: not known here",
            "properties": {
                "booted": _TEXT,
                "primary": _TEXT,
                "slots": {"type": "object", "additionalProperties": {"type": "string"}},
                "updated": _TEXT,
            },
        },
        "pending": {"type": "boolean", "description": "a bundle waits or is being installed"},
        "max_bundle_bytes": {"type": "integer"},
    },
}
_ACCEPTED = {
    "type": "object",
    "required": ["name", "bytes", "sha256", "by", "status"],
    "properties": {
        "name": {"type": "string"},
        "bytes": {"type": "integer"},
        "sha256": {"type": "string"},
        "by": {"type": "string"},
        "uploaded": {"type": "string"},
        "status": {"type": "string", "description": "where to follow the install"},
    },
}
_PROBLEM_CONTENT = {
    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
}

OPENAPI_PATHS: dict[str, Any] = {
    STATUS_URL: {
        "get": {
            "operationId": "proxy.system",
            "tags": ["proxy"],
            "summary": "The A/B slots and the last update's status",
            "description": "What plantd-update.service and plantd-boot-check wrote "
            "(status.json, slots.json in <paths.data>/update).",
            "x-plantd-access": "read",
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {"application/json": {"schema": _STATUS_SCHEMA}},
                },
                **problem_responses(401, 403),
            },
        }
    },
    "/api/v1/system/update": {
        "post": {
            "operationId": "proxy.system-update",
            "tags": ["proxy"],
            "summary": "Install a signed update bundle (.raucb) and reboot into it",
            "description": "The body is the bundle itself. It is handed to "
            "plantd-update.service (root), which has RAUC check its signature and write the "
            "inactive slot, then reboots into it on trial. Follow it at /api/v1/system.",
            "x-plantd-access": "admin",
            "parameters": [
                {
                    "name": "name",
                    "in": "query",
                    "required": False,
                    "description": "the bundle's file name, shown in the status",
                    "schema": {"type": "string", "maxLength": 256},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}},
            },
            "responses": {
                "202": {
                    "description": "Accepted: handed over for installation",
                    "content": {"application/json": {"schema": _ACCEPTED}},
                },
                **problem_responses(400, 401, 403, 409, 413, 415),
                "507": {
                    "description": "No room on the disk for the bundle",
                    "content": _PROBLEM_CONTENT,
                },
            },
        }
    },
}
