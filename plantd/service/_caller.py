"""Calling service operations: the convention on top of the MDP clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from plantd.client import AsyncClient, Client
from plantd.service._codec import Json, decode_reply, encode_call

__all__ = ["call", "call_async", "stream", "stream_async"]


async def call_async(
    client: AsyncClient,
    service: str,
    operation: str,
    params: dict[str, Json] | None = None,
    *,
    timeout: float | None = None,
    retries: int | None = None,
) -> Json:
    """The result of ``operation`` on ``service``; raises ``ServiceError`` for ``ok: false``."""
    body = await client.request(
        service, *encode_call(operation, params), timeout=timeout, retries=retries
    )
    return decode_reply(body, service)


async def stream_async(
    client: AsyncClient,
    service: str,
    operation: str,
    params: dict[str, Json] | None = None,
    *,
    timeout: float | None = None,
) -> AsyncIterator[Json]:
    """Each result a streaming operation sends (PARTIALs, then the FINAL)."""
    async for body in client.stream(service, *encode_call(operation, params), timeout=timeout):
        yield decode_reply(body, service)


def call(
    client: Client,
    service: str,
    operation: str,
    params: dict[str, Json] | None = None,
    *,
    timeout: float | None = None,
    retries: int | None = None,
) -> Json:
    """Blocking :func:`call_async`."""
    body = client.request(
        service, *encode_call(operation, params), timeout=timeout, retries=retries
    )
    return decode_reply(body, service)


def stream(
    client: Client,
    service: str,
    operation: str,
    params: dict[str, Json] | None = None,
    *,
    timeout: float | None = None,
) -> Iterator[Json]:
    for body in client.stream(service, *encode_call(operation, params), timeout=timeout):
        yield decode_reply(body, service)
