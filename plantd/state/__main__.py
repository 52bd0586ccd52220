"""``plantd-state``: the state service (``org.plantd.State``) until SIGTERM.

Exit status: 0 after SIGTERM/SIGINT, 1 if the database cannot be opened, 2 for a configuration
error.
"""

from __future__ import annotations

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
    from plantd.state._errors import StateError
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
    finally:
        store.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return service_main(
        "plantd-state",
        __doc__,
        argv,
        lambda config, environ, args: serve(config, environ),
        principal=lambda args: "service.state",
    )


if __name__ == "__main__":
    sys.exit(main())
