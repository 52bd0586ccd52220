"""``plantd-proxy``: serve the REST API, the bus streams and the web app until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence

from plantd._entry import service_main
from plantd.config import PlantdConfig

__all__ = ["main", "run_proxy"]


async def run_proxy(config: PlantdConfig, environ: Mapping[str, str] | None = None) -> None:
    """Serve at ``proxy.listen`` until SIGTERM/SIGINT (READY=1 to systemd once serving)."""
    from plantd.client import AsyncClient
    from plantd.clock import SYSTEM_CLOCK
    from plantd.proxy._context import ProxyContext
    from plantd.proxy._people import People
    from plantd.proxy._server import ProxyServer
    from plantd.runtime import run_until_signal

    # One attempt per call: a person waiting at a browser would rather see the service's
    # absence at once than three timeouts in a row.
    async with AsyncClient.from_config(config.broker.endpoint, config.client, retries=0) as client:
        ctx = ProxyContext(
            config=config,
            clock=SYSTEM_CLOCK,
            people=People(config, SYSTEM_CLOCK),
            client=client,
            delegate=config.security.enabled,
        )
        server = ProxyServer(ctx)
        scheme = "https" if config.proxy.tls else "http"
        await run_until_signal(
            [server], environ=environ, description=f"serving {scheme}://{config.proxy.listen}"
        )


def _serve(config: PlantdConfig, environ: dict[str, str], args: argparse.Namespace) -> int:
    from plantd.proxy._server import check_tls

    check_tls(config)  # a ConfigError: exit 2, named, not restarted
    asyncio.run(run_proxy(config, environ))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return service_main(
        "plantd-proxy", __doc__, argv, _serve, principal=lambda args: "service.proxy"
    )


if __name__ == "__main__":
    sys.exit(main())
