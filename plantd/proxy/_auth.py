"""Who is asking: browser sessions, API tokens, logging in and out, and the CSRF check.

Theory of operation. :class:`AuthMiddleware` (plain ASGI: Starlette's ``BaseHTTPMiddleware``
would buffer the Server-Sent Event streams) looks at every HTTP request once, before any
route, and sets ``request.state.user``:

- ``Authorization: Bearer pdt_…``: an API token (``plant proxy token create``). When the
  header is there, it alone decides: a bad token is nobody, even with a good cookie beside it.
- otherwise the ``plantd_session`` cookie (``HttpOnly``, ``SameSite=Strict``, ``Path=/``,
  ``Secure`` under TLS), set by ``POST /api/v1/login``.

Either way the principal must still be an admitted person (``ctx.people.roles``): the key
ring is the authority, so revoking someone's key ends their sessions and tokens at the next
request (a revoked person's session is deleted when seen). Their roles and access levels are
read there on every request too. Nobody at all is ``None``; :func:`require` turns that into
401 for the routes that need a person (all but login, the login page and static files).

CSRF. A cookie is sent by the browser whoever wrote the page that makes the request, so an
unsafe method (anything but GET/HEAD/OPTIONS) authenticated by a session must also carry the
session's anti-forgery token in ``X-CSRF-Token`` (the app's pages have it in a ``<meta>``),
else 403 ``proxy.csrf``. Tokens need none: a browser never adds them by itself. Login itself
needs no session, and a cross-site form cannot send it: it must be ``application/json``
(SameSite=Strict keeps the cookie off cross-site requests in any case).

Login. ``{"user": "alice" | "user.alice", "password": …}``. A wrong password, a person
without a password and nobody at all get the same 401 ``proxy.bad-credentials``, after the same
scrypt work (``_accounts``), run in a thread so the event loop keeps serving. Failures are
throttled per person and per client address (``_throttle``: 429 ``proxy.throttled`` with
``Retry-After``). Every success and failure is logged on ``plantd.proxy.auth`` with the
principal and the client address as fields, never a password or a secret.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from plantd.config import ACCESS_LEVELS, Access
from plantd.proxy._accounts import Accounts, SessionInfo, TokenInfo
from plantd.proxy._context import ProxyContext, User
from plantd.proxy._metrics import LOGINS
from plantd.proxy._problems import Problem, problem_response
from plantd.proxy._throttle import LoginThrottle

__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "OPENAPI_PATHS",
    "AuthMiddleware",
    "AuthState",
    "auth_state",
    "middleware",
    "principal_of",
    "require",
    "routes",
]

log = logging.getLogger("plantd.proxy.auth")

COOKIE = "plantd_session"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_PATH = "/api/v1/login"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
MAX_LOGIN_BODY = 16 * 1024
MAX_NAME = 128  # no principal is longer: a longer name is a bad request
_NO_STORE = {"Cache-Control": "no-store"}


@dataclass(slots=True)
class AuthState:
    """What the auth part keeps for one proxy: the credential store and the login throttle."""

    accounts: Accounts
    throttle: LoginThrottle

    async def close(self) -> None:
        self.accounts.close()


def auth_state(ctx: ProxyContext) -> AuthState:
    """The :class:`AuthState` of ``ctx``, made on first use (``proxy.database``; closed by a
    ``ctx.shutdown`` hook, which is also where it is found again)."""
    for hook in ctx.shutdown:
        owner = getattr(hook, "__self__", None)
        if isinstance(owner, AuthState):
            return owner
    state = AuthState(
        Accounts.from_config(ctx.config, ctx.clock),
        LoginThrottle.from_config(ctx.config, ctx.clock),
    )
    ctx.shutdown.append(state.close)
    return state


def principal_of(name: str) -> str:
    """The principal a login name means: ``alice`` and ``user.alice`` are ``user.alice``."""
    name = name.strip()
    return name if name.startswith("user.") else f"user.{name}"


def require(request: Request, level: Access = "read") -> User:
    """The request's person, who must hold ``level``; 401 or 403 Problem otherwise."""
    user: User | None = getattr(request.state, "user", None)
    if user is None:
        raise _unauthenticated()
    if not user.may(level):
        raise Problem(403, f"{user.principal} lacks {level!r} access")
    return user


def _unauthenticated() -> Problem:
    return Problem(
        401,
        "log in, or send an API token (Authorization: Bearer …)",
        headers={"WWW-Authenticate": 'Bearer realm="plantd"', **_NO_STORE},
    )


# -- the middleware -------------------------------------------------------------------------


