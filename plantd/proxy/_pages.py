"""(Being written: see /work/helpers/PROXY.md.)"""

from __future__ import annotations

from starlette.routing import BaseRoute

from plantd.proxy._context import ProxyContext

__all__ = ["routes"]


def routes(ctx: ProxyContext) -> list[BaseRoute]:
    return []
