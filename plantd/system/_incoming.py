"""Updates dropped by the web app: root installs the bundle the unprivileged proxy left.

The proxy runs as ``plantd`` in a sandbox and must not be able to write a slot. So it only
drops a file: ``POST /api/v1/system/update`` streams the bundle to ``incoming.raucb.part`` in
the update directory (``<paths.data>/update``, on the appliance ``/var/lib/plantd/update``,
``plantd:plantd 0750``), fsyncs it, writes ``incoming.json`` (who sent it, its name and size)
and renames the bundle to ``incoming.raucb``. The rename is what ``plantd-update.path``
(``PathExists=``) sees: the file appears complete or not at all. It starts
``plantd-update.service`` (root), which runs ``plant system update --from-proxy
.../incoming.raucb``, i.e. :func:`install_incoming`:

1. the bundle is moved aside (``installing.raucb``), so the path unit does not fire again,
   and made root's (refused unless it is one plain file: never a link);
2. ``status.json`` says ``installing``; RAUC installs it (its signature is checked against the
   device's key ring, as for ``plant system update``: a dropped file can do no more than a
   bundle signed by the release key can);
3. ``status.json`` says ``installed`` (with the slot that boots next) then ``rebooting``, and
   the device reboots; or ``failed`` with RAUC's own words, and nothing else changes;
4. the bundle is removed either way (it is as large as a root file system).

``slots.json`` beside it is what ``plant system status --json`` shows (the proxy cannot read
the boot partition: it is mounted ``umask=0077``). It is written after each install and at
every boot by ``plantd-boot-check`` (:func:`refresh_at_boot`), which also settles a
``rebooting`` status (``installed`` when the new slot booted and stayed, ``failed`` when the
device came back to the old one) and an ``installing`` one a power cut interrupted
(``failed``).

Both files are written by root atomically (a temporary file renamed), ``0640``, in the
directory's group, so the proxy (group ``plantd``) reads them and never sees half of one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Literal

from plantd.errors import PlantdError

__all__ = [
    "INCOMING",
    "INCOMING_INFO",
    "INSTALLING",
    "PART",
    "SLOTS_FILE",
    "STATUS_FILE",
    "UPDATE_DIR",
    "UpdateState",
    "install_incoming",
    "read_json",
    "read_status",
    "refresh_at_boot",
    "timestamp",
    "write_json",
]

log = logging.getLogger("plantd.system.update")

UPDATE_DIR: Final = Path("/var/lib/plantd/update")  # <paths.data>/update on the appliance
PART: Final = "incoming.raucb.part"  # the proxy writes this ...
INCOMING: Final = "incoming.raucb"  # ... and renames it to this, which the path unit sees
INCOMING_INFO: Final = "incoming.json"  # who sent it, its name, size and SHA-256 (the proxy)
INSTALLING: Final = "installing.raucb"  # moved aside while RAUC installs it
STATUS_FILE: Final = "status.json"
SLOTS_FILE: Final = "slots.json"

UpdateState = Literal["idle", "installing", "installed", "failed", "rebooting"]

MAX_INFO_BYTES = 4096  # incoming.json is the proxy's: small, and only shown, never obeyed
MAX_MESSAGE = 2000  # characters of RAUC's output kept in status.json
RAUC_TIMEOUT = 3600.0  # a 1 GiB bundle on an SD card takes minutes; a hang must end


def timestamp(seconds: float) -> str:
    """``seconds`` (Unix time) as ISO 8601 UTC, to the second: ``2026-12-07T12:30:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def read_json(path: Path, limit: int = 1 << 20) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when it is missing, a link (the directory is the
    proxy's: root must not read through a link it planted), too large or not an object."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as file:
            data = file.read(limit + 1)
    except OSError:
        return None
    if len(data) > limit:
        return None
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def read_status(directory: Path) -> dict[str, Any]:
    """``status.json`` of ``directory``; ``{"state": "idle"}`` when there has been no update."""
    status = read_json(directory / STATUS_FILE)
    if status is None or not isinstance(status.get("state"), str):
        return {"state": "idle"}
    return status


def write_json(path: Path, value: dict[str, Any]) -> None:
    """``value`` to ``path`` atomically, mode 0640 in the group of its directory (root writes;
    the proxy, in that group, reads). mkstemp makes a new file: a link planted by the
    directory's owner is replaced by the rename, never followed."""
    directory = path.parent
    group = directory.stat().st_gid
    fd, scratch = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o640)
            if os.geteuid() == 0:
                os.fchown(file.fileno(), 0, group)
            json.dump(value, file, indent=1)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(scratch, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(scratch)
        raise


def _incoming_info(directory: Path) -> dict[str, Any]:
    """What the proxy said about the bundle (shown only: it is the unprivileged side's word)."""
    info = read_json(directory / INCOMING_INFO, MAX_INFO_BYTES) or {}
    kept: dict[str, Any] = {}
    for key in ("name", "by", "sha256", "uploaded"):
        if isinstance(info.get(key), str):
            kept[key] = info[key][:256]
    if isinstance(info.get("bytes"), int):
        kept["bytes"] = info["bytes"]
    return kept


def _rauc_message(output: str) -> str:
    """The end of what RAUC said (its last lines name why it refused), at most MAX_MESSAGE."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    message = "\n".join(lines[-8:])
    return message[-MAX_MESSAGE:] if message else "rauc said nothing"


SlotsNow = Callable[[], dict[str, Any] | None]


class UnsafeBundle(PlantdError):
    """The dropped file is not one plain file of its own (a link, a device, a directory)."""


def _take_over(path: Path) -> None:
    """Make the dropped bundle root's, 0640, before RAUC reads it: the proxy that wrote it
    can no longer change it (RAUC checks a bundle's owner and mode too). Opened without
    following a link and refused unless it is one regular file with one name, so that a
    link planted by the directory's owner can never make root change another file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UnsafeBundle(f"cannot open it as a plain file ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise UnsafeBundle("not a regular file with one name")
        if os.geteuid() == 0:
            os.fchown(fd, 0, 0)
        os.fchmod(fd, 0o640)
    finally:
        os.close(fd)


def install_incoming(
    bundle: Path,
    *,
    slots_now: SlotsNow,
    reboot: Callable[[], None],
    clock: Callable[[], float] = time.time,
    rauc: str = "rauc",
) -> int:
    """Install ``bundle`` (``<update dir>/incoming.raucb``) as described above; the exit
    status (0: installed and rebooting, or nothing to do; 1: RAUC refused or failed)."""
    directory = bundle.parent
    installing = directory / INSTALLING
    try:
        os.replace(bundle, installing)
    except FileNotFoundError:
        log.info("%s: nothing to install (already taken, or never there)", bundle)
        return 0
    info = _incoming_info(directory)
    with contextlib.suppress(OSError):
        (directory / INCOMING_INFO).unlink()
    status: dict[str, Any] = {
        "state": "installing",
        "bundle": info.get("name", INCOMING),
        **{key: value for key, value in info.items() if key != "name"},
        "message": None,
        "slot": None,
        "started": timestamp(clock()),
        "finished": None,
    }
    write_json(directory / STATUS_FILE, status)
    log.warning("installing %s (sent by %s)", status["bundle"], info.get("by", "?"))
    try:
        output, code = _run_rauc(rauc, installing)
    finally:
        with contextlib.suppress(OSError):
            installing.unlink()
    print(output, end="" if output.endswith("\n") else "\n", flush=True)  # to the journal
    slots = _write_slots(directory, slots_now)
    status["finished"] = timestamp(clock())
    if code != 0:
        status.update(state="failed", message=_rauc_message(output))
        write_json(directory / STATUS_FILE, status)
        log.error("rauc refused %s (exit %d): nothing changed", status["bundle"], code)
        return 1
    primary = slots.get("primary") if slots else None
    status.update(state="installed", slot=primary, message=f"slot {primary or '?'} boots next")
    write_json(directory / STATUS_FILE, status)
    status.update(state="rebooting", message=f"rebooting into slot {primary or '?'}, on trial")
    write_json(directory / STATUS_FILE, status)
    log.warning("installed %s: %s", status["bundle"], status["message"])
    reboot()
    return 0


def _run_rauc(rauc: str, bundle: Path) -> tuple[str, int]:
    """``rauc install bundle`` once the bundle is root's: what it said, and its exit status
    (-1: it did not run, or did not end)."""
    try:
        _take_over(bundle)
        done = subprocess.run(
            [rauc, "install", str(bundle)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=RAUC_TIMEOUT,
            check=False,
        )
    except UnsafeBundle as exc:
        return f"{INCOMING} refused, not given to rauc: {exc}", -1
    except subprocess.TimeoutExpired:
        return f"rauc install did not end within {RAUC_TIMEOUT:.0f} s", -1
    except OSError as exc:
        return f"cannot run {rauc}: {exc.strerror or exc}", -1
    return done.stdout, done.returncode


def _write_slots(directory: Path, slots_now: SlotsNow) -> dict[str, Any] | None:
    """``slots.json`` afresh (a failure to read the slots is logged, never raised)."""
    try:
        slots = slots_now()
    except Exception as exc:  # the status of an update matters more than the slots' view
        log.warning("cannot read the slots' states: %s", exc)
        return None
    if slots is not None:
        write_json(directory / SLOTS_FILE, {**slots, "updated": timestamp(time.time())})
    return slots


def refresh_at_boot(
    slots_now: SlotsNow,
    *,
    settle: bool = True,
    directory: Path = UPDATE_DIR,
    clock: Callable[[], float] = time.time,
) -> None:
    """At every boot (``plantd-boot-check``): ``slots.json`` afresh, and, when ``settle``, a
    ``rebooting`` status settled by the slot that booted (not when the boot check is itself
    rebooting out of a failed trial: the next boot, on the old slot, settles it). Never raises:
    the boot check's verdict is what counts, this is only what the web app shows."""
    try:
        if not directory.is_dir():
            return
        slots = _write_slots(directory, slots_now)
        status = read_status(directory)
        if status["state"] == "installing":  # this boot came in the middle of an install
            with contextlib.suppress(OSError):
                (directory / INSTALLING).unlink()
            status.update(
                state="failed",
                message="the device restarted during the install: the slot being written "
                "was not made the one to boot; send the bundle again",
                finished=timestamp(clock()),
            )
            write_json(directory / STATUS_FILE, status)
            return
        if not settle or status["state"] != "rebooting" or slots is None:
            return
        booted, target = slots.get("booted"), status.get("slot")
        if booted is not None and booted == target:
            status.update(state="installed", message=f"slot {booted} booted")
        else:
            status.update(
                state="failed",
                message=f"slot {target or '?'} did not stay (its trial boot failed): "
                f"back on slot {booted or '?'}",
            )
        status["finished"] = timestamp(clock())
        write_json(directory / STATUS_FILE, status)
    except Exception as exc:
        log.warning("cannot refresh %s: %s", directory, exc)