class AuthMiddleware:
    """Sets ``request.state.user`` on every HTTP request; refuses forged unsafe requests."""

    def __init__(self, app: ASGIApp, *, ctx: ProxyContext) -> None:
        self.app = app
        self.ctx = ctx
        self.state = auth_state(ctx)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            user = await self._authenticate(request)
        except Problem as problem:
            await problem_response(problem, request)(scope, receive, send)
            return
        scope.setdefault("state", {})["user"] = user
        await self.app(scope, receive, send)

    async def _authenticate(self, request: Request) -> User | None:
        accounts = self.state.accounts
        authorization = request.headers.get("authorization")
        if authorization is not None:
            scheme, _, credential = authorization.partition(" ")
            if scheme.lower() != "bearer" or not credential.strip():
                return None
            token = await asyncio.to_thread(accounts.token, credential.strip())
            return None if token is None else self._user(token.principal, token)
        secret = request.cookies.get(COOKIE)
        if not secret:
            return None
        session = await asyncio.to_thread(accounts.session, secret)
        if session is None:
            return None
        user = self._user(session.principal, session)
        if user is None:
            await asyncio.to_thread(accounts.close_session, secret)  # revoked: end it for good
            return None
        if request.method not in SAFE_METHODS and request.scope["path"] != LOGIN_PATH:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
                raise Problem(
                    403,
                    f"this request needs the session's anti-forgery token in {CSRF_HEADER}"
                    + (" (the one sent is not it)" if sent else ""),
                    code="proxy.csrf",
                )
        return user

    def _user(self, principal: str, credential: SessionInfo | TokenInfo) -> User | None:
        roles = self.ctx.people.roles(principal)
        if roles is None:
            return None
        session = isinstance(credential, SessionInfo)
        return User(
            principal,
            roles,
            self.ctx.people.levels(principal),
            "session" if session else "token",
            credential.id,
            credential.csrf if isinstance(credential, SessionInfo) else None,
        )


def middleware(ctx: ProxyContext) -> list[Middleware]:
    return [Middleware(AuthMiddleware, ctx=ctx)]


# -- the routes -----------------------------------------------------------------------------


def routes(ctx: ProxyContext) -> list[BaseRoute]:
    state = auth_state(ctx)
    secure = ctx.config.proxy.tls

    async def login(request: Request) -> Response:
        user, password = await _credentials(request)
        principal = principal_of(user)
        address = request.client.host if request.client else None
        fields = {"principal": principal, "address": address}
        wait = state.throttle.attempt(principal, address)
        if wait is not None:
            LOGINS.labels("throttled").inc()
            log.warning(
                "login throttled: %s from %s (retry in %d s)",
                principal,
                address,
                wait,
                extra={**fields, "retry_after": wait},
            )
            raise Problem(
                429,
                f"too many failed logins for {principal} or from {address}; try again in {wait} s",
                code="proxy.throttled",
                headers={"Retry-After": str(wait), **_NO_STORE},
                retry_after=wait,
            )
        right = await asyncio.to_thread(state.accounts.check_password, principal, password)
        roles = ctx.people.roles(principal)
        if not right or roles is None:
            why = "not an admitted person" if roles is None else "wrong password"
            LOGINS.labels("refused").inc()
            log.warning(
                "login failed: %s from %s (%s)",
                principal,
                address,
                why,
                extra={**fields, "reason": why},
            )
            raise Problem(
                401,
                "wrong user name or password",
                code="proxy.bad-credentials",
                headers=_NO_STORE,
            )
        state.throttle.succeeded(principal, address)
        if previous := request.cookies.get(COOKIE):  # a new login never keeps an old cookie
            await asyncio.to_thread(state.accounts.close_session, previous)
        secret, session = await asyncio.to_thread(state.accounts.open_session, principal)
        LOGINS.labels("ok").inc()
        log.info("login: %s from %s", principal, address, extra=fields)
        response = JSONResponse(
            {
                "principal": principal,
                "roles": sorted(roles),
                "levels": _levels(ctx.people.levels(principal)),
                "csrf": session.csrf,
            },
            headers=_NO_STORE,
        )
        response.set_cookie(
            COOKIE, secret, path="/", httponly=True, samesite="strict", secure=secure
        )
        return response

    async def logout(request: Request) -> Response:
        user: User | None = getattr(request.state, "user", None)
        secret = request.cookies.get(COOKIE)
        if secret and (user is None or user.by == "session"):
            await asyncio.to_thread(state.accounts.close_session, secret)
        if user is not None:
            address = request.client.host if request.client else None
            log.info(
                "logout: %s",
                user.principal,
                extra={"principal": user.principal, "address": address},
            )
        response = Response(status_code=204, headers=_NO_STORE)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=secure)
        return response

    async def me(request: Request) -> Response:
        user: User | None = getattr(request.state, "user", None)
        if user is None:  # a person without any role may still ask who they are
            raise _unauthenticated()
        return JSONResponse(
            {
                "principal": user.principal,
                "name": user.name,
                "roles": sorted(user.roles),
                "levels": _levels(user.levels),
                "by": user.by,
                "csrf": user.csrf,
            },
            headers=_NO_STORE,
        )

    return [
        Route(LOGIN_PATH, login, methods=["POST"], name="api-login"),
        Route("/api/v1/logout", logout, methods=["POST"], name="api-logout"),
        Route("/api/v1/me", me, methods=["GET"], name="api-me"),
    ]


