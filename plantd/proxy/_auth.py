"""(Being written: see /work/helpers/PROXY.md.)"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import BaseRoute

from plantd.config import Access
from plantd.proxy._context import ProxyContext, User
from plantd.proxy._problems import Problem

__all__ = ["middleware", "require", "routes"]


def middleware(ctx: ProxyContext) -> list[Middleware]:
    return []


def routes(ctx: ProxyContext) -> list[BaseRoute]:
    return []


def require(request: Request, level: Access = "read") -> User:
    """The request's person, who must hold ``level``; 401 or 403 Problem otherwise."""
    user: User | None = getattr(request.state, "user", None)
    if user is None:
        raise Problem(401, "log in, or send an API token (Authorization: Bearer …)")
    if not user.may(level):
        raise Problem(403, f"{user.principal} lacks {level!r} access")
    return user
