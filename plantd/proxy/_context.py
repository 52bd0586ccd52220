"""What every part of the proxy shares: configuration, clock, people, the MDP client, and the
person a request is made for.

The proxy never decides on its own what a person may do: :meth:`ProxyContext.call` sends each
call to the broker on behalf of the person logged in (delegation, rule S6 in
``plantd.mdp._broker``: the broker checks that person's roles and audits the call under their
name, ``via service.proxy``). It also checks the same policy itself first, so that a refusal
is a quick 403 and so that ``security.mode: none`` (no broker policy at all) still keeps a
viewer from writing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from plantd.client import AsyncClient
from plantd.clock import Clock
from plantd.config import ACCESS_LEVELS, Access, PlantdConfig
from plantd.errors import RemoteProtocolError, RequestTimeout, ServiceError
from plantd.proxy._people import People
from plantd.proxy._problems import Problem, from_service_error
from plantd.service._codec import Json, decode_reply, encode_call

__all__ = ["Hook", "ProxyContext", "User"]

Hook = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class User:
    """The person a request is made for, as authenticated by a session or a token.

    ``levels`` are the access levels their roles grant (read from the key ring on every
    request, so a change of roles or a revocation applies at once). ``csrf`` is the session's
    anti-forgery token (None for an API token: no cookie, nothing to forge)."""

    principal: str
    roles: frozenset[str]
    levels: frozenset[Access]
    by: Literal["session", "token"]
    credential_id: str  # the session's or token's id (never the secret itself)
    csrf: str | None = None

    @property
    def name(self) -> str:
        return self.principal.removeprefix("user.")

    def may(self, level: Access) -> bool:
        return level in self.levels

    def highest(self) -> Access | None:
        """The highest access level granted (for the app to show what it offers)."""
        granted = [level for level in ACCESS_LEVELS if level in self.levels]
        return granted[-1] if granted else None


@dataclass(slots=True)
class ProxyContext:
    """Built once by ``_server.build_app``; every part takes what it needs from it.

    ``delegate``: send calls on behalf of the person (True under CURVE; without CURVE the
    broker has no notion of people and the proxy's own check is the only one)."""

    config: PlantdConfig
    clock: Clock
    people: People
    client: AsyncClient
    delegate: bool
    startup: list[Hook] = field(default_factory=list)
    shutdown: list[Hook] = field(default_factory=list)

    def check(self, user: User, service: str, operation: str) -> Access:
        """The access ``operation`` needs; raises a 403 Problem if ``user`` lacks it."""
        access = self.people.access_of(service, operation)
        if not service.startswith("mmi.") and not user.may(access):
            roles = ", ".join(sorted(user.roles)) or "none"
            raise Problem(
                403,
                f"{user.principal} may not call {operation!r} on {service} "
                f"(it needs {access!r} access; roles: {roles})",
                code="broker.denied",
                access=access,
            )
        return access

    def request_body(
        self, user: User, service: str, operation: str, params: dict[str, Json] | None
    ) -> list[bytes]:
        """The MDP body of a call for ``user`` (checked first; ``@principal`` first when
        delegating); a 403 or 404 :class:`Problem` when it may not or cannot be made."""
        self.check(user, service, operation)
        try:
            body = encode_call(operation, params)
        except ValueError as exc:
            raise Problem(404, str(exc), code="proxy.unknown-operation") from None
        if self.delegate and not service.startswith("mmi."):
            body = [b"@" + user.principal.encode(), *body]
        return body

    async def call(
        self,
        user: User,
        service: str,
        operation: str,
        params: dict[str, Json] | None = None,
        *,
        timeout: float | None = None,
    ) -> Json:
        """``operation`` on ``service`` for ``user``; a failure raises a :class:`Problem`."""
        body = self.request_body(user, service, operation, params)
        wait = self.config.proxy.request_timeout if timeout is None else timeout
        try:
            reply = await self.client.request(service, *body, timeout=wait, retries=0)
            return decode_reply(reply, service)
        except ServiceError as exc:
            raise from_service_error(exc) from None
        except RequestTimeout:
            raise Problem(
                504,
                f"{service} did not answer {operation!r} within {wait:g} s",
                code="client.timeout",
            ) from None
        except RemoteProtocolError as exc:
            raise Problem(502, f"{service} answered {operation!r} with {exc}") from None