def _levels(levels: frozenset[Access]) -> list[Access]:
    return [level for level in ACCESS_LEVELS if level in levels]


async def _credentials(request: Request) -> tuple[str, str]:
    """``user`` and ``password`` from a login body; 415/413/400 Problem when it is not one."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise Problem(415, 'log in with a JSON body: {"user": …, "password": …}', headers=_NO_STORE)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LOGIN_BODY:
            raise Problem(413, f"a login body has at most {MAX_LOGIN_BODY} bytes")
    try:
        data: Any = json.loads(body)
    except ValueError:
        raise Problem(400, "the login body is not JSON", headers=_NO_STORE) from None
    if not isinstance(data, dict):
        raise Problem(400, 'the login body must be {"user": …, "password": …}', headers=_NO_STORE)
    user, password = data.get("user"), data.get("password")
    if not isinstance(user, str) or not user.strip() or not isinstance(password, str):
        raise Problem(
            400, "the login body needs 'user' and 'password', both strings", headers=_NO_STORE
        )
    if len(user) > MAX_NAME or any(ch.isspace() for ch in user.strip()):
        raise Problem(400, f"'user' is not a user name (at most {MAX_NAME} characters, no spaces)")
    return user, password


# -- the OpenAPI description of these routes -----------------------------------------------

_PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _PROBLEM}},
    }


_PERSON: dict[str, Any] = {
    "type": "object",
    "required": ["principal", "roles", "levels"],
    "properties": {
        "principal": {"type": "string", "examples": ["user.alice"]},
        "roles": {"type": "array", "items": {"type": "string"}},
        "levels": {
            "type": "array",
            "items": {"enum": ["read", "operate", "configure", "admin"]},
        },
        "csrf": {
            "type": ["string", "null"],
            "description": f"The session's anti-forgery token: send it in {CSRF_HEADER} with "
            "every POST, PUT, PATCH or DELETE made with the session cookie",
        },
    },
}

OPENAPI_PATHS: dict[str, Any] = {
    LOGIN_PATH: {
        "post": {
            "operationId": "proxy.login",
            "summary": "Log in with a web password; sets the session cookie",
            "description": "Sets `plantd_session` (HttpOnly, SameSite=Strict). A wrong password "
            "and an unknown user get the same 401. After `proxy.login_attempts` failures for a "
            "user or from an address within `proxy.login_window`, 429 with Retry-After.",
            "tags": ["proxy"],
            "security": [],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["user", "password"],
                            "properties": {
                                "user": {
                                    "type": "string",
                                    "description": "alice or user.alice",
                                },
                                "password": {"type": "string", "format": "password"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "Logged in",
                    "headers": {
                        "Set-Cookie": {
                            "description": "plantd_session",
                            "schema": {"type": "string"},
                        }
                    },
                    "content": {"application/json": {"schema": _PERSON}},
                },
                "400": _problem("The body is not a JSON object with user and password"),
                "401": _problem("Wrong user name or password (proxy.bad-credentials)"),
                "413": _problem("The body is too large"),
                "415": _problem("The body is not application/json"),
                "429": {
                    **_problem("Too many failed logins (proxy.throttled)"),
                    "headers": {
                        "Retry-After": {
                            "description": "Seconds until a login may be tried again",
                            "schema": {"type": "integer"},
                        }
                    },
                },
            },
        }
    },
    "/api/v1/logout": {
        "post": {
            "operationId": "proxy.logout",
            "summary": "End the session (and clear its cookie)",
            "tags": ["proxy"],
            "responses": {
                "204": {"description": "Logged out (also when there was no session)"},
                "403": _problem("The session's X-CSRF-Token is missing or wrong (proxy.csrf)"),
            },
        }
    },
    "/api/v1/me": {
        "get": {
            "operationId": "proxy.me",
            "summary": "Who is logged in: principal, roles, access levels",
            "tags": ["proxy"],
            "responses": {
                "200": {
                    "description": "The person",
                    "content": {
                        "application/json": {
                            "schema": {
                                **_PERSON,
                                "properties": {
                                    **_PERSON["properties"],
                                    "name": {"type": "string"},
                                    "by": {"enum": ["session", "token"]},
                                },
                            }
                        }
                    },
                },
                "401": _problem("No session or API token, or an expired or revoked one"),
            },
        }
    },
}
