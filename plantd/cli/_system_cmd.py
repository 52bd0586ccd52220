"""``plant system``: the appliance's A/B root slots — status, update, rollback.

- ``plant system status``: which slot booted, which boots next, and each slot's state
  (``good``, ``trying``: on its trial boot, ``bad``: its trial failed, ``missing``).
- ``plant system update BUNDLE``: RAUC checks the bundle's signature against the device's
  key ring and writes it into the inactive slot, which becomes the next to boot, on trial;
  then the device reboots into it. The new slot stays only if plantd comes up healthy within
  the boot check's deadline; otherwise the boot loader comes back to this slot by itself.
- ``plant system rollback``: the other slot boots next (on trial too), e.g. a release that is
  healthy but that you do not want after all.

As root on the device (RAUC's service writes partitions; the boot partition is remounted).
docs/appliance.md, "Updates".
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from plantd.cli._common import OUTPUT_OPTIONS, emit

__all__ = ["register"]


def register(sub: Any) -> None:
    system = sub.add_parser(
        "system",
        parents=[OUTPUT_OPTIONS],
        help="the device's A/B root slots: status, update BUNDLE, rollback",
    )
    actions = system.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser("status", parents=[OUTPUT_OPTIONS], help="the slots' states")
    status.set_defaults(run=_status)
    update = actions.add_parser(
        "update",
        parents=[OUTPUT_OPTIONS],
        help="install a signed update bundle into the inactive slot and reboot into it",
    )
    update.add_argument("bundle", type=Path, help="a .raucb file (image/out/TARGET/)")
    update.add_argument(
        "--no-reboot", action="store_true", help="install only; it boots at the next reboot"
    )
    update.add_argument(
        "--from-proxy",
        action="store_true",
        help="BUNDLE is the one the web app dropped (plantd-update.service): move it aside, "
        "write status.json and slots.json beside it, reboot on success",
    )
    update.set_defaults(run=_update)
    rollback = actions.add_parser(
        "rollback", parents=[OUTPUT_OPTIONS], help="boot the other slot next (on trial)"
    )
    rollback.add_argument("--no-reboot", action="store_true", help="do not reboot now")
    rollback.set_defaults(run=_rollback)


def _status(args: argparse.Namespace) -> int:
    from plantd.system._backend import booted_slot, esp, slots_status
    from plantd.system._slots import BootEntries

    entries = BootEntries(esp())
    if not entries.directory.is_dir():
        print(
            f"plant: no boot entries in {entries.directory}: not an A/B appliance", file=sys.stderr
        )
        return 1
    status = slots_status(entries, booted_slot())
    slots = status["slots"]
    assert isinstance(slots, dict)
    lines = [f"booted: slot {status['booted'] or '?'}; next boot: slot {status['primary']}"]
    lines += [f"slot {slot}: {state}" for slot, state in slots.items()]
    emit(args, status, "\n".join(lines))
    return 0


def _must_be_root(what: str) -> str | None:
    if os.geteuid() != 0:
        return f"plant: system {what}: run as root (it writes the slots and the boot partition)"
    if shutil.which("rauc") is None:
        return f"plant: system {what}: rauc is not installed: not an A/B appliance image"
    return None


def _update(args: argparse.Namespace) -> int:
    refusal = _must_be_root("update")
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 1
    if args.from_proxy:
        return _update_from_proxy(args)
    bundle = args.bundle.resolve()
    if not bundle.is_file():
        print(f"plant: system update: {args.bundle}: no such file", file=sys.stderr)
        return 2
    # RAUC says what it does, and why it refuses (signature, compatible, a full slot) itself.
    installed = subprocess.run(["rauc", "install", str(bundle)], check=False)
    if installed.returncode != 0:
        print(
            f"plant: system update: rauc refused {bundle.name} (exit {installed.returncode}); "
            "nothing changed: the running slot stays the one that boots",
            file=sys.stderr,
        )
        return 1
    return _reboot_into_next(args, "installed")


def _update_from_proxy(args: argparse.Namespace) -> int:
    """The bundle the web app dropped (plantd.system._incoming)."""
    from plantd.system._backend import booted_slot, esp, slots_status
    from plantd.system._incoming import install_incoming
    from plantd.system._slots import BootEntries

    def reboot() -> None:
        if not args.no_reboot:
            subprocess.run(["systemctl", "reboot"], check=False)

    return install_incoming(
        args.bundle.absolute(),
        slots_now=lambda: slots_status(BootEntries(esp()), booted_slot()),
        reboot=reboot,
    )


def _rollback(args: argparse.Namespace) -> int:
    from plantd.system._backend import booted_slot, esp, set_primary
    from plantd.system._slots import SLOTS, BootEntries, SlotError

    refusal = _must_be_root("rollback")
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 1
    booted = booted_slot()
    if booted is None:
        print("plant: system rollback: no plantd.slot= on the kernel command line", file=sys.stderr)
        return 1
    other = next(slot for slot in SLOTS if slot != booted)
    entries = BootEntries(esp())
    try:
        set_primary(entries, other)
    except (SlotError, OSError, subprocess.CalledProcessError) as exc:
        print(f"plant: system rollback: slot {other}: {exc}", file=sys.stderr)
        return 1
    return _reboot_into_next(args, "rolled back")


def _reboot_into_next(args: argparse.Namespace, done: str) -> int:
    from plantd.system._backend import booted_slot, esp
    from plantd.system._slots import BootEntries

    primary = BootEntries(esp()).primary()
    when = "at the next reboot" if args.no_reboot else "now"
    print(
        f"plant: {done}: slot {primary} boots {when}, on trial: it stays if plantd is healthy "
        f"in time, else slot {booted_slot()} comes back by itself",
        flush=True,
    )
    if not args.no_reboot:
        subprocess.run(["systemctl", "reboot"], check=False)
    return 0
