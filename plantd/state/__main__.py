"""``plantd-state``: the state service (``org.plantd.State``) until SIGTERM.

Exit status: 0 after SIGTERM/SIGINT, 1 if the database cannot be opened, 2 for a configuration
error, 65 if the database is damaged or is not the one whose writes were acknowledged (missing,
emptied, replaced, missing committed changes; docs/state.md, "Damaged or missing database").

``--accept-loss`` (with the service stopped) lets the next start go on with what is left: a
damaged database is moved aside, and the generation marker is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from plantd._entry import service_main
from plantd.config import PlantdConfig
from plantd.logs import configure_logging

__all__ = ["main", "serve"]


def serve(config: PlantdConfig, environ: dict[str, str]) -> int:
    """Open the store and serve it in the foreground (shared by ``plantd-state`` and
    ``plant serve state``)."""
    from plantd.runtime import run_until_signal
    from plantd.state._errors import DAMAGED_EXIT_STATUS, StateDamaged, StateError
    from plantd.state._server import StateService, open_store

    configure_logging(
        config.logging.level, config.logging.format, under_journal="JOURNAL_STREAM" in environ
    )
    # A write past RLIMIT_FSIZE must fail as an I/O error (answered state.io-error), not kill
    # the process with SIGXFSZ.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        store = open_store(config)  # on this thread, which runs the event loop: reads run here
    except StateError as exc:
        print(f"plantd-state: {exc.message}", file=sys.stderr)
        return 1
    except StateDamaged as exc:
        print(f"plantd-state: {exc}", file=sys.stderr)
        return DAMAGED_EXIT_STATUS
    # Under systemd: READY=1 once the database is open and the service is registered with the
    # broker (StateService.connected), WATCHDOG=1 from the event loop.
    service = StateService(config, store)
    try:
        asyncio.run(
            run_until_signal(
                [service],
                environ=environ,
                description=f"serving {store.path}, {config.state.workers} workers",
            )
        )
    except* StateDamaged:
        pass  # the service logged why when it found the damage
    finally:
        store.close()
    return DAMAGED_EXIT_STATUS if service.damaged is not None else 0


def accept_loss(config: PlantdConfig) -> int:
    """``--accept-loss``: see the module docstring. Holds the store's lock while it works, so it
    refuses while the service runs."""
    from plantd.state._errors import StateError
    from plantd.state._integrity import accept_loss as recover
    from plantd.state._store import hold_lock

    path = config.state.database_path(config.paths)
    try:
        with hold_lock(path):
            print(f"plantd-state: {recover(path)}")
    except StateError as exc:
        print(f"plantd-state: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"plantd-state: cannot recover {path}: {exc}", file=sys.stderr)
        return 1
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--accept-loss",
        action="store_true",
        help="with the service stopped: go on with what is left of a database refused as "
        "damaged or missing changes (moves a damaged one aside, removes the marker), then exit",
    )


def _run(config: PlantdConfig, environ: dict[str, str], args: argparse.Namespace) -> int:
    return accept_loss(config) if args.accept_loss else serve(config, environ)


def main(argv: Sequence[str] | None = None) -> int:
    return service_main(
        "plantd-state",
        __doc__,
        argv,
        _run,
        principal=lambda args: "service.state",
        add_arguments=_arguments,
    )


if __name__ == "__main__":
    sys.exit(main())
